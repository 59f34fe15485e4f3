"""Benchmark suites, found by name.

The built-in suites (``workflow``, ``text2sql``) and any other package's are registered in the
``benchpilot.suites`` entry-point group::

    [project.entry-points."benchpilot.suites"]
    mysuite = "mypackage.suite:SUITE"

The object named must follow :class:`.base.Suite`. A suite is loaded only when a spec names it;
loading must stay light (no model weights, no dataset): heavy work belongs in ``prepare``.
"""

from __future__ import annotations

import functools
import threading
from importlib import import_module

GROUP = "benchpilot.suites"
BUILTIN = {  # so a source checkout without installed metadata still has its own suites
    "workflow": "benchpilot_runner.suites.workflow:SUITE",
    "text2sql": "benchpilot_runner.suites.text2sql:SUITE",
}
_LOADED: dict[str, object] = {}
_LOCK = threading.Lock()


class UnknownSuite(LookupError):
    pass


@functools.cache
def _entry_points() -> dict[str, str]:
    """Name -> "module:attribute" of every suite (read once per process: installing one means a new process)."""
    from importlib import metadata  # imported when a suite is looked up: it costs a process several MiB

    found = dict(BUILTIN)
    for ep in metadata.entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def installed() -> list[str]:
    """The names of every suite this process can run."""
    return sorted(_entry_points())


def get(name: str):
    """The suite named ``name``; :class:`UnknownSuite` lists the installed ones."""
    with _LOCK:
        suite = _LOADED.get(name)
        if suite is not None:
            return suite
        target = _entry_points().get(name)
        if target is None:
            raise UnknownSuite(f"{name!r} is not an installed suite; installed: {', '.join(installed())} "
                               f"(a package adds one through the {GROUP!r} entry-point group)")
        module, _, attr = target.partition(":")
        try:
            obj = import_module(module)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - a broken plug-in is named, never a traceback
            raise UnknownSuite(f"suite {name!r} ({target}) could not be loaded: {type(exc).__name__}: {exc}") from None
        missing = [a for a in ("name", "version", "vocabulary", "config_fields", "parse_config", "prepare")
                   if not hasattr(obj, a)]
        if missing:
            raise UnknownSuite(f"suite {name!r} ({target}) is not a benchpilot suite: it lacks {', '.join(missing)}")
        _LOADED[name] = obj
        return obj
