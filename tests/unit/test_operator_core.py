"""The operator's pure core, table-driven: plan, manifests, status. No kopf, no server."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from benchpilot_operator import handlers
from benchpilot_operator import manifests as M
from benchpilot_operator.config import OperatorConfig
from benchpilot_operator.plan import MiB, PlanError, plan_run
from benchpilot_operator.state import OperatorState
from benchpilot_operator.status import merge_patch, reconcile
from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.contract.resolved import from_resolved
from benchpilot_runner.contract.types import RunSpec
from benchpilot_runner.suites.workflow import vocab as W
from tests.helpers import manifest
from tests.unit.builders import JobB, PodB, obs

CFG = OperatorConfig()
META = {"name": "r", "namespace": "ns", "uid": "uid-1"}


def spec_of(**over) -> RunSpec:
    doc = manifest(**over)
    doc["metadata"] = {"name": "r", "namespace": "ns", "uid": "uid-1"}
    return parse_manifest(doc)


def run(spec, shard_obs=(), prev=None, cfg=CFG):
    plan = plan_run(spec, cfg)
    shards = {o.index: o for o in shard_obs}
    return reconcile(spec, plan, shards, prev or {}, cfg, generation=1, results_uri="u", now="T")


# ---------------------------------------------------------------- plan


@pytest.mark.parametrize("shared,per_worker,conc,max_mem,want_conc,lowered", [
    (250, 8, 32, "8Gi", 32, False),
    (250, 8, 32, "700Mi", 21, True),  # lowered to fit
    (3000, 8, 64, "4Gi", 31, True),
    (250, 8, 500, "8Gi", 80, False),  # capped at the shard's 80 cases: not "lowered to fit memory"
])
def test_plan_memory_formula_and_lowering(shared, per_worker, conc, max_mem, want_conc, lowered):
    spec = spec_of(resources={"footprint": {"sharedMiB": shared, "perWorkerMiB": per_worker}, "maxPodMemory": max_mem},
                   sharding={"shards": 2, "concurrencyPerShard": conc},
                   matrix={"models": ["sim/weak", "sim/strong"], "promptTypes": ["baseline", "optimal"],
                           "taskTypes": list(W.TASK_TYPES), "instances": 8})
    plan = plan_run(spec, CFG)
    need = CFG.memory.base_mib + shared + per_worker * plan.concurrency
    assert plan.request_bytes == int(-(-(need + max(CFG.memory.headroom_min_mib, CFG.memory.headroom_ratio * need)) // 1)) * MiB
    assert plan.request_bytes <= spec.resources.max_pod_memory_bytes
    assert plan.lowered is lowered and (want_conc is None or plan.concurrency == want_conc)
    assert plan.limit_bytes == min(int(plan.request_bytes * CFG.memory.limit_factor),
                                   max(plan.request_bytes, spec.resources.max_pod_memory_bytes))


def test_plan_refuses_when_one_worker_cannot_fit():
    with pytest.raises(PlanError) as err:
        plan_run(spec_of(resources={"footprint": {"sharedMiB": 9000}, "maxPodMemory": "1Gi"}), CFG)
    assert err.value.reason == "InsufficientMemory" and "maxPodMemory 1024Mi" in str(err.value)


# ---------------------------------------------------------------- manifests


def test_job_has_every_field():
    spec = spec_of(cache={"claimName": "cache"}, output={"uri": "s3://b/p", "credentialsSecretRef": {"name": "s3"}},
                   endpoints=[{"name": "a", "baseURL": "http://a/v1", "apiKeySecretRef": {"name": "ka", "key": "k"}},
                              {"name": "b", "baseURL": "http://b/v1", "apiKeySecretRef": {"name": "kb"}},
                              {"name": "unused", "baseURL": "http://c/v1", "apiKeySecretRef": {"name": "kc"}}],
                   matrix={"models": [{"name": "x", "endpoint": "a"}, {"name": "y", "endpoint": "b"}],
                           "promptTypes": ["baseline"]})
    job = M.build_job(META, spec, 1, concurrency=4, request_bytes=512 * MiB, limit_bytes=768 * MiB, cfg=CFG,
                      oom_retries=2, share=0.25)
    md, js = job["metadata"], job["spec"]
    assert md["name"] == "r-s1" and md["labels"][M.RUN_LABEL] == "r" and md["labels"][M.SHARD_LABEL] == "1"
    assert md["annotations"][M.OOM_ANNOTATION] == "2"
    assert md["ownerReferences"] == [{"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "name": "r",
                                      "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}]
    assert js["podReplacementPolicy"] == "Failed" and js["backoffLimit"] == spec.limits.backoff_limit
    assert js["activeDeadlineSeconds"] == spec.limits.active_deadline_s
    assert {"action": "FailJob", "onExitCodes": {"containerName": "runner", "operator": "In", "values": [2]}} \
        in js["podFailurePolicy"]["rules"]
    pod = js["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["BENCHPILOT_SHARD"]["value"] == "1" and env["BENCHPILOT_CONCURRENCY"]["value"] == "4"
    assert env["BENCHPILOT_LIMIT_SHARE"]["value"] == "0.250000"
    assert env["BENCHPILOT_API_KEY_A"]["valueFrom"] == {"secretKeyRef": {"name": "ka", "key": "k"}}
    assert env["BENCHPILOT_API_KEY_B"]["valueFrom"] == {"secretKeyRef": {"name": "kb", "key": "api-key"}}
    assert "BENCHPILOT_API_KEY_UNUSED" not in env, "only the keys of endpoints a model uses"
    assert c["envFrom"] == [{"secretRef": {"name": "s3"}}]
    assert c["resources"] == {"requests": {"memory": "512Mi", "cpu": CFG.runner.cpu_request}, "limits": {"memory": "768Mi"}}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["cache"]["persistentVolumeClaim"] == {"claimName": "cache", "readOnly": True}
    assert vols["data"]["emptyDir"] == {"sizeLimit": "4096Mi"}, "spec.resources.scratch, 4Gi by default"
    assert env["BENCHPILOT_DATA_DIR"]["value"] == M.DATA_MOUNT
    assert vols["shares"]["configMap"] == {"name": "r-shares", "optional": True}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["cache"]["readOnly"] and mounts["spec"]["readOnly"] and mounts["shares"]["readOnly"]
    assert mounts["data"]["mountPath"] == M.DATA_MOUNT and not mounts["data"].get("readOnly")
    small = M.build_job(META, spec_of(resources={"scratch": "1500Mi"}), 0, concurrency=1, request_bytes=MiB,
                        limit_bytes=MiB, cfg=CFG)
    assert {v["name"]: v for v in small["spec"]["template"]["spec"]["volumes"]}["data"]["emptyDir"] == \
        {"sizeLimit": "1500Mi"}
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "value" not in env["BENCHPILOT_API_KEY_A"], "a key only by reference, never a value"


def test_configmap_holds_a_resolved_manifest_the_runner_parses():
    spec = spec_of()
    cm = M.build_configmap(META, spec)
    resolved = json.loads(cm["data"]["run.json"])
    assert resolved["metadata"]["uid"] == "uid-1"
    assert from_resolved(resolved) == spec
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


# ---------------------------------------------------------------- status: every shard state × event

TWO = {"sharding": {"shards": 2, "maxParallelShards": 2}}


@pytest.mark.parametrize("case", [
    # (name, shard observations, expected phase, expected shard counts, actions)
    ("nothing yet", [], "Pending", {"pending": 2}, {"create": [0, 1]}),
    ("running", [obs(0, JobB().active(), PodB().running(), done=2), obs(1, JobB(index=1).active())], "Running",
     {"running": 2}, {}),
    ("one done", [obs(0, JobB().succeeded()), obs(1, JobB(index=1).active())], "Running",
     {"running": 1, "succeeded": 1}, {}),
    ("all done", [obs(0, JobB().succeeded()), obs(1, JobB(index=1).succeeded())], "Succeeded", {"succeeded": 2}, {}),
    ("deadline", [obs(0, JobB().failed("DeadlineExceeded", "too long")), obs(1, JobB(index=1).succeeded())],
     "Failed", {"failed": 1, "succeeded": 1}, {"retries": ["DeadlineExceeded"]}),
    ("config error", [obs(0, JobB().failed("PodFailurePolicy"), PodB().terminated(2, "ConfigError", message="bad")),
                      obs(1, JobB(index=1).succeeded())], "Failed", {"failed": 1, "succeeded": 1}, {}),
    ("oom once", [obs(0, JobB().active(), PodB("p0").oom_killed()), obs(1, JobB(index=1).active())], "Running",
     {"pending": 1, "running": 1}, {"replace": [0], "retries": ["OOMKilled"]}),
])
def test_status_table(case):
    name, shard_obs, phase, counts, actions = case
    status, acts = run(spec_of(**TWO), shard_obs)
    assert status["phase"] == phase, name
    assert {k: v for k, v in status["shards"].items() if v and k != "total"} == counts, name
    assert [c.index for c in acts.create if not c.replace] == actions.get("create", []), name
    assert [c.index for c in acts.create if c.replace] == actions.get("replace", []), name
    assert acts.retries == actions.get("retries", []), name


def test_failed_reasons_come_from_the_runner():
    cases = [(PodB().terminated(3, "CasesUnfinished", message="2 cases ended without a final outcome"),
              "BackoffLimitExceeded", "CasesUnfinished"),
             (PodB().terminated(2, "AuthRefused", message="endpoint 'api' refused the API key"),
              "PodFailurePolicy", "AuthRefused"),
             (PodB().terminated(1, "WriteFailed"), "BackoffLimitExceeded", "BackoffLimitExceeded")]
    for pod, job_reason, want in cases:
        status, _ = run(spec_of(sharding={"shards": 1}), [obs(0, JobB().failed(job_reason), pod)])
        (f,) = status["failedShards"]
        assert f["reason"] == want
    status, _ = run(spec_of(sharding={"shards": 1}), [obs(0, JobB().failed("PodFailurePolicy"), cases[1][0])])
    assert "'api'" in status["failedShards"][0]["message"], "the condition names the endpoint"


def test_an_evicted_pod_is_named_with_what_to_raise():
    full = 'Usage of EmptyDir volume "data" exceeds the limit "4Gi". '
    status, _ = run(spec_of(sharding={"shards": 1}), [obs(0, JobB().failed("BackoffLimitExceeded"),
                                                           PodB("p1").evicted(full))])
    (f,) = status["failedShards"]
    assert f["reason"] == "Evicted" and full.strip() in f["message"] and "spec.resources.scratch" in f["message"]
    node = "The node was low on resource: memory. "
    status, _ = run(spec_of(sharding={"shards": 1}), [obs(0, JobB().failed("BackoffLimitExceeded"),
                                                           PodB("p1").evicted(node))])
    (f,) = status["failedShards"]
    assert f["reason"] == "Evicted" and "low on resource" in f["message"] and "scratch" not in f["message"]
    # the runner's own word wins: a shard that ran out of attempts is CasesUnfinished, evicted or not
    status, _ = run(spec_of(sharding={"shards": 1}), [obs(0, JobB().failed("BackoffLimitExceeded"),
                                                           PodB("p1").evicted(full),
                                                           PodB("p2").terminated(3, "CasesUnfinished", message="x",
                                                                                 finished="2026-01-02T00:00:00Z"))])
    assert status["failedShards"][0]["reason"] == "CasesUnfinished"


def test_oom_repeatedly_then_at_the_cap():
    spec = spec_of(sharding={"shards": 1}, resources={"maxPodMemory": "2Gi"})
    prev: dict = {}
    for attempt in range(1, 10):
        status, acts = run(spec, [obs(0, JobB().active().oom_retries(attempt - 1), PodB(f"p{attempt}").oom_killed())],
                           prev)
        prev = status
        if status["phase"] == "Failed":
            break
        assert acts.create[0].replace and acts.create[0].oom_retries == attempt
    assert status["failedShards"][0]["reason"] == "OOMKilled"
    # a pod that lingers is not counted again
    again, acts = run(spec, [obs(0, JobB().active().oom_retries(attempt - 1), PodB(f"p{attempt}").oom_killed())], prev)
    assert again["failedShards"] == status["failedShards"] and not acts.create


def test_a_recorded_retry_not_yet_acted_on_is_acted_on():
    prev = {"shardRetries": {"0": {"oomKilled": 1, "memoryBytes": 900 * MiB, "oomPods": ["p0"]}}}
    _, acts = run(spec_of(sharding={"shards": 1}), [obs(0, JobB().active().oom_retries(0))], prev)
    (c,) = acts.create
    assert c.replace and c.request_bytes == 900 * MiB and c.oom_retries == 1


@pytest.mark.parametrize("policy,phase,complete", [("partial", "Failed", "True"), ("fail", "Failed", "False")])
def test_failure_policy(policy, phase, complete):
    spec = spec_of(sharding={"shards": 3, "maxParallelShards": 1}, failurePolicy=policy)
    shard_obs = [obs(0, JobB().failed("DeadlineExceeded")), obs(1, JobB(index=1).succeeded()),
                 obs(2, JobB(index=2).succeeded())] if policy == "partial" else [obs(0, JobB().failed("DeadlineExceeded"))]
    status, acts = run(spec, shard_obs)
    assert status["phase"] == phase and not acts.create, "fail-fast starts nothing after a failure"
    assert next(c for c in status["conditions"] if c["type"] == "Complete")["status"] == complete


def test_suspend_and_resume_actions():
    spec = spec_of(**TWO, suspend=True)
    status, acts = run(spec, [obs(0, JobB().active()), obs(1, JobB(index=1).active())])
    assert status["phase"] == "Suspended" and acts.suspend == [0, 1] and not acts.create
    _, acts = run(spec_of(**TWO), [obs(0, JobB().suspended()), obs(1, JobB(index=1).suspended())])
    assert acts.resume == [0, 1]


def test_failed_cases_survive_the_end_of_the_shard():
    """0.1 scraped failed cases only from running pods: they dropped to 0 at the end of a run."""
    spec = spec_of(sharding={"shards": 1})
    running, _ = run(spec, [obs(0, JobB().active(), PodB().running(), done=4, failed_cases=2)])
    assert running["cases"]["failed"] == 2
    finished, _ = run(spec, [obs(0, JobB().failed("BackoffLimitExceeded"),
                                 PodB().terminated(3, "CasesUnfinished", done=6, failed=2))])
    assert finished["cases"]["failed"] == 2 and finished["cases"]["completed"] == 6


def test_positions_without_a_case_in_the_dataset_leave_the_total():
    """A text2sql dataset of one's own may hold fewer questions in a cell than matrix.instances: a
    finished shard's runner reports its real total, and the run's total and progress follow it."""
    spec = spec_of(sharding={"shards": 2})  # 16 positions, 8 per shard
    st, _ = run(spec, [obs(0, JobB().succeeded(), PodB().terminated(0, "Complete", done=5, total=5)),
                       obs(1, JobB(index=1).active(), PodB().running(), done=3)])
    assert st["cases"] == {"total": 13, "completed": 8, "failed": 0}
    st, _ = run(spec, [obs(0, JobB().succeeded(), PodB().terminated(0, "Complete", done=5, total=5)),
                       obs(1, JobB(index=1).succeeded(), PodB().terminated(0, "Complete", done=6, total=6))])
    assert st["cases"] == {"total": 11, "completed": 11, "failed": 0} and st["progress"] == "100%"
    assert st["phase"] == "Succeeded"


def test_merge_patch_deletes_what_is_gone_at_every_depth():
    prev = {"phase": "Running", "limitShares": {"0": 0.5, "1": 0.5}, "failedShards": [1], "kopf": {"x": 1}}
    new = {"phase": "Running", "limitShares": {"1": 1.0}}
    assert merge_patch(prev, new) == {"limitShares": {"0": None, "1": 1.0}, "failedShards": None}


# ---------------------------------------------------------------- one state holder, one reconcile per run


async def test_reconciles_of_one_run_are_serialized(monkeypatch):
    state = OperatorState.build(CFG)
    inflight, peak = {"a": 0, "b": 0}, {"a": 0, "b": 0}

    async def slow(body, client, cfg, metrics):
        name = body["metadata"]["name"]
        inflight[name] += 1
        peak[name] = max(peak[name], inflight[name])
        await asyncio.sleep(0.05)
        inflight[name] -= 1
        return {"phase": "Running"}

    class Patch:
        def __init__(self):
            self.status = {}

    monkeypatch.setattr(handlers, "reconcile_run", slow)
    bodies = [{"metadata": {"name": n, "namespace": "ns", "uid": n}} for n in ("a", "a", "a", "b")]
    await asyncio.gather(*(handlers._reconcile(b, Patch(), state) for b in bodies))
    assert peak == {"a": 1, "b": 1}, "the timer and the update handler never reconcile one run at once"


async def test_a_superseded_client_is_closed_after_a_grace():
    state = OperatorState.build(CFG)
    closed = []

    class Client:
        def __init__(self, name):
            self.name = name

        async def close(self):
            closed.append(self.name)

    state.replace_client(Client("first"))
    state.replace_client(Client("second"), grace_s=0.01)
    await asyncio.sleep(0.05)
    assert closed == ["first"] and state.client.name == "second"
    await state.close()
    assert closed == ["first", "second"]


def test_operator_logs_keep_their_fields(capsys):
    from benchpilot_operator.__main__ import setup_logging

    setup_logging("INFO")
    logging.getLogger("benchpilot.controller").warning("could not post event",
                                                       extra={"reason": "RunFailed", "error": "HTTP 403: forbidden"})
    logging.getLogger("benchpilot.k8s").error("API call failed", extra={"error": "Bearer sk-abcdefghijklmnopq echo"})
    first, second = (json.loads(x) for x in capsys.readouterr().err.strip().splitlines()[-2:])
    assert first["error"] == "HTTP 403: forbidden" and first["reason"] == "RunFailed"
    assert "sk-abcdefghijklmnopq" not in json.dumps(second), "operator logs are scrubbed too"


async def test_shares_that_failed_to_publish_are_published_again():
    from benchpilot_operator.controller import reconcile_run
    from benchpilot_operator.k8s import APIError
    from benchpilot_operator.metrics import OperatorMetrics

    class Client:
        def __init__(self, fail: bool):
            self.fail, self.patches = fail, []

        async def create(self, path, body):
            if body["kind"] == "ConfigMap" and body["metadata"]["name"].endswith("-shares") and self.fail:
                raise APIError(500, "etcd is busy")
            return False  # exists already

        async def merge_patch(self, path, body):
            self.patches.append(path)

        async def list(self, path, selector=None):
            return []

        async def delete(self, path):
            return True

    doc = manifest(endpoint={"baseURL": "http://llm/v1"})
    doc["spec"]["matrix"]["models"] = ["openai/m"]
    body = {**doc, "metadata": {"name": "r", "namespace": "ns", "uid": "u1", "generation": 1}}
    failing = Client(fail=True)
    failing.bodies = []
    orig = failing.merge_patch

    async def record(path, b):
        failing.bodies.append((path, b))
        await orig(path, b)
    failing.merge_patch = record
    with pytest.raises(APIError):
        await reconcile_run(body, failing, CFG, OperatorMetrics())
    (path, urgent), *_ = failing.bodies
    assert path.endswith("/r/status"), "the shares were recorded before acting"
    recorded = urgent["status"]
    assert recorded["limitShares"] == {"0": 0.5, "1": 0.5} and recorded["limitSharesPublished"] is False
    # what a merge patch with that body leaves stored: released shards are sent as null
    from benchpilot_operator.controller import merge_patch as mp
    assert mp({"limitShares": {"0": 0.5, "1": 0.5}}, {"limitShares": {"1": 1.0}}) == {"limitShares": {"0": None,
                                                                                                   "1": 1.0}}
    again = Client(fail=False)
    second = await reconcile_run({**body, "status": recorded}, again, CFG, OperatorMetrics())
    assert second["limitSharesPublished"] is True and second["limitShares"] == recorded["limitShares"]
    assert any(p.endswith("/r-shares") for p in again.patches), "published again although the shares did not change"


def test_a_model_served_by_two_models_across_shards_is_a_condition_and_an_event():
    """Each pod sees only its own answers: the operator unions what the shards' runners say."""
    def pod(served: dict) -> PodB:
        p = PodB().terminated(0, "Complete", done=8, total=8)
        status = p.obj["status"]["containerStatuses"][0]["state"]["terminated"]
        status["message"] = json.dumps({**json.loads(status["message"]), "served": served})
        return p

    spec = spec_of(sharding={"shards": 2})
    same = [obs(0, JobB().succeeded(), pod({"m": ["gpt-x (fp_a)"]})),
            obs(1, JobB(index=1).succeeded(), pod({"m": ["gpt-x (fp_a)"]}))]
    st, _ = run(spec, same)
    assert "ServedModelChanged" not in {c["type"] for c in st["conditions"]}
    swapped = [same[0], obs(1, JobB(index=1).succeeded(), pod({"m": ["gpt-x (fp_a)", "gpt-x-2 (fp_b)"]}))]
    st, acts = run(spec, swapped)
    [cond] = [c for c in st["conditions"] if c["type"] == "ServedModelChanged"]
    assert cond["status"] == "True" and "m: gpt-x (fp_a), gpt-x-2 (fp_b)" in cond["message"]
    assert ("Warning", "ServedModelChanged", cond["message"]) in acts.events
    _, again = run(spec, swapped, prev=st)
    assert not [e for e in again.events if e[1] == "ServedModelChanged"], "the event once, not every pass"
