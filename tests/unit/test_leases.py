"""Writer leases name a process by pid, start time and boot: a zombie or a reused pid holds nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from benchpilot_runner.contract.layout import WRITERS
from benchpilot_runner.results import procs
from benchpilot_runner.results.lease import Lease
from benchpilot_runner.results.store import open_uri
from tests.helpers import wait_for

CHILD = """
import sys, time
from benchpilot_runner.results.lease import Lease
from benchpilot_runner.results.store import open_uri
fs, root = open_uri(sys.argv[1])
Lease(fs, root, "w0child00", [0, 1]).write()
print("ready", flush=True)
time.sleep(600)
"""


def proc_state(pid: int) -> str | None:
    fields = procs._stat_fields(pid)
    return fields[0] if fields else None


def lease_file(root, writer: str, **info) -> None:
    body = {"writer": writer, "host": socket.gethostname(), "shards": [0], "started": time.time() - 5,
            "renewed": time.time(), **info}
    (root / WRITERS).mkdir(exist_ok=True)
    (root / WRITERS / f"{writer}.json").write_text(json.dumps(body))


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_killed_writer_whose_zombie_remains_holds_nothing(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        fs, root = open_uri(str(tmp_path))
        mine = Lease(fs, root, "w1mine0000", [1])
        assert mine.conflict()["writer"] == "w0child00", "a live writer holds its shards"
        os.kill(child.pid, signal.SIGKILL)  # and nobody reaps it: its parent (this test) does not wait
        wait_for(lambda: proc_state(child.pid) == "Z", timeout=20, what="the killed writer to be a zombie")
        assert mine.conflict() is None, "a zombie writes nothing"
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_lease_naming_a_live_unrelated_process_holds_nothing(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        wait_for(lambda: procs.identity(other.pid)["pid_start"], timeout=10, what="the process to start")
        ident = procs.identity(other.pid)
        fs, root = open_uri(str(tmp_path))
        mine = Lease(fs, root, "w1mine0000", [0])
        # its writer died and the pid went to another process, which started later than the writer
        lease_file(tmp_path, "w0gone0000", **{**ident, "pid_start": ident["pid_start"] - 100})
        assert mine.conflict() is None
        lease_file(tmp_path, "w0gone0000", **ident)  # the very process: a live writer
        assert mine.conflict()["writer"] == "w0gone0000"
        lease_file(tmp_path, "w0gone0000", **{**ident, "boot": "another-boot"})  # a lease from before a reboot
        assert mine.conflict() is None
        lease_file(tmp_path, "w0gone0000", pid=other.pid)  # a lease of an older version: pid and state only
        assert mine.conflict()["writer"] == "w0gone0000"
    finally:
        other.kill()
        other.wait()


def test_proc_stat_is_read_whatever_the_process_name(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "sys/kernel/random").mkdir(parents=True)
    (tmp_path / "sys/kernel/random/boot_id").write_text("boot-1\n")
    for pid, state, start in ((41, "S", 777), (42, "Z", 778), (43, "R", 779)):
        after = ["1"] * 18 + [str(start)] + ["0"] * 20  # ppid ... start time (field 22) ... the rest
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (bench (pilot) w) {state} {' '.join(after)}\n")
    p = str(tmp_path)
    assert procs.identity(41, p) == {"pid": 41, "pid_start": 777, "boot": "boot-1"}
    assert procs.alive(41, 777, "boot-1", p) is True
    assert procs.alive(41, 700, "boot-1", p) is False, "the pid went to another process"
    assert procs.alive(42, 778, "boot-1", p) is False, "a zombie"
    assert procs.alive(43, 779, "boot-0", p) is False, "the machine rebooted"
    assert procs.alive(44, None, None, p) is False, "no such process"
    assert procs.alive(43, None, None, p) is True
    assert procs.gone_from_here({"host": "elsewhere", "pid": 44}, "here") is False, "other hosts: by the TTL"
