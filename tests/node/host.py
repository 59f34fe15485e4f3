"""What the node tier changes on the host, recorded so it can be put back — also after a killed run.

A node instance owns one folder ``<tmp>/benchpilot-node-<id>`` (every daemon's state, the pod
volumes, logs and mounts live under it), one bridge ``bpn<id>``, one cgroup subtree
``/benchpilot-<id>`` in each hierarchy, and the host sysctls the kubelet and the CNI bridge change.
``state.json`` in the folder records all of it with the owner's pid; :func:`clean_leftovers` (run at
every start) tears down the instances whose owner is gone, and :meth:`NodeHost.teardown` the live one.
The host's values from before the first instance (sysctls, which of the kubelet's fixed folders did
not exist) are kept in ``<tmp>/benchpilot-node-originals.json`` until the last instance puts them back.
Nothing outside what an instance recorded is touched: other processes on the host are never signalled.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

# what kubelet (setupKernelTunables) and the CNI bridge plugin (isGateway) set on the host
SYSCTLS = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
           "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward")
CGROUP_ROOT = Path("/sys/fs/cgroup")
HOST_DIRS = ("/var/log/containers", "/var/lib/cni", "/var/lib/kubelet", "/etc/cni", "/opt/cni", "/run/containerd")
CNI_RESULTS = Path("/var/lib/cni/results")  # libcni's cache (a fixed path in containerd 1.6)
PREFIX = "benchpilot-node-"
ORIGINALS = Path(tempfile.gettempdir()) / "benchpilot-node-originals.json"


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    return {n: _sysctl_path(n).read_text().strip() for n in SYSCTLS if _sysctl_path(n).exists()}


def write_sysctls(values: dict[str, str]) -> None:
    for name, value in values.items():
        try:
            if _sysctl_path(name).read_text().strip() != value:
                _sysctl_path(name).write_text(value)
        except OSError:
            pass


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 for pods that no route or address of the host uses (a host-only bridge, no route out)."""
    used = [ipaddress.ip_network(w, strict=False) for line in _run("ip", "-4", "route", "show", "table", "all").stdout
            .splitlines() for w in line.split()[:1] if w[0].isdigit()]
    used += [ipaddress.ip_interface(w).network for line in _run("ip", "-4", "-o", "addr").stdout.splitlines()
             for w in line.split() if "/" in w and w[0].isdigit()]
    for _ in range(500):
        net = ipaddress.ip_network(f"10.244.{random.randint(1, 254)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free 10.244.x.0/24 for the node tier's bridge")


def _alive(pid: int, start: str | None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return start is None or stat.rsplit(")", 1)[1].split()[19] == start


def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


class NodeHost:
    """One node instance's footprint on the host: its folder, bridge, cgroups and the sysctls to restore."""

    def __init__(self, base: Path | None = None):
        self.id = uuid.uuid4().hex[:8]
        self.dir = Path(base or tempfile.gettempdir()) / f"{PREFIX}{self.id}"
        self.dir.mkdir(mode=0o755)
        self.bridge = f"bpn{self.id[:6]}"
        self.subnet = free_subnet()
        self.gateway = str(self.subnet.network_address + 1)
        self.cgroup = f"benchpilot-{self.id}"
        self.network = f"benchpilot-{self.id}"
        self.sock = self.dir / "containerd" / "containerd.sock"
        self.state = {"owner_pid": os.getpid(), "owner_start": _start_time(os.getpid()), "bridge": self.bridge,
                      "cgroup": self.cgroup, "network": self.network, "sock": str(self.sock), "pids": {}}
        self.save()
        if not ORIGINALS.exists():  # the first instance: what the host was before any of them
            ORIGINALS.write_text(json.dumps({"sysctls": read_sysctls(),
                                             "absent": [d for d in HOST_DIRS if not os.path.exists(d)]}))

    def save(self) -> None:
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.dir / "state.json")

    def record_pid(self, name: str, pid: int, folder: Path | None = None) -> None:
        """A process the instance started (killed at teardown), and a folder of its to remove."""
        self.state["pids"][name] = [pid, _start_time(pid)]
        if folder is not None:
            self.state.setdefault("folders", []).append(str(folder))
        self.save()

    def make_bridge(self) -> None:
        """The bridge the CNI plugin attaches pods to, with the gateway address, before any pod: the
        kubelet's node address and the relays to 127.0.0.1 servers listen on it."""
        for args in (("ip", "link", "add", self.bridge, "type", "bridge"),
                     ("ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge),
                     ("ip", "link", "set", self.bridge, "up")):
            res = _run(*args)
            if res.returncode != 0:
                raise RuntimeError(f"{' '.join(args)}: {res.stderr.strip()}")

    def teardown(self) -> list[str]:
        return teardown(self.dir)


def _kill_recorded(state: dict) -> None:
    for pid, start in state.get("pids", {}).values():
        if _alive(pid, start):
            os.kill(pid, signal.SIGKILL)


def _processes_using(folder: Path) -> list[int]:
    """Pids whose command line names ``folder`` (containerd's shims: they outlive a killed containerd)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(folder).encode() in (proc / "cmdline").read_bytes():
                    out.append(int(proc.name))
            except OSError:
                pass
    return [p for p in out if p != os.getpid()]


def _cgroup_dirs(name: str) -> list[Path]:
    found = []
    for hierarchy in CGROUP_ROOT.iterdir():
        d = hierarchy / name
        if d.is_dir():
            found.append(d)
    return found


def _kill_cgroup(name: str) -> None:
    """SIGKILL every process in the instance's cgroup subtrees (the pods' containers), then remove them."""
    for _ in range(50):
        pids = set()
        for d in _cgroup_dirs(name):
            for procs in d.rglob("cgroup.procs"):
                try:
                    pids |= {int(p) for p in procs.read_text().split()}
                except OSError:
                    pass
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    for d in _cgroup_dirs(name):
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [d]:
            try:
                sub.rmdir()
            except OSError:
                pass


def _unmount_under(folder: Path) -> None:
    prefix = str(folder) + "/"
    for _ in range(5):
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        mine = sorted({m for m in mounts if m.startswith(prefix) or m == str(folder)}, key=len, reverse=True)
        if not mine:
            return
        for m in mine:
            _run("umount", "-l", m.encode().decode("unicode_escape"))


def teardown(folder: Path) -> list[str]:
    """Stop and remove everything one instance recorded in ``folder/state.json``; what failed, as text."""
    t0 = time.monotonic()
    steps = []

    def lap(what: str) -> None:
        steps.append(f"{what} {time.monotonic() - t0:.1f}s")
    problems: list[str] = []
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    _kill_recorded(state)
    for pid in _processes_using(folder):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    lap("kill")
    if state.get("cgroup"):
        _kill_cgroup(state["cgroup"])
    lap("cgroups")
    _unmount_under(folder)
    lap("unmount")
    if state.get("bridge") and Path(f"/sys/class/net/{state['bridge']}").exists():
        res = _run("ip", "link", "del", state["bridge"])
        if res.returncode != 0:
            problems.append(f"bridge {state['bridge']}: {res.stderr.strip()}")
    _remove_log_links(folder)
    if state.get("network"):
        _remove_cni_cache(state["network"], state.get("sock", ""))
    for extra in state.get("folders", []):
        shutil.rmtree(extra, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    lap("remove")
    if not _others_alive(folder):  # the last instance puts back what the node's parts changed
        restore_originals()
    print(f"node teardown {folder.name}: {', '.join(steps)}")
    if folder.exists():
        problems.append(f"{folder} could not be removed")
    return problems


def restore_originals() -> None:
    try:
        orig = json.loads(ORIGINALS.read_text())
    except (OSError, ValueError):
        return
    write_sysctls(orig.get("sysctls", {}))
    for d in orig.get("absent", []):
        _remove_if_ours(Path(d))
    ORIGINALS.unlink(missing_ok=True)


def _remove_cni_cache(network: str, sock: str) -> None:
    """What a pod sandbox leaves when it is not torn down through CRI (the tier kills them): libcni's
    cached results for the instance's network and loopback, and the sandbox shim's socket (containerd
    names it sha256(<containerd address>/<namespace>/<sandbox id>) under /run/containerd/s)."""
    if not CNI_RESULTS.is_dir():
        return
    for f in CNI_RESULTS.glob(f"{network}-*"):
        try:
            sandbox = json.loads(f.read_text()).get("containerId", "")
        except (OSError, ValueError):
            sandbox = ""
        f.unlink(missing_ok=True)
        if sandbox:
            (CNI_RESULTS / f"cni-loopback-{sandbox}-lo").unlink(missing_ok=True)
            digest = hashlib.sha256(os.path.join(sock, "k8s.io", sandbox).encode()).hexdigest()
            Path("/run/containerd/s", digest).unlink(missing_ok=True)


def _remove_log_links(folder: Path) -> None:
    """The kubelet links each container's log into /var/log/containers (a fixed path)."""
    links = Path("/var/log/containers")
    if links.is_dir():
        for link in links.iterdir():
            try:
                if link.is_symlink() and os.readlink(link).startswith(str(folder)):
                    link.unlink()
            except OSError:
                pass


def _remove_if_ours(d: Path) -> None:
    """A host folder that did not exist before the tier: removed if nothing but empty folders is left."""
    if d.is_dir() and not any(p.is_file() or p.is_symlink() for p in d.rglob("*")):
        shutil.rmtree(d, ignore_errors=True)


def _instances() -> list[Path]:
    return [p for p in Path(tempfile.gettempdir()).glob(f"{PREFIX}*") if p.is_dir()]


def _owner_alive(folder: Path) -> bool:
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return False
    return _alive(state["owner_pid"], state.get("owner_start"))


def _others_alive(folder: Path) -> bool:
    return any(_owner_alive(p) for p in _instances() if p != folder)


def clean_leftovers() -> list[str]:
    """Tear down the instances of runs that were killed before their own teardown."""
    done = []
    for folder in _instances():
        if not _owner_alive(folder):
            teardown(folder)
            done.append(folder.name)
    if not _instances():
        restore_originals()  # a run killed after its folder was removed, before the host was put back
    return done
