"""The field toolkit: how every part of a manifest is read and refused. Public: suites read their
``spec.suiteConfig`` (and their own matrix fields) with :class:`Fields` too. Pure.

Every refusal is a :class:`SpecError` that names the field path, shows a bounded prefix of the
value seen, and says what would be right. Unknown fields are refused before any other field of
their mapping is read; ``null`` means unset (as in Kubernetes); numbers must be finite.
"""

from __future__ import annotations

import math
import re
import reprlib
from typing import Any, Iterable, Mapping

from .outcomes import ConfigError

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # a DNS label: run, namespace, endpoint names
UID_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
HEADER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$")
_MEM_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEM_UNITS = {None: 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
              "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
MAX_NAME = 63
MAX_MODEL_NAME = 200
MAX_STRING = 2048
# Output filesystems that keep what is written (fsspec protocols); memory://, http:// etc. do not.
OUTPUT_PROTOCOLS = ("file", "local", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "hdfs",
                    "webhdfs", "sftp")

_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxdict, _short.maxlevel = 60, 60, 4, 4, 2
_short.maxtuple = _short.maxset = 4


def show(value: Any) -> str:
    """A bounded, printable rendering of a value for error messages (never the whole of a huge one)."""
    try:
        return _short.repr(value)
    except Exception:  # noqa: BLE001 - a value too strange to print is shown by its type only
        return f"<{type(value).__name__}>"


class SpecError(ConfigError, ValueError):
    """An invalid manifest, flag or environment variable: names the field, the value seen, and what would be right."""

    def __init__(self, path: str, message: str):
        path = path if len(path) <= 200 else path[:200] + "..."
        super().__init__(f"{path}: {message}")
        self.path = path
        self.detail = message


class Fields:
    """Reads one mapping of the manifest, checking types and ranges; paths name the field."""

    def __init__(self, data: Any, path: str, known: Iterable[str]):
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise SpecError(path or "manifest", f"expected a mapping, got {type(data).__name__} {show(data)}")
        self.data, self.path = data, path
        known = tuple(known)
        for key in data:
            if not isinstance(key, str):
                raise SpecError(path or "manifest", f"key {show(key)} is not a string")
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise SpecError(self.p(unknown[0]), f"unknown field; known fields here: {', '.join(known)}")

    def p(self, key: str) -> str:
        """The path of ``key`` in this mapping, for messages."""
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def _get(self, key: str, default: Any) -> Any:
        value = self.data.get(key)
        return default if value is None else value  # null means unset, as in Kubernetes

    def number(self, key: str, default: float | None, *, minimum: float | None = None,
               maximum: float | None = None, integer: bool = False, exclusive_min: bool = False) -> Any:
        value = self._get(key, default)
        if value is None:
            return None
        return check_number(value, self.p(key), minimum=minimum, maximum=maximum, integer=integer,
                            exclusive_min=exclusive_min)

    def string(self, key: str, default: str | None, *, pattern: re.Pattern | None = None,
               allowed: Iterable[str] | None = None, hint: str = "", max_len: int = MAX_NAME) -> str | None:
        value = self._get(key, default)
        return None if value is None else check_string(value, self.p(key), pattern=pattern, allowed=allowed,
                                                       hint=hint, max_len=max_len)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise SpecError(self.p(key), f"{show(value)} is not true or false")
        return value

    def memory(self, key: str, default: int) -> int:
        """A Kubernetes memory quantity in bytes (``default`` is in bytes)."""
        return parse_memory(self.data[key], self.p(key)) if self.has(key) else default

    def sub(self, key: str, known: Iterable[str]) -> "Fields":
        return Fields(self.data.get(key), self.p(key), known)

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def string_list(self, key: str, allowed: Iterable[str] | None, default: Iterable[str] | None = None,
                    what: str = "value") -> tuple[str, ...]:
        value = self.data.get(key)
        p = self.p(key)
        if value is None:
            if default is None:
                raise SpecError(p, f"is required: a list of {what}s"
                                   + (f" from {', '.join(allowed)}" if allowed else ""))
            return tuple(default)
        if not isinstance(value, list) or not value:
            raise SpecError(p, f"{show(value)} is not a non-empty list of {what}s")
        if len(value) > 1000:
            raise SpecError(p, f"has {len(value)} entries; at most 1000 allowed")
        seen: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(f"{p}[{i}]", f"{show(item)} is not a string")
            if allowed is not None and item not in allowed:
                raise SpecError(f"{p}[{i}]", f"{show(item)} is not a known {what}; allowed: {', '.join(allowed)}")
            if item in seen:
                raise SpecError(f"{p}[{i}]", f"{show(item)} appears twice")
            seen.add(item)
        return tuple(value)


def check_string(value: Any, path: str, *, pattern: re.Pattern | None = None, allowed: Iterable[str] | None = None,
                 hint: str = "", max_len: int = MAX_NAME) -> str:
    """A non-empty string without control characters, within ``max_len``, matching ``pattern``/``allowed``."""
    if not isinstance(value, str) or not value:
        raise SpecError(path, f"{show(value)} is not a non-empty string")
    if len(value) > max_len:
        raise SpecError(path, f"{show(value)} is {len(value)} characters long; at most {max_len} allowed")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise SpecError(path, f"{show(value)} contains control characters")
    if allowed is not None and value not in allowed:
        raise SpecError(path, f"{show(value)} is not allowed; allowed: {', '.join(allowed)}")
    if pattern is not None and not pattern.match(value):
        raise SpecError(path, f"{show(value)} is not valid{hint}")
    return value


def check_number(value: Any, path: str, *, minimum: float | None = None, maximum: float | None = None,
                 integer: bool = False, exclusive_min: bool = False) -> Any:
    """A finite number (an integer when ``integer``) within bounds, or a SpecError naming ``path``."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(path, f"{show(value)} is not {kind}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(path, f"{show(value)} is not a finite number")
    if integer and isinstance(value, float) and not value.is_integer():
        raise SpecError(path, f"{show(value)} is not {kind}")
    if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
        raise SpecError(path, f"{show(value)} is too small; must be {'>' if exclusive_min else '>='} {minimum:g}")
    if maximum is not None and value > maximum:
        raise SpecError(path, f"{show(value)} is too large; must be <= {maximum:g}")
    return int(value) if integer else float(value)


def parse_memory(value: Any, path: str) -> int:
    """A Kubernetes quantity such as ``8Gi`` or ``512Mi`` in bytes."""
    m = _MEM_RE.match(str(value).strip()) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if not m or len(str(value)) > 40:
        raise SpecError(path, f"{show(value)} is not a memory quantity; use e.g. 512Mi or 8Gi")
    number = int(float(m.group(1)) * _MEM_UNITS[m.group(2)])
    if not 0 < number <= 64 * 1024**4:
        raise SpecError(path, f"{show(value)} is out of range; use between 1 byte and 64Ti")
    return number


def check_output_uri(value: Any, path: str) -> str:
    """An output location that keeps what is written: a local path or a persistent fsspec protocol."""
    if not isinstance(value, str) or not value or len(value) > MAX_STRING:
        raise SpecError(path, f"{show(value)} is not a usable output URI (a path or e.g. s3://bucket/prefix)")
    if any(ord(ch) < 32 for ch in value) or "::" in value:
        raise SpecError(path, f"{show(value)} is not a usable output URI (control characters or a chained URL)")
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
    if m and m.group(1).lower() not in OUTPUT_PROTOCOLS:
        raise SpecError(path, f"{show(value)}: protocol {m.group(1)!r} does not keep results; "
                              f"use a path or one of {', '.join(p + '://' for p in OUTPUT_PROTOCOLS)}")
    return value
