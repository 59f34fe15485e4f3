"""PURE: dense integer codes for keys, the counting sort way when the key space is small."""

from __future__ import annotations

import numpy as np

DENSE_FACTOR = 4  # use a lookup table of the whole key space when it is at most this many × the keys + 1M


def factorize(key: np.ndarray, space: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(code of each key, the distinct keys ascending): code[i] indexes uniques, uniques[code] == key.

    With keys in [0, space) and space not much larger than the number of keys, a bincount and a lookup
    table replace np.unique's sort (about 10x faster on a million keys)."""
    key = np.asarray(key, dtype=np.int64)
    if space is None:
        space = int(key.max()) + 1 if len(key) else 0
    if len(key) and space <= DENSE_FACTOR * len(key) + (1 << 20):
        present = np.flatnonzero(np.bincount(key, minlength=space))
        lookup = np.zeros(space, np.int32 if len(present) < 2 ** 31 else np.int64)
        lookup[present] = np.arange(len(present), dtype=lookup.dtype)
        return lookup[key], present
    uniques, inverse = np.unique(key, return_inverse=True)
    return inverse.reshape(-1), uniques


def combine(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One dense code per distinct combination of several non-negative code arrays (in the order of the
    combinations), and the first position of each."""
    n = len(codes[0])
    key = np.zeros(n, np.int64)
    space = 1
    for c in codes:
        width = int(c.max()) + 1 if n else 1
        key = key * width + c
        space *= width
    code, _ = factorize(key, space)
    first = np.zeros(int(code.max()) + 1 if n else 0, np.int64)
    first[code[::-1]] = np.arange(n - 1, -1, -1)  # the last write wins: each code's smallest position
    return code, first
