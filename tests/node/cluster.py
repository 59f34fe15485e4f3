"""A real one-node Kubernetes cluster on this machine, for the node tier.

The cluster tier's control plane (etcd, kube-apiserver with Node and RBAC authorization,
kube-controller-manager) plus the parts that make pods real: kube-scheduler, the node-lifecycle
controller (it lifts the not-ready taint the kubelet registers with), the Deployment, ReplicaSet,
PersistentVolume and root-CA controllers, containerd + runc (Debian's), a kubelet registered as node
``localhost``, a CNI bridge (bridge, host-local, loopback plugins) and a pause image built here.

Everything listens on 127.0.0.1 but for what pods must reach: pods live on the tier's own bridge, a
host-only /24 with no route out, and reach the host at the bridge's address, where relays forward
to the 127.0.0.1 servers (:mod:`tests.node.relay`). Every daemon's state, pod volumes, logs and
mounts live in the instance's folder; the host's changes are recorded and put back
(:mod:`tests.node.host`). This VM kind needs: ``failCgroupV1: false`` (cgroup v1), the cgroupfs
driver in kubelet and containerd, and containerd's ``restrict_oom_score_adj`` (no CAP_SYS_RESOURCE).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.cluster.control_plane import ControlPlane
from tests.node import host as H
from tests.node.relay import Relay
from tests.servers.s3 import free_port

CONTROLLERS = ("job,garbagecollector,serviceaccount,serviceaccount-token,namespace,node-lifecycle-controller,"
               "root-ca-certificate-publisher-controller,pod-garbage-collector-controller,deployment-controller,"
               "replicaset-controller,persistentvolume-binder-controller,persistentvolume-protection-controller,"
               "persistentvolumeclaim-protection-controller")


def _timed(log: list, what: str, fn, *args):
    t0 = time.monotonic()
    out = fn(*args)
    log.append((what, round(time.monotonic() - t0, 1)))
    return out


class NodeCluster(ControlPlane):
    users = (*ControlPlane.users, ("system:kube-scheduler", ()), ("system:node:localhost", ("system:nodes",)),
             ("kube-apiserver-kubelet-client", ("system:masters",)))
    controllers = CONTROLLERS

    def __init__(self, bin_dir: Path, cni_dir: Path, runner_image: tuple[str, str], pause_image: tuple[str, str]):
        self.host = H.NodeHost()
        super().__init__(bin_dir)
        self.dir.rmdir()
        self.dir = self.host.dir / "k8s"
        self.dir.mkdir()
        self.cni_dir = cni_dir
        self.runner_image, self.runner_archive = runner_image
        self.pause_image, self.pause_archive = pause_image
        self.gateway = self.host.gateway
        self.sock = self.host.sock
        self.relays: list[Relay] = []
        self.timings: list[tuple[str, float]] = []

    # ------------------------------------------------------------------ configuration
    def apiserver_args(self) -> list[str]:
        d = self.dir
        args = [a for a in super().apiserver_args() if not a.startswith("--authorization-mode")]
        return [*args, "--authorization-mode=Node,RBAC", "--kubelet-preferred-address-types=Hostname",
                f"--kubelet-client-certificate={d / 'kube-apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={d / 'kube-apiserver-kubelet-client.key'}"]

    def controller_args(self) -> list[str]:
        # no taint-eviction controller: a node briefly NotReady must not evict the tests' pods
        return [*super().controller_args(), "--node-monitor-grace-period=40s"]

    def _containerd_config(self) -> Path:
        c = self.host.dir / "containerd"
        c.mkdir(exist_ok=True)
        (self.host.dir / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
        conflist = {"cniVersion": "1.0.0", "name": f"benchpilot-{self.host.id}", "plugins": [{
            "type": "bridge", "bridge": self.host.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
            # no routes: a pod reaches its /24 (the host's bridge address, other pods) and nothing else
            "ipam": {"type": "host-local", "ranges": [[{"subnet": str(self.host.subnet), "gateway": self.gateway}]],
                     "dataDir": str(self.host.dir / "cni" / "ipam")}}]}
        (self.host.dir / "cni" / "net.d" / "10-benchpilot.conflist").write_text(json.dumps(conflist))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        toml = f"""version = 2
root = "{c / 'root'}"
state = "{c / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{c / 'ttrpc.sock'}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c / 'opt'}"
[{cri}]
  sandbox_image = "{self.pause_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{c / 'runc'}"
[{cri}.cni]
  bin_dir = "{self.cni_dir}"
  conf_dir = "{self.host.dir / 'cni' / 'net.d'}"
  max_conf_num = 1
"""
        (c / "config.toml").write_text(toml)
        return c / "config.toml"

    def _kubelet_config(self) -> Path:
        d, k = self.dir, self.host.dir / "kubelet"
        k.mkdir(exist_ok=True)
        cert, key = self.client_cert("kubelet-serving", (), sans=("localhost", "127.0.0.1"))
        cfg = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": "127.0.0.1", "port": free_port(), "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(), "tlsCertFile": str(cert), "tlsPrivateKeyFile": str(key),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(d / "ca.crt")}},
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{self.host.cgroup}", "failCgroupV1": False,
            "failSwapOn": False, "podLogsDir": str(self.host.dir / "pod-logs"), "resolvConf": "",
            "volumePluginDir": str(k / "volume-plugins"),
            # the disk is shared with other work: evict only for real trouble, never GC the test images
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False, "maxPods": 40, "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s", "fileCheckFrequency": "10s", "shutdownGracePeriod": "0s",
        }
        (k / "config.json").write_text(json.dumps(cfg))
        return k / "config.json"

    # ------------------------------------------------------------------ processes
    def _start(self, name: str, args: list[str], exe: str | None = None) -> None:
        log = self.host.dir / f"{name}.log"
        self.logs[name] = log
        self.procs[name] = subprocess.Popen([exe or str(self.bin / name), *args], stdout=open(log, "ab"),
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.host.record_pid(name, self.procs[name].pid)

    def ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        res = subprocess.run(["ctr", "--address", str(self.sock), "-n", "k8s.io", *args], capture_output=True,
                             text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {res.stderr[-2000:]}")
        return res

    def _start_runtime(self) -> None:
        self._start("containerd", ["--config", str(self._containerd_config())], exe="containerd")
        self.wait_for(lambda: self._alive("containerd") and self.sock.exists()
                      and subprocess.run(["ctr", "--address", str(self.sock), "version"],
                                         capture_output=True).returncode == 0, 60, "containerd to serve")

    def _import_images(self) -> None:
        for archive in (self.pause_archive, self.runner_archive):
            self.ctr("images", "import", archive)

    def _cgroups(self) -> None:
        """The kubelet's cgroup root, in every hierarchy (it must exist; cpuset needs its cpus and mems)."""
        for hierarchy in H.CGROUP_ROOT.iterdir():
            if not (hierarchy / "cgroup.procs").exists():
                continue
            d = hierarchy / self.host.cgroup
            d.mkdir(exist_ok=True)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if (d / f).exists() and not (d / f).read_text().strip():
                    (d / f).write_text((hierarchy / f).read_text())

    def _start_kubelet(self) -> None:
        self._cgroups()
        kubeconfig = self.kubeconfig("node", cert=self.dir / "system-node-localhost.crt",
                                     key=self.dir / "system-node-localhost.key")
        self._start("kubelet", [f"--config={self._kubelet_config()}", f"--kubeconfig={kubeconfig}",
                                f"--root-dir={self.host.dir / 'kubelet' / 'root'}", "--hostname-override=localhost",
                                f"--node-ip={self.gateway}", "--v=1"])

    def _alive(self, name: str) -> bool:
        p = self.procs[name]
        if p.poll() is not None:
            raise RuntimeError(f"{name} exited ({p.returncode}): {self.logs[name].read_text()[-3000:]}")
        return True

    def node_ready(self) -> bool:
        for name in ("kubelet", "containerd", "kube-scheduler"):
            self._alive(name)
        res = self.kubectl("get", "node", "localhost", "-o", "json", check=False)
        if res.returncode != 0:
            return False
        node = json.loads(res.stdout)
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
        return ready and not node["spec"].get("taints")

    def start(self, timeout: float = 120) -> "NodeCluster":
        t = self.timings
        _timed(t, "bridge", self.host.make_bridge)
        _timed(t, "control plane", super().start, timeout)
        sched = self.kubeconfig("scheduler", cert=self.dir / "system-kube-scheduler.crt",
                                key=self.dir / "system-kube-scheduler.key")
        self._start("kube-scheduler", [f"--kubeconfig={sched}", f"--authentication-kubeconfig={sched}",
                                       f"--authorization-kubeconfig={sched}", "--bind-address=127.0.0.1",
                                       "--secure-port=0", "--leader-elect=false", "--v=1"])
        _timed(t, "containerd", self._start_runtime)
        _timed(t, "image import", self._import_images)
        self._start_kubelet()
        _timed(t, "node Ready", self.wait_for, self.node_ready, 120, "node localhost Ready and untainted", 1.0)
        # in-cluster clients dial https://kubernetes.default.svc: a relay on the bridge's address, port 443
        self.relays.append(Relay(self.gateway, self.port, 443))
        return self

    def relay(self, port: int) -> Relay:
        """A relay from the bridge's address to a server on 127.0.0.1:``port``, closed with the node."""
        r = Relay(self.gateway, port)
        self.relays.append(r)
        return r

    def stop(self) -> list[str]:
        t = self.timings
        for r in self.relays:
            r.close()
        _timed(t, "stop kubelet, scheduler", self._stop, "kubelet", "kube-scheduler")
        # nothing of this cluster is kept: the control plane gets 5 s to stop, all at once
        _timed(t, "stop control plane", self._stop, "kube-controller-manager", "kube-apiserver", "etcd")
        super().stop()  # (already stopped) removes the k8s folder
        # containers, shims, containerd, mounts, bridge, cgroups, sysctls
        return _timed(t, "host teardown", self.host.teardown)

    def _stop(self, *names: str, grace: float = 5) -> None:
        for name in names:
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + grace
        for name in names:
            p = self.procs.get(name)
            if p is not None:
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
