import shutil

import pytest

from tests.cluster.control_plane import OP_NS, RELEASE, ControlPlane, k8s_bin
from tests.helpers import ROOT


def pytest_collection_modifyitems(config, items):
    """Without Go the binaries cannot be built: skip this tier with one visible reason, never silently."""
    if shutil.which("go") or k8s_bin(build=False):
        return
    skip = pytest.mark.skip(reason="cluster tier skipped: `go` is not installed, so scripts/k8s-bin.sh cannot build "
                                   "kube-apiserver, kube-controller-manager, kubectl, etcd and helm")
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="package")
def control_plane():
    """etcd + kube-apiserver (RBAC, service-account tokens) + kube-controller-manager, for this tier
    (stopped when it ends: the node tier starts a control plane of its own)."""
    cp = ControlPlane(k8s_bin(build=True)).start()
    yield cp
    cp.stop()


@pytest.fixture(scope="package")
def installed(control_plane):
    """`helm install` of charts/benchpilot with real Helm: CRD, ServiceAccount, RBAC, Deployment."""
    cp = control_plane
    cp.helm("install", RELEASE, str(ROOT / "charts" / "benchpilot"), "-n", OP_NS, "--create-namespace",
            "--set", "operator.resyncSeconds=1")
    cp.kubectl("wait", "--for=condition=Established", "crd/benchmarkruns.benchpilot.io", "--timeout=60s")
    return cp
