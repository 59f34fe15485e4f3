"""A run killed before its teardown leaves a node instance behind; the next start removes all of it
(its processes, cgroups, mounts, bridge and folders) and nothing that belongs to a live instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.node import host as H

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="the node tier needs root")]

KILLED_RUN = textwrap.dedent("""
    import json, subprocess, sys
    from pathlib import Path
    from tests.node import host as H
    h = H.NodeHost()
    h.make_bridge()
    cg = H.CGROUP_ROOT / "memory" / h.cgroup / "kubepods" / "podx"
    cg.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (cg / "cgroup.procs").write_text(str(sleeper.pid))
    (h.dir / "kubelet").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(h.dir / "kubelet")], check=True)
    extra = Path(sys.argv[1]); extra.mkdir()
    server = subprocess.Popen(["sleep", "600"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h.record_pid("server", server.pid, extra)
    print(json.dumps({"dir": str(h.dir), "bridge": h.bridge, "cgroup": str(cg.parent.parent),
                      "pids": [sleeper.pid, server.pid]}))
""")  # ... and exits without a teardown, like a run killed by a signal


def _alive(pid: int) -> bool:
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:1]
    except OSError:
        return False


def test_the_leftovers_of_a_killed_run_are_removed_at_the_next_start(tmp_path):
    out = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path / "server-data")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    left = json.loads(out.stdout)
    folder = Path(left["dir"])
    assert folder.is_dir() and Path(f"/sys/class/net/{left['bridge']}").exists()
    assert all(_alive(p) for p in left["pids"]) and (tmp_path / "server-data").is_dir()
    assert str(folder / "kubelet") in Path("/proc/self/mountinfo").read_text()

    cleaned = H.clean_leftovers()

    assert folder.name in cleaned
    assert not folder.exists() and not (tmp_path / "server-data").exists()
    assert not Path(f"/sys/class/net/{left['bridge']}").exists()
    assert not Path(left["cgroup"]).exists()
    assert not any(_alive(p) for p in left["pids"])
    assert str(folder) not in Path("/proc/self/mountinfo").read_text()
    live = [p for p in Path("/tmp").glob(f"{H.PREFIX}*") if p.is_dir()]
    assert all(H._owner_alive(p) for p in live), "a live instance (this session's node) is kept"
