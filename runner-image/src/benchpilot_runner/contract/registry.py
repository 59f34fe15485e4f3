"""Plug-ins found by name: suites (``benchpilot.suites``) and model providers (``benchpilot.providers``).

A package adds one through an entry point::

    [project.entry-points."benchpilot.suites"]
    mysuite = "mypackage.suite:SUITE"

The built-in ones are also known by name, so a source checkout without installed metadata still has
them. A plug-in is imported only when a spec names it; importing must stay light (no model weights,
no dataset, no network library): heavy work belongs in what it does when asked.
"""

from __future__ import annotations

import functools
import threading
from importlib import import_module
from typing import Mapping


class UnknownPlugin(LookupError):
    pass


class Registry:
    def __init__(self, group: str, what: str, builtin: Mapping[str, str], required: tuple[str, ...]):
        self.group, self.what, self.builtin, self.required = group, what, dict(builtin), required
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()

    @functools.cached_property
    def _targets(self) -> dict[str, str]:
        """Name -> "module:attribute" (read once per process: installing one means a new process)."""
        from importlib import metadata  # imported on first lookup: it costs a process several MiB

        found = dict(self.builtin)
        for ep in metadata.entry_points(group=self.group):
            found.setdefault(ep.name, ep.value)
        return found

    def installed(self) -> list[str]:
        """The built-in names in the order they are declared, then the plug-ins' alphabetically."""
        return [*self.builtin, *sorted(set(self._targets) - set(self.builtin))]

    def get(self, name: str):
        """The plug-in named ``name``; :class:`UnknownPlugin` lists the installed ones."""
        with self._lock:
            obj = self._loaded.get(name)
            if obj is not None:
                return obj
            target = self._targets.get(name)
            if target is None:
                raise UnknownPlugin(f"{name!r} is not an installed {self.what}; installed: "
                                    f"{', '.join(self.installed())} (a package adds one through the "
                                    f"{self.group!r} entry-point group)")
            obj = self._load(name, target)
            self._loaded[name] = obj
            return obj

    def _load(self, name: str, target: str):
        module, _, attr = target.partition(":")
        try:
            obj = import_module(module)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - a broken plug-in is named, never a traceback
            raise UnknownPlugin(f"{self.what} {name!r} ({target}) could not be loaded: "
                                f"{type(exc).__name__}: {exc}") from None
        missing = [a for a in self.required if not hasattr(obj, a)]
        if missing:
            raise UnknownPlugin(f"{self.what} {name!r} ({target}) is not a benchpilot {self.what}: "
                                f"it lacks {', '.join(missing)}")
        return obj


SUITE_ATTRS = ("name", "version", "vocabulary", "config_fields", "parse_config", "prepare")
SUITES = Registry("benchpilot.suites", "suite", {
    "text2sql": "benchpilot_runner.suites.text2sql:SUITE",
    "workflow": "benchpilot_runner.suites.workflow:SUITE",
}, SUITE_ATTRS)
PROVIDERS = Registry("benchpilot.providers", "model provider", {
    "sim": "benchpilot_runner.providers.sim:PROVIDER",
    "openai": "benchpilot_runner.providers.openai:PROVIDER",
}, ("name", "simulated", "model"))


def find_suite(name: str):
    """The installed suite named ``name`` (its vocabulary and configuration rules), or a SpecError listing them."""
    from .fields import SpecError

    try:
        return SUITES.get(name)
    except UnknownPlugin as exc:
        raise SpecError("spec.suite", str(exc)) from None


def find_provider(name: str, path: str = "spec.matrix.models"):
    """The installed model provider named ``name``, or a SpecError naming ``path`` and listing them."""
    from .fields import SpecError

    try:
        return PROVIDERS.get(name)
    except UnknownPlugin as exc:
        raise SpecError(path, f"unknown model provider: {exc}") from None
