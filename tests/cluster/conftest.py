import shutil

import pytest

from tests.cluster.control_plane import ControlPlane, k8s_bin


def pytest_collection_modifyitems(config, items):
    """Without Go the binaries cannot be built: skip this tier with one visible reason, never silently."""
    if shutil.which("go") or k8s_bin(build=False):
        return
    skip = pytest.mark.skip(reason="cluster tier skipped: `go` is not installed, so scripts/k8s-bin.sh cannot build "
                                   "kube-apiserver, kube-controller-manager, kubectl, etcd and helm")
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def control_plane():
    """etcd + kube-apiserver (RBAC, service-account tokens) + kube-controller-manager, for the session."""
    cp = ControlPlane(k8s_bin(build=True)).start()
    yield cp
    cp.stop()
