"""A real Kubernetes control plane on 127.0.0.1 for tests: etcd, kube-apiserver, kube-controller-manager.

Binaries come from ``scripts/k8s-bin.sh`` (built from Go modules, cached outside the repo). The API
server runs with RBAC authorization, client-certificate and service-account-token authentication,
and generated certificates in a temporary folder; the controller-manager runs the Job controller,
the garbage collector and the service-account controllers. There is no kubelet and no scheduler:
a test plays the kubelet by writing pod status through ``pods/status``.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.helpers import ROOT, wait_for
from tests.servers.s3 import free_port

RELEASE, OP_NS = "bp", "benchpilot"  # the chart's release and namespace in the cluster tier


def k8s_bin(build: bool = True) -> Path | None:
    """The folder of the built binaries; builds them (minutes, once per machine) when ``build``."""
    script = ROOT / "scripts" / "k8s-bin.sh"
    check = subprocess.run([str(script), "--check"], capture_output=True, text=True)
    if check.returncode == 0:
        return Path(check.stdout.strip())
    if not build or not shutil.which("go"):
        return None
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/k8s-bin.sh failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _cert(subject_cn: str, key, issuer_cert=None, issuer_key=None, *, orgs=(), ca=False, sans=()) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn),
                      *[x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]])
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer_cert.subject if issuer_cert else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(s)) if s[0].isdigit() else x509.DNSName(s) for s in sans]),
            critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


class ControlPlane:
    # client certificates made at start: (user, groups); files <user with ':' as '-'>.crt/.key
    users: tuple[tuple[str, tuple[str, ...]], ...] = (("admin", ("system:masters",)),
                                                       ("system:kube-controller-manager", ()))
    controllers = "job,garbagecollector,serviceaccount,serviceaccount-token,namespace"

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="k8s-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.etcd_port, self.peer_port, self.port = free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ certificates and kubeconfigs
    def _pki(self) -> None:
        d = self.dir
        ca_key = _key()
        ca = _cert("benchpilot-test-ca", ca_key, ca=True)
        (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        srv_key = _key()
        srv = _cert("kube-apiserver", srv_key, ca, ca_key,
                    sans=("127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"))
        (d / "apiserver.crt").write_bytes(srv.public_bytes(serialization.Encoding.PEM))
        (d / "apiserver.key").write_bytes(_pem_key(srv_key))
        self.ca, self.ca_key = ca, ca_key
        for user, orgs in self.users:
            self.client_cert(user, orgs)
        sa = _key()
        (d / "sa.key").write_bytes(_pem_key(sa))
        (d / "sa.pub").write_bytes(sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
        self.admin_kubeconfig = self.kubeconfig("admin", cert=d / "admin.crt", key=d / "admin.key")
        self.cm_kubeconfig = self.kubeconfig("kcm", cert=d / "system-kube-controller-manager.crt",
                                             key=d / "system-kube-controller-manager.key")

    def client_cert(self, user: str, orgs: tuple[str, ...] = (), sans: tuple[str, ...] = ()) -> tuple[Path, Path]:
        """A key and a certificate for ``user`` in ``orgs`` (groups), signed by the cluster's CA."""
        k = _key()
        c = _cert(user, k, self.ca, self.ca_key, orgs=orgs, sans=sans)
        base = self.dir / user.replace(":", "-")
        base.with_suffix(".crt").write_bytes(c.public_bytes(serialization.Encoding.PEM))
        base.with_suffix(".key").write_bytes(_pem_key(k))
        return base.with_suffix(".crt"), base.with_suffix(".key")

    def kubeconfig(self, name: str, *, cert: Path | None = None, key: Path | None = None, token: str | None = None,
                   namespace: str = "default", embed: bool = False) -> Path:
        """A kubeconfig for ``name``; ``embed`` writes the CA and client certificate into it as base64
        ``*-data`` fields, as kind, EKS and GKE do, instead of naming files."""
        b64 = lambda p: base64.b64encode(Path(p).read_bytes()).decode()  # noqa: E731
        if cert and embed:
            user: dict = {"client-certificate-data": b64(cert), "client-key-data": b64(key)}
        else:
            user = {"client-certificate": str(cert), "client-key": str(key)} if cert else {"token": token}
        ca = ({"certificate-authority-data": b64(self.dir / "ca.crt")} if embed
              else {"certificate-authority": str(self.dir / "ca.crt")})
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
               "clusters": [{"name": "test", "cluster": {"server": self.url, **ca}}],
               "users": [{"name": name, "user": user}],
               "contexts": [{"name": "test", "context": {"cluster": "test", "user": name, "namespace": namespace}}]}
        path = self.dir / f"{name}.kubeconfig"
        path.write_text(json.dumps(cfg))
        return path

    # ------------------------------------------------------------------ processes
    def _start(self, name: str, args: list[str]) -> None:
        log = self.dir / f"{name}.log"
        self.logs[name] = log
        self.procs[name] = subprocess.Popen([str(self.bin / name), *args], stdout=open(log, "ab"),
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def apiserver_args(self) -> list[str]:
        d = self.dir
        return [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={d / 'apiserver.crt'}", f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--client-ca-file={d / 'ca.crt'}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={d / 'sa.pub'}", f"--service-account-signing-key-file={d / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/24", "--allow-privileged=false", "--profiling=false",
            "--endpoint-reconciler-type=none",  # loopback cannot be the kubernetes Service endpoint
            f"--cert-dir={d / 'certs'}", "--v=1"]

    def controller_args(self) -> list[str]:
        d = self.dir
        return [
            f"--kubeconfig={self.cm_kubeconfig}", f"--authentication-kubeconfig={self.cm_kubeconfig}",
            f"--authorization-kubeconfig={self.cm_kubeconfig}", "--bind-address=127.0.0.1", "--secure-port=0",
            f"--controllers={self.controllers}",
            f"--service-account-private-key-file={d / 'sa.key'}", f"--root-ca-file={d / 'ca.crt'}",
            "--use-service-account-credentials=true", "--leader-elect=false", "--concurrent-job-syncs=20",
            "--v=1"]

    def start(self, timeout: float = 120) -> "ControlPlane":
        self._pki()
        d = self.dir
        self._start("etcd", [f"--data-dir={d / 'etcd'}", f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                             f"--listen-peer-urls=http://127.0.0.1:{self.peer_port}"])
        self._start("kube-apiserver", self.apiserver_args())
        self._wait_ready(timeout)
        self._start("kube-controller-manager", self.controller_args())
        self.wait_for(lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)
                      .returncode == 0, 60, "the default service account (the controller-manager works)")
        return self

    def _wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited: {self.logs[name].read_text()[-3000:]}")
            return self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0
        try:
            wait_for(ready, timeout, "kube-apiserver /readyz", interval=0.5)
        except AssertionError as exc:
            raise RuntimeError(f"{exc}\n{self.logs['kube-apiserver'].read_text()[-3000:]}") from None

    def wait_for(self, predicate, timeout: float, what: str, interval: float = 0.3):
        """tests.helpers.wait_for, polling less often: each check here is a kubectl process."""
        return wait_for(predicate, timeout, what, interval)

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ clients
    def env(self, kubeconfig: Path | None = None) -> dict:
        return {**os.environ, "KUBECONFIG": str(kubeconfig or self.admin_kubeconfig)}

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess:
        res = subprocess.run([str(self.bin / "kubectl"), *args], capture_output=True, text=True, input=input,
                             env=self.env(kubeconfig), timeout=120)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {res.stderr[-2000:]}")
        return res

    def get(self, *args: str, kubeconfig: Path | None = None) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json", kubeconfig=kubeconfig).stdout)

    def apply(self, obj: dict, *, check: bool = True) -> subprocess.CompletedProcess:
        return self.kubectl("apply", "-f", "-", input=json.dumps(obj), check=check)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([str(self.bin / "helm"), *args], capture_output=True, text=True, env=self.env(),
                             timeout=300)
        if check and res.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}: {res.stderr[-2000:]}")
        return res

    def pod_status(self, ns: str, pod: str, status: dict) -> None:
        """Play the kubelet: write a pod's status through the pods/status subresource."""
        self.kubectl("patch", "pod", pod, "-n", ns, "--subresource=status", "--type=merge",
                     "-p", json.dumps({"status": status}))

    def raw(self, path: str) -> dict:
        return json.loads(self.kubectl("get", "--raw", path).stdout)


def url_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False
