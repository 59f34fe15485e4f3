"""Layer contracts (pyproject's [tool.importlinter]): the runner never imports the operator or kopf,
pure planning/manifests/status/spec code does no I/O, and only k8s.py talks to the API."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    res = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    import tomllib

    n = len(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"])
    assert n >= 6 and f"{n} kept, 0 broken" in res.stdout


def test_the_operator_imports_the_runner_only_through_the_contract():
    """Any runner module the operator imports directly is the contract's (or redact, logs): also a module
    added to the runner later, which the import-linter contract's list would not name yet."""
    import grimp

    graph = grimp.build_graph("benchpilot_operator", "benchpilot_runner", cache_dir=None)
    allowed = ("benchpilot_runner.contract", "benchpilot_runner.redact", "benchpilot_runner.logs")
    found = {(m, imported) for m in graph.find_descendants("benchpilot_operator") | {"benchpilot_operator"}
             for imported in graph.find_modules_directly_imported_by(m)
             if imported.startswith("benchpilot_runner") and not imported.startswith(allowed)}
    assert found == set()
