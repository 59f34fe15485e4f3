"""The node tier: benchpilot's own image in pods that a real kubelet runs, made by the operator that a
``helm install`` of charts/benchpilot deployed — itself a pod, logged in with its ServiceAccount.

Preparation (``scripts/node-prepare.sh``: the binaries, the pause image and the runner image built
from runner-image/Dockerfile) runs once at collection, outside the tests' timeouts, and is cached
outside the repo; ``make test`` runs it first, printing how long each step took. The cluster is
started and stopped by the package fixture, which first tears down what a killed earlier run left.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.node.runs import BUCKET, OP_NS, RELEASE, Runs, describe

PREPARED: dict = {}
TIMINGS: list[tuple[str, float]] = []


def _prepare() -> None:
    """Run scripts/node-prepare.sh once: its "key value" lines, or why the tier cannot run here."""
    if PREPARED:
        return
    if not shutil.which("go") and subprocess.run([str(ROOT / "scripts" / "k8s-bin.sh"), "--check", "--node"],
                                                 capture_output=True).returncode != 0:
        PREPARED["skip"] = "node tier skipped: `go` is not installed, so scripts/k8s-bin.sh cannot build the kubelet"
        return
    t0 = time.monotonic()
    res = subprocess.run([str(ROOT / "scripts" / "node-prepare.sh")], capture_output=True, text=True, timeout=5400)
    TIMINGS.append(("prepare (node-prepare.sh)", round(time.monotonic() - t0, 1)))
    PREPARED["log"] = res.stderr
    if res.returncode == 3:
        PREPARED["skip"] = "node tier skipped: " + res.stderr.strip().splitlines()[-1]
    elif res.returncode != 0:
        PREPARED["error"] = f"scripts/node-prepare.sh failed ({res.returncode}):\n{res.stderr[-4000:]}"
    else:
        PREPARED.update(line.split(" ", 1) for line in res.stdout.strip().splitlines())


def pytest_collection_modifyitems(config, items):
    mine = [i for i in items if "tests/node/" in str(i.fspath)]
    if not mine:
        return
    _prepare()
    if "skip" in PREPARED:
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=PREPARED["skip"]))


def pytest_terminal_summary(terminalreporter):
    if TIMINGS or PREPARED.get("log"):
        terminalreporter.write_line("node tier set-up: " + ", ".join(f"{w} {s}s" for w, s in TIMINGS))
        for line in PREPARED.get("log", "").splitlines():
            terminalreporter.write_line("  " + line)


@pytest.fixture(scope="package")
def node():
    """The one-node cluster for the tier; torn down (host put back) even when a test fails."""
    from tests.node import host as H
    from tests.node.cluster import NodeCluster

    if "error" in PREPARED:
        pytest.fail(PREPARED["error"])
    left = H.clean_leftovers()
    if left:
        print(f"node tier: tore down what killed runs left: {', '.join(left)}")
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a stopped CI run still runs the finalizers
    cluster = NodeCluster(Path(PREPARED["bin"]), Path(PREPARED["cni"]),
                          (PREPARED["runner_image"], PREPARED["runner_archive"]),
                          (PREPARED["pause_image"], PREPARED["pause_archive"]))
    try:
        cluster.start()
        yield cluster
    finally:
        problems = cluster.stop()
        TIMINGS.extend(cluster.timings)
        signal.signal(signal.SIGTERM, previous)
    assert not problems, problems


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="package")
def servers(node):
    """SeaweedFS and the fake LLM on 127.0.0.1, each reached by pods through a relay on the bridge."""
    from tests.servers.fake_llm import ServerThread
    from tests.servers.s3 import SeaweedFS

    s3 = SeaweedFS().start()
    node.host.record_pid("seaweedfs", s3.proc.pid, s3.dir)  # a killed run's is stopped by the next
    llm = ServerThread().start()
    try:
        s3.bucket(BUCKET)
        yield {"s3": s3, "s3_relay": node.relay(int(s3.endpoint.rsplit(":", 1)[1])),
               "llm": llm, "llm_relay": node.relay(llm.port)}
    finally:
        llm.stop()
        s3.close()


@pytest.fixture(scope="package")
def chart(node):
    """`helm install` of charts/benchpilot with the image built here; the operator runs as its pod."""
    repo, tag = PREPARED["runner_image"].rsplit(":", 1)
    aliases = json.dumps([{"ip": node.gateway, "hostnames": ["kubernetes.default.svc"]}])
    node.helm("install", RELEASE, str(ROOT / "charts" / "benchpilot"), "-n", OP_NS, "--create-namespace",
              "--set", f"image.repository={repo}", "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never",
              "--set", "operator.resyncSeconds=1", "--set-json", f"operator.hostAliases={aliases}")
    node.kubectl("wait", "--for=condition=Established", "crd/benchmarkruns.benchpilot.io", "--timeout=60s")
    try:
        node.kubectl("rollout", "status", f"deployment/{RELEASE}-benchpilot-operator", "-n", OP_NS, "--timeout=180s")
    except AssertionError:
        raise AssertionError(f"the operator pod did not become available:\n{describe(node, OP_NS)}") from None
    return node


@pytest.fixture
def runs(chart, servers):
    """A namespace of its own for a test's runs, with the S3 credentials Secret; deleted after it."""
    r = Runs(chart, servers)
    yield r
    r.close()
