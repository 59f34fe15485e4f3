"""Reading manifests: file or text -> data, bounded, then :func:`spec.parse_manifest`.

YAML is parsed with limits a hostile file cannot get around: at most ``MAX_BYTES`` of UTF-8 text,
no duplicate keys (PyYAML would silently keep the last), at most ``MAX_NODES`` nodes after alias
expansion (a "billion laughs" file is refused before anything expands it), no recursive aliases,
and bounded nesting. Every refusal is a :class:`SpecError` naming the source.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .contract.api import KIND
from .contract.fields import SpecError, show
from .contract.parse import parse_manifest
from .contract.types import RunSpec

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_DOCUMENTS = 32


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if isinstance(key_node, ScalarNode):
                    key = key_node.value
                    if key in seen:
                        mark = key_node.start_mark
                        raise _Refused(f"duplicate key {show(key)} at line {mark.line + 1}, column {mark.column + 1}")
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Refused(Exception):
    pass


def _check_size(root: Node) -> None:
    """Count the nodes a full expansion would make, without expanding (memoised per node)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[Node, int, bool]] = [(root, 0, False)]
    while stack:
        node, depth, children_done = stack.pop()
        nid = id(node)
        if nid in sizes and not children_done:
            continue
        if depth > MAX_DEPTH:
            raise _Refused(f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ScalarNode):
            sizes[nid] = 1
            continue
        children = [c for kv in node.value for c in kv] if isinstance(node, MappingNode) else list(node.value)
        if not children_done:
            if nid in active:
                raise _Refused("has a recursive alias")
            active.add(nid)
            stack.append((node, depth, True))
            for child in children:
                if id(child) in active:
                    raise _Refused("has a recursive alias")
                if id(child) not in sizes:
                    stack.append((child, depth + 1, False))
            continue
        active.discard(nid)
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        if total > MAX_NODES:
            raise _Refused(f"expands to more than {MAX_NODES} values (aliases included); refused")
        sizes[nid] = total


def load_documents(text: str | bytes, source: str) -> list[Any]:
    """The YAML (or JSON) documents of ``text``, checked against the limits above."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise SpecError(source, f"is {len(text)} bytes; manifests are at most {MAX_BYTES} bytes")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(source, f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                                    f"{exc.start})") from None
    if len(text) > MAX_BYTES:
        raise SpecError(source, f"is {len(text)} characters; manifests are at most {MAX_BYTES} bytes")
    docs = []
    try:
        loader = _Loader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    continue
                if len(docs) >= MAX_DOCUMENTS:
                    raise _Refused(f"holds more than {MAX_DOCUMENTS} documents")
                _check_size(node)
                docs.append(loader.construct_document(node))
        finally:
            loader.dispose()
    except _Refused as exc:
        raise SpecError(source, str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(getattr(exc, "problem", None) or exc)[:200]
        raise SpecError(source, f"is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise SpecError(source, f"is nested more than {MAX_DEPTH} levels deep") from None
    return [d for d in docs if d is not None]


def load_manifest_text(text: str | bytes, *, source: str = "manifest") -> RunSpec:
    """Parse YAML text holding exactly one BenchmarkRun (other kinds of document are ignored)."""
    docs = load_documents(text, source)
    runs = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == KIND]
    if len(docs) == 1 or len(runs) == 0:
        if not docs:
            raise SpecError(source, "is empty; expected a BenchmarkRun manifest")
        return parse_manifest(docs[0])
    if len(runs) > 1:
        raise SpecError(source, f"holds {len(runs)} BenchmarkRun documents; give one per file")
    return parse_manifest(runs[0])


def read_bytes(path: str) -> bytes:
    """A manifest or spec file's bytes (bounded); an unreadable file is a SpecError naming it."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(path, f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise SpecError(path, f"is larger than {MAX_BYTES} bytes; manifests are at most that")
    return data


def load_manifest(path: str) -> RunSpec:
    return load_manifest_text(read_bytes(path), source=path)
