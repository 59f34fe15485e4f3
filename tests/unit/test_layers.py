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


def test_a_planted_wrong_import_is_caught(tmp_path):
    """The contracts can fail: a copy of the tree where the operator's pure plan imports the runner's
    scheduler, and the runner's contract imports storage, is refused naming both."""
    for d in ("operator/src", "runner-image/src"):
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    plan = tmp_path / "operator/src/benchpilot_operator/plan.py"
    plan.write_text(plan.read_text() + "\nfrom benchpilot_runner import scheduler  # planted\n")
    sizing = tmp_path / "runner-image/src/benchpilot_runner/contract/sizing.py"
    sizing.write_text(sizing.read_text() + "\nimport fsspec  # planted\n")
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path}/operator/src:{tmp_path}/runner-image/src"}
    res = subprocess.run([exe, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-2000:]
    assert "benchpilot_operator.plan -> benchpilot_runner.scheduler" in res.stdout
    assert "benchpilot_runner.contract.sizing -> fsspec" in res.stdout
