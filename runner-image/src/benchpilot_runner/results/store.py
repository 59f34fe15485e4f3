"""The output filesystem: opened from a URI, checked writable before any case runs, objects written whole.

Each object is written in one PUT (``pipe_file``); on a local disk a temporary file renamed into place,
so a kill never leaves half an object.
"""

from __future__ import annotations

import os
import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ..contract.layout import OutputError
from ..redact import scrub

__all__ = ["OutputError", "open_uri", "write_whole", "check_writable", "new_writer_id"]


def open_uri(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of an fsspec URI (a plain path means the local disk)."""
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError, TypeError) as exc:
        raise OutputError(f"output URI {uri!r} is not usable: {exc}") from None
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(path)
    return fs, path.rstrip("/")


def new_writer_id() -> str:
    """A writer's id: in every part name it writes, so no two writers ever write the same name."""
    return uuid.uuid4().hex[:10]


def write_whole(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` as one object: one PUT on object stores, an atomic rename locally."""
    if isinstance(fs, LocalFileSystem):
        directory, name = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def check_writable(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Fail early, before any case runs, when the output cannot be written."""
    probe = f"{path}/.benchpilot-probe-{uuid.uuid4().hex[:8]}"
    try:
        write_whole(fs, probe, b"ok")
        fs.rm(probe)
    except Exception as exc:  # noqa: BLE001 - any failure here means "not writable"; say which
        raise OutputError(f"output {fs.unstrip_protocol(path)} is not writable: "
                          f"{type(exc).__name__}: {scrub(str(exc))[:300]}") from None
