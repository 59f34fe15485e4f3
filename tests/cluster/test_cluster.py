"""The operator against a real control plane: API server, etcd, Job controller, garbage collector, RBAC, Helm.

The API server validates (structural schema, CEL, Job validation), authorizes (the chart's RBAC, through a
service-account token), and the controller-manager's Job controller and garbage collector act; the
test plays only the kubelet (pod status through pods/status).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.bad_manifests import BAD
from tests.cluster.control_plane import OP_NS, RELEASE
from tests.helpers import EXAMPLES, ROOT, manifest, pod_env

pytestmark = pytest.mark.slow
SA = f"{RELEASE}-benchpilot-operator"


class Operator:
    """The operator as a process, authenticated with the chart's ServiceAccount token (its RBAC, nothing more)."""

    def __init__(self, cp, kubeconfig: Path, log: Path):
        self.env = {**cp.env(kubeconfig), "BENCHPILOT_METRICS_PORT": "0", "BENCHPILOT_LIVENESS_PORT": "0",
                    "BENCHPILOT_RESYNC_SECONDS": "1", "BENCHPILOT_API_SERVER": ""}
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "benchpilot_operator"], cwd=ROOT, env=self.env,
                                     stdout=open(self.log, "a"), stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def restart(self) -> None:
        self.stop()
        self.start()

    def reconciles(self, ns: str, name: str, since: int = 0) -> int:
        """How many reconciles of run ns/name the log shows after byte ``since`` (kopf logs each one)."""
        return count_reconciles(self.log, ns, name, since)

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0


def count_reconciles(log: Path, ns: str, name: str, since: int = 0) -> int:
    n = 0
    with open(log, "rb") as fh:
        fh.seek(since)
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            ref = rec.get("k8s_ref") or {}
            if "succeeded" in str(rec.get("msg")) and (ref.get("namespace"), ref.get("name")) == (ns, name):
                n += 1
    return n


@pytest.fixture(scope="module")
def operator(installed, tmp_path_factory):
    cp = installed
    sa = cp.get("serviceaccounts", "-n", OP_NS)["items"]
    name = next(s["metadata"]["name"] for s in sa if s["metadata"]["name"].endswith("operator"))
    token = cp.kubectl("create", "token", name, "-n", OP_NS, "--duration=2h").stdout.strip()
    op = Operator(cp, cp.kubeconfig("operator", token=token, namespace=OP_NS),
                  tmp_path_factory.mktemp("op") / "operator.log")
    op.start()
    yield op
    op.stop()


def ns_(cp) -> str:
    ns = f"r-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", ns)
    return ns


def run_doc(name: str, ns: str, **spec) -> dict:
    doc = manifest(**spec)
    doc["metadata"] = {"name": name, "namespace": ns}
    return doc


def jobs(cp, ns, run) -> list[dict]:
    return cp.get("jobs", "-n", ns, "-l", f"benchpilot.io/run={run}")["items"]


def status(cp, ns, run) -> dict:
    return cp.get("benchmarkrun", run, "-n", ns).get("status") or {}


def play_kubelet(cp, ns, job: dict, exit_code: int, message: dict | None = None) -> None:
    """The Job controller made a pod; the 'kubelet' runs it to the end with ``exit_code``."""
    name = job["metadata"]["name"]
    pod = cp.wait_for(lambda: next(iter(cp.get("pods", "-n", ns, "-l", f"job-name={name}")["items"]), None), 60,
                      f"the Job controller to create a pod for {name}")
    term = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:00Z"}
    if message:
        term["message"] = json.dumps(message)
    cp.pod_status(ns, pod["metadata"]["name"], {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "containerStatuses": [{"name": "runner", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
                               "state": {"terminated": term}}]})


def test_crd_admission_refuses_bad_manifests_with_its_messages(installed):
    cp = installed
    ns = ns_(cp)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        doc["metadata"]["namespace"] = ns
        res = cp.apply(doc, check=False)
        assert res.returncode == 0, f"{path.name}: {res.stderr}"
    for bad in (b for b in BAD if b.crd is not None):  # the table of bad manifests: what the CRD can refuse
        doc = run_doc("bad", ns)
        bad.change(doc)
        res = cp.apply(doc, check=False)
        assert res.returncode != 0 and bad.crd in res.stderr, (bad.id, res.stderr)
    # immutable fields refuse updates; suspend may change
    good = run_doc("immutable", ns)
    cp.apply(good)
    changed = copy.deepcopy(good)
    changed["spec"]["matrix"]["instances"] = 9
    res = cp.apply(changed, check=False)
    assert res.returncode != 0 and "matrix is immutable" in res.stderr
    changed = copy.deepcopy(good)
    changed["spec"]["suspend"] = True
    assert cp.apply(changed, check=False).returncode == 0


def test_what_the_schema_cannot_say_is_an_invalid_spec_condition(installed, operator):
    """Model entries are strings or objects: the API server admits them; the operator's parser refuses."""
    cp = installed
    ns = ns_(cp)
    doc = run_doc("odd", ns)
    doc["spec"]["matrix"]["models"] = ["bard/x"]
    cp.apply(doc)
    st = cp.wait_for(lambda: (s := status(cp, ns, "odd")).get("phase") == "Failed" and s, 60, "InvalidSpec")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.matrix.models[0]" in ready["message"] and not jobs(cp, ns, "odd")
    # the vocabulary is the suite's (a plug-in): admitted by the API server, refused by the parser
    doc = run_doc("clever", ns)
    doc["spec"].update(suite="text2sql")
    doc["spec"]["matrix"].update(promptTypes=["clever"], difficulties=["simple"], taskTypes=["join"])
    cp.apply(doc)
    st = cp.wait_for(lambda: (s := status(cp, ns, "clever")).get("phase") == "Failed" and s, 60, "InvalidSpec")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec" and "spec.matrix.promptTypes[0]" in ready["message"]
    assert "zero_shot" in ready["message"] and not jobs(cp, ns, "clever")


def test_a_run_goes_through_the_real_job_controller_and_garbage_collector(installed, operator):
    cp = installed
    ns = ns_(cp)
    doc = run_doc("real", ns, sharding={"shards": 3, "maxParallelShards": 3},
                  endpoint={"baseURL": "http://llm:8000/v1", "apiKeySecretRef": {"name": "k"}})
    doc["spec"]["matrix"]["models"] = ["sim/weak", "openai/m"]
    cp.apply(doc)
    js = cp.wait_for(lambda: (j := jobs(cp, ns, "real")) and len(j) == 3 and j, 60, "3 Jobs accepted by the API server")
    job = js[0]
    assert job["spec"]["podFailurePolicy"]["rules"] and job["spec"]["podReplacementPolicy"] == "Failed"
    assert cp.get("configmap", "real-spec", "-n", ns)["data"]["run.json"]
    assert json.loads(cp.get("configmap", "real-shares", "-n", ns)["data"]["shares.json"])["shards"]
    by_index = {int(j["metadata"]["labels"]["benchpilot.io/shard"]): j for j in js}
    # shard 0 succeeds; shard 1 exits 2 (configuration): FailJob by the real Job controller; shard 2 exits 3 twice
    play_kubelet(cp, ns, by_index[0], 0, {"reason": "Complete", "done": 6, "failed": 0})
    play_kubelet(cp, ns, by_index[1], 2, {"reason": "AuthRefused", "message": "endpoint 'default' refused the API key"})
    try:
        st = cp.wait_for(lambda: (s := status(cp, ns, "real")).get("failedShards") and s, 90, "shard 1 failed")
    except AssertionError:
        raise AssertionError(f"operator log: {Path(operator.log).read_text()[-3000:]}") from None
    assert st["failedShards"][0]["reason"] == "AuthRefused" and "'default'" in st["failedShards"][0]["message"]
    failed_job = cp.get("job", "real-s1", "-n", ns)
    assert any(c["type"] == "Failed" and c["reason"] == "PodFailurePolicy" for c in failed_job["status"]["conditions"])
    # delete the run: its Jobs, pods and ConfigMaps go through the real garbage collector
    cp.kubectl("delete", "benchmarkrun", "real", "-n", ns, "--wait=false")
    cp.wait_for(lambda: not jobs(cp, ns, "real") and not [c for c in cp.get("configmaps", "-n", ns)["items"]
                                                         if c["metadata"]["name"].startswith("real-")],
                120, "the garbage collector to delete the run's Jobs and ConfigMaps")
    cp.wait_for(lambda: not cp.get("pods", "-n", ns, "-l", "benchpilot.io/run=real")["items"], 120,
                "the garbage collector to delete the run's pods")
    log = Path(operator.log).read_text()
    refused = re.findall(r"HTTP 403|is forbidden|Forbidden", log)
    assert not refused, "every call the operator made was allowed by its RBAC"


def test_success_and_two_runs_side_by_side(installed, operator):
    cp = installed
    ns = ns_(cp)
    for name in ("left", "right"):
        cp.apply(run_doc(name, ns, sharding={"shards": 2}))
    for name in ("left", "right"):
        js = cp.wait_for(lambda n=name: (j := jobs(cp, ns, n)) and len(j) == 2 and j, 60, f"Jobs of {name}")
        assert all(j["metadata"]["labels"]["benchpilot.io/run"] == name for j in js), "real label selectors"
    for job in jobs(cp, ns, "left"):
        play_kubelet(cp, ns, job, 0, {"reason": "Complete", "done": 8, "failed": 0})
    cp.wait_for(lambda: status(cp, ns, "left").get("phase") == "Succeeded", 90, "left Succeeded")
    assert status(cp, ns, "right").get("phase") in ("Pending", "Running"), "right is not touched by left's pods"


def test_real_job_controller_deadline_oom_suspend_and_a_restart(installed, operator):
    cp = installed
    ns = ns_(cp)
    cp.apply(run_doc("dl", ns, sharding={"shards": 1}, limits={"activeDeadlineSeconds": 3}))
    st = cp.wait_for(lambda: (s := status(cp, ns, "dl")).get("failedShards") and s, 90,
                     "activeDeadlineSeconds enforced by the Job controller")
    assert st["failedShards"][0]["reason"] == "DeadlineExceeded" and st["phase"] == "Failed"

    cp.apply(run_doc("oom", ns, sharding={"shards": 1}, resources={"maxPodMemory": "4Gi"}))
    (job,) = cp.wait_for(lambda: (j := jobs(cp, ns, "oom")) and j, 60, "the oom run's Job")
    before = job["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"]
    pod = cp.wait_for(lambda: next(iter(cp.get("pods", "-n", ns, "-l", "job-name=oom-s0")["items"]), None), 60, "pod")
    cp.pod_status(ns, pod["metadata"]["name"], {"phase": "Failed", "containerStatuses": [
        {"name": "runner", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
         "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2026-01-01T00:00:00Z",
                                  "finishedAt": "2026-01-01T00:01:00Z"}}}]})

    def grown():
        js = jobs(cp, ns, "oom")
        mem = js and js[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"]
        return mem if mem and mem != before else None
    after = cp.wait_for(grown, 90, "the OOMKilled shard re-created with more memory")
    assert int(after.rstrip("Mi")) > int(before.rstrip("Mi"))
    assert status(cp, ns, "oom")["shardRetries"]["0"]["oomKilled"] == 1

    cp.apply(run_doc("pause", ns, sharding={"shards": 2}))
    cp.wait_for(lambda: len(jobs(cp, ns, "pause")) == 2, 60, "2 Jobs")
    cp.kubectl("patch", "benchmarkrun", "pause", "-n", ns, "--type=merge", "-p", '{"spec": {"suspend": true}}')
    cp.wait_for(lambda: all(j["spec"].get("suspend") for j in jobs(cp, ns, "pause"))
                and status(cp, ns, "pause").get("phase") == "Suspended", 60, "suspended Jobs")
    cp.wait_for(lambda: not [p for p in cp.get("pods", "-n", ns, "-l", "benchpilot.io/run=pause")["items"]
                             if not p["metadata"].get("deletionTimestamp")], 60,
                "the Job controller to remove the suspended Jobs' pods")
    cp.kubectl("patch", "benchmarkrun", "pause", "-n", ns, "--type=merge", "-p", '{"spec": {"suspend": false}}')
    cp.wait_for(lambda: not any(j["spec"].get("suspend") for j in jobs(cp, ns, "pause")), 60, "resumed Jobs")
    cp.wait_for(lambda: len(cp.get("pods", "-n", ns, "-l", "benchpilot.io/run=pause")["items"]) >= 2, 60,
                "pods again")

    # a restarted operator finds its Jobs by name, label and owner: it creates none twice
    names = sorted(j["metadata"]["name"] for j in cp.get("jobs", "-n", ns)["items"])
    mark = operator.log_size()
    operator.restart()
    cp.wait_for(lambda: operator.reconciles(ns, "pause", since=mark) >= 3, 60,
                "three reconciles of the run by the restarted operator")
    assert operator.proc.poll() is None
    assert sorted(j["metadata"]["name"] for j in cp.get("jobs", "-n", ns)["items"]) == names


def test_a_verb_removed_from_the_role_is_a_clear_condition_not_a_crash(installed, tmp_path):
    cp = installed
    role = cp.get("clusterrole", f"{RELEASE}-benchpilot-operator")
    cut = copy.deepcopy(role)
    for rule in cut["rules"]:
        if "jobs" in rule.get("resources", []):
            rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        cut["metadata"].pop(key, None)
    cp.apply(cut)
    sa = next(s["metadata"]["name"] for s in cp.get("serviceaccounts", "-n", OP_NS)["items"]
              if s["metadata"]["name"].endswith("operator"))
    token = cp.kubectl("create", "token", sa, "-n", OP_NS).stdout.strip()
    env = {**cp.env(cp.kubeconfig("op2", token=token)), "BENCHPILOT_METRICS_PORT": "0",
           "BENCHPILOT_LIVENESS_PORT": "0", "BENCHPILOT_RESYNC_SECONDS": "1", "BENCHPILOT_API_SERVER": ""}
    log = tmp_path / "op.log"
    proc = subprocess.Popen([sys.executable, "-m", "benchpilot_operator"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    ns = ns_(cp)
    try:
        cp.apply(run_doc("nocreate", ns, sharding={"shards": 1}))
        st = cp.wait_for(lambda: (s := status(cp, ns, "nocreate")).get("conditions") and any(
            c["reason"] == "Forbidden" for c in s["conditions"]) and s, 60, "a Forbidden condition")
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False" and "cannot create resource" in ready["message"], ready["message"]
        assert "jobs" in ready["message"] and "rbac.yaml" in ready["message"]
        mark = log.stat().st_size
        cp.wait_for(lambda: count_reconciles(log, ns, "nocreate", mark) >= 2, 60, "two more reconciles after it")
        assert proc.poll() is None, "the operator keeps running"
    finally:
        proc.terminate()
        proc.wait(20)
        cp.apply({k: v for k, v in role.items() if k != "status"} | {"metadata": {
            k: v for k, v in role["metadata"].items() if k not in ("resourceVersion", "uid", "creationTimestamp",
                                                                   "managedFields")}})


def run_pod_locally(cp, ns: str, job_name: str, tmp: Path) -> tuple[int, dict]:
    """Play the kubelet for real: run the pod's runner command as a local process with the pod's env and
    its mounted ConfigMap, then write the pod's status (exit code, termination message) via pods/status."""
    pod = cp.wait_for(lambda: next(iter([p for p in cp.get("pods", "-n", ns, "-l", f"job-name={job_name}")["items"]
                                         if not (p.get("status") or {}).get("containerStatuses")]), None), 90,
                      f"a new pod of {job_name}")
    c = pod["spec"]["containers"][0]
    env = pod_env(c, tmp)
    cm = cp.get("configmap", f"{job_name.rsplit('-s', 1)[0]}-spec", "-n", ns)
    spec_file = tmp / f"{pod['metadata']['name']}-run.json"
    spec_file.write_text(cm["data"]["run.json"])
    term = tmp / f"{pod['metadata']['name']}.termination"
    env.update(BENCHPILOT_SPEC=str(spec_file), BENCHPILOT_TERMINATION_LOG=str(term),
               BENCHPILOT_HEALTH_HOST="127.0.0.1", BENCHPILOT_HEALTH_PORT=str(__import__("tests.servers.s3", fromlist=[
                   "free_port"]).free_port()), HOME=str(tmp))
    env.pop("BENCHPILOT_SHARES_FILE", None)
    cp.pod_status(ns, pod["metadata"]["name"], {"phase": "Running", "containerStatuses": [
        {"name": "runner", "image": "x", "imageID": "", "ready": True, "restartCount": 0,
         "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]})
    done = subprocess.run([sys.executable, "-m", "benchpilot_runner", *c["args"]], env={**__import__("os").environ,
                          **env}, cwd=tmp, capture_output=True, text=True, timeout=240)
    message = term.read_text() if term.exists() else ""
    cp.pod_status(ns, pod["metadata"]["name"], {
        "phase": "Succeeded" if done.returncode == 0 else "Failed",
        "containerStatuses": [{"name": "runner", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
                               "state": {"terminated": {"exitCode": done.returncode, "message": message,
                                                        "startedAt": "2026-01-01T00:00:00Z",
                                                        "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                    time.gmtime())}}}]})
    return done.returncode, json.loads(message) if message else {}


def test_the_runner_itself_in_the_pods_the_job_controller_makes(installed, operator, tmp_path):
    cp = installed
    ns = ns_(cp)
    # a simulated run: each shard's real runner, with the Job's env and spec, finishes its cases
    cp.apply(run_doc("live", ns, sharding={"shards": 2}, output={"uri": str(tmp_path / "out")}))
    cp.wait_for(lambda: len(jobs(cp, ns, "live")) == 2, 60, "2 Jobs")
    for i in range(2):
        code, said = run_pod_locally(cp, ns, f"live-s{i}", tmp_path)
        assert code == 0 and said["reason"] == "Complete", said
    st = cp.wait_for(lambda: (s := status(cp, ns, "live")).get("phase") == "Succeeded" and s, 90, "live Succeeded")
    assert st["cases"]["completed"] == st["cases"]["total"] == 16
    assert list((tmp_path / "out").rglob("_SUCCESS")), "the runner wrote its results and manifests"

    # an endpoint that never answers: the runner exits 3 (cases unfinished) on every attempt, the real
    # Job controller retries up to backoffLimit, then the run names the reason
    doc = run_doc("down", ns, sharding={"shards": 1}, limits={"backoffLimit": 1, "caseTimeoutSeconds": 5},
                  endpoint={"baseURL": "http://127.0.0.1:9/v1", "maxRetries": 0, "requestTimeoutSeconds": 1},
                  output={"uri": str(tmp_path / "out2")})
    doc["spec"]["matrix"]["models"] = ["openai/nobody"]
    cp.apply(doc)
    cp.wait_for(lambda: jobs(cp, ns, "down"), 60, "the Job")
    for attempt in range(2):
        code, said = run_pod_locally(cp, ns, "down-s0", tmp_path)
        assert code == 3 and said["reason"] == "CasesUnfinished", (attempt, said)
    st = cp.wait_for(lambda: (s := status(cp, ns, "down")).get("failedShards") and s, 90, "BackoffLimitExceeded")
    (f,) = st["failedShards"]
    assert f["reason"] == "CasesUnfinished" and "never answered" in f["message"], f
    assert st["phase"] == "Failed"


def test_the_text2sql_example_through_the_real_control_plane(installed, operator, tmp_path):
    """examples/text2sql.yaml as a user applies it: real admission, the real Job controller, and the
    real runner in each pod (the test plays kubelet); each question once, execution accuracy reported."""
    cp = installed
    ns = ns_(cp)
    doc = yaml.safe_load((EXAMPLES / "text2sql.yaml").read_text())
    doc["metadata"]["namespace"] = ns
    doc["spec"]["output"]["uri"] = str(tmp_path / "out")
    cp.apply(doc)
    shards = doc["spec"]["sharding"]["shards"]
    cp.wait_for(lambda: len(jobs(cp, ns, "text2sql")) == shards, 60, f"{shards} Jobs")
    for i in range(shards):
        code, said = run_pod_locally(cp, ns, f"text2sql-s{i}", tmp_path)
        assert code == 0 and said["reason"] == "Complete", said
    st = cp.wait_for(lambda: (s := status(cp, ns, "text2sql")).get("phase") == "Succeeded" and s, 90,
                     "text2sql Succeeded")
    from benchpilot_runner import report
    from benchpilot_runner.contract.parse import parse_manifest

    total = parse_manifest(doc).total_cases
    assert st["cases"]["completed"] == st["cases"]["total"] == total
    summary = report.summarize(report.load(str(tmp_path / "out")))
    assert summary["total"] == summary["distinct_case_ids"] == summary["final"] == total
    assert summary["suites"] == ["text2sql"]
    assert summary["flags"] == ["valid", "corrected", "ex_spider", "ex_bird", "ex_strict", "modes_disagree"]
