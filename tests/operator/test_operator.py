"""The real kopf operator against kmock's Kubernetes emulator over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.contract.resolved import from_resolved
from tests.helpers import BENCHPILOT, ROOT, manifest, pod_env
from tests.bad_manifests import BAD
from tests.helpers import eventually
from tests.operator.cluster import operator
from tests.servers.s3 import free_port

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow]
MiB = 2**20


def run_doc(name: str, ns: str, **spec) -> dict:
    doc = manifest(**spec)
    doc["metadata"] = {"name": name, "namespace": ns}
    return doc


def ns_() -> str:
    return f"t-{uuid.uuid4().hex[:6]}"


async def status_of(cluster, ns, name, **want):
    async def check():
        st = (await cluster.run(ns, name)).get("status") or {}
        return st if all(st.get(k) == v for k, v in want.items()) else None
    return await eventually(check, what=f"{ns}/{name} status {want}")


async def jobs_count(cluster, ns, name, n):
    async def check():
        jobs = await cluster.jobs(ns, name)
        return jobs if len(jobs) == n else None
    return await eventually(check, what=f"{n} jobs of {name}")


def container(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


async def test_run_becomes_sized_jobs_and_succeeds(cluster):
    ns = ns_()
    doc = run_doc("sweep", ns, sharding={"shards": 3, "concurrencyPerShard": 4, "maxParallelShards": 8},
                  resources={"footprint": {"sharedMiB": 300, "perWorkerMiB": 10}, "maxPodMemory": "4Gi"},
                  limits={"activeDeadlineSeconds": 900, "hangTimeoutSeconds": 60, "backoffLimit": 4},
                  cache={"claimName": "bench-cache"},
                  endpoint={"baseURL": "http://llm:8000/v1", "apiKeySecretRef": {"name": "llm", "key": "token"}},
                  output={"uri": "s3://bucket/prefix", "credentialsSecretRef": {"name": "s3-creds"}})
    doc["spec"]["matrix"]["models"] = ["sim/strong", "openai/gpt-test"]
    async with operator(cluster.url) as op:
        created = await cluster.apply_run(doc)
        uid = created["metadata"]["uid"]
        jobs = await jobs_count(cluster, ns, "sweep", 3)
        st = await status_of(cluster, ns, "sweep", phase="Pending")
        cfg = op.config
        # memory from the footprint formula: base + shared + perWorker × concurrency, plus headroom
        need = cfg.memory.base_mib + 300 + 10 * 4
        request = int(-(-(need + max(cfg.memory.headroom_min_mib, cfg.memory.headroom_ratio * need)) // 1))
        for i, job in enumerate(jobs):
            md, c = job["metadata"], container(job)
            assert md["name"] == f"sweep-s{i}" and md["labels"]["benchpilot.io/shard"] == str(i)
            assert md["ownerReferences"] == [{"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun",
                                              "name": "sweep", "uid": uid, "controller": True,
                                              "blockOwnerDeletion": True}]
            assert c["resources"]["requests"]["memory"] == f"{request}Mi"
            assert c["resources"]["limits"]["memory"] == f"{int(request * MiB * cfg.memory.limit_factor) // MiB}Mi"
            assert job["spec"]["activeDeadlineSeconds"] == 900 and job["spec"]["backoffLimit"] == 4
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 300
            pod = job["spec"]["template"]["spec"]
            cache_vol = next(v for v in pod["volumes"] if v["name"] == "cache")
            assert cache_vol["persistentVolumeClaim"] == {"claimName": "bench-cache", "readOnly": True}
            assert {"name": "cache", "mountPath": "/cache", "readOnly": True} in c["volumeMounts"]
            env = {e["name"]: e for e in c["env"]}
            assert env["BENCHPILOT_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "llm", "key": "token"}}
            assert env["BENCHPILOT_SHARD"]["value"] == str(i) and env["BENCHPILOT_SHARDS"]["value"] == "3"
            assert c["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
            assert not any("value" in e and "token" in str(e["value"]).lower() for e in c["env"])
            assert c["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsNonRoot"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert pod["restartPolicy"] == "Never"
            rules = job["spec"]["podFailurePolicy"]["rules"]
            assert {"action": "FailJob", "onExitCodes": {"containerName": "runner", "operator": "In",
                                                         "values": [2]}} in rules
        (cm,) = [c for c in await cluster.configmaps(ns) if c["metadata"]["name"] == "sweep-spec"]
        resolved = json.loads(cm["data"]["run.json"])
        assert resolved["metadata"]["uid"] == uid and resolved["spec"]["sharding"]["shards"] == 3
        assert from_resolved(resolved).total_cases == st["cases"]["total"] == parse_manifest(doc).total_cases

        pods = [await cluster.start_pod(j) for j in jobs]
        await status_of(cluster, ns, "sweep", phase="Running")
        for j in jobs:
            await cluster.complete(j)
        st = await status_of(cluster, ns, "sweep", phase="Succeeded")
        assert st["shards"] == {"total": 3, "pending": 0, "running": 0, "succeeded": 3, "failed": 0}
        assert st["cases"]["completed"] == st["cases"]["total"] and st["progress"] == "100%"
        assert st["results"]["uri"] == f"s3://bucket/prefix/{ns}/sweep/{uid}/"
        assert {c["type"]: c["status"] for c in st["conditions"]}["Complete"] == "True"
        reasons = [e.get("reason") for e in await cluster.events(ns)]
        assert "RunSucceeded" in reasons
        del pods


async def test_at_most_max_parallel_shards_unfinished(cluster):
    ns = ns_()
    doc = run_doc("queue", ns, sharding={"shards": 5, "concurrencyPerShard": 2, "maxParallelShards": 2})
    async with operator(cluster.url) as op:
        await cluster.apply_run(doc)
        jobs = await jobs_count(cluster, ns, "queue", 2)
        assert [j["metadata"]["name"] for j in jobs] == ["queue-s0", "queue-s1"]
        await cluster.complete(jobs[0])
        jobs = await jobs_count(cluster, ns, "queue", 3)
        assert jobs[2]["metadata"]["name"] == "queue-s2"
        unfinished = [j for j in jobs if not j.get("status", {}).get("succeeded")]
        assert len(unfinished) == 2


async def test_oom_killed_shard_is_recreated_bigger_then_fails_at_the_bound(cluster):
    ns = ns_()
    doc = run_doc("oom", ns, sharding={"shards": 1, "concurrencyPerShard": 2},
                  resources={"footprint": {"sharedMiB": 100, "perWorkerMiB": 10}, "maxPodMemory": "8Gi"})
    async with operator(cluster.url, memory__max_oom_retries=2) as op:
        await cluster.apply_run(doc)
        (job,) = await jobs_count(cluster, ns, "oom", 1)
        first = container(job)["resources"]["requests"]["memory"]
        sizes = [int(first[:-2])]
        for attempt in (1, 2):
            pod = await cluster.start_pod(job)
            await cluster.oom_kill(job, pod)

            async def bigger():
                js = await cluster.jobs(ns, "oom")
                ok = js and js[0]["metadata"]["annotations"]["benchpilot.io/oom-retries"] == str(attempt)
                return js[0] if ok else None
            job = await eventually(bigger, what=f"job re-created after OOM {attempt}")
            # several reconciles (each lists the run's Jobs): the lingering OOMKilled pod must not count again
            seen = cluster.requests("GET", f"/namespaces/{ns}/jobs")

            async def passes():
                return cluster.requests("GET", f"/namespaces/{ns}/jobs") >= seen + 4
            await eventually(passes, what="four more reconciles of the run")
            (job,) = await cluster.jobs(ns, "oom")
            assert job["metadata"]["annotations"]["benchpilot.io/oom-retries"] == str(attempt)
            sizes.append(int(container(job)["resources"]["requests"]["memory"][:-2]))
            st = (await cluster.run(ns, "oom"))["status"]
            assert st["shardRetries"]["0"]["oomKilled"] == attempt
        assert sizes[1] == -(-int(sizes[0] * 1.5) // 1) or abs(sizes[1] - sizes[0] * 1.5) <= 1
        assert abs(sizes[2] - sizes[1] * 1.5) <= 1
        retries = op.metrics.retries.labels(f"{ns}/oom", "OOMKilled")._value.get()
        assert retries == 2
        pod = await cluster.start_pod(job)
        await cluster.oom_kill(job, pod)
        st = await status_of(cluster, ns, "oom", phase="Failed")
        assert st["failedShards"][0]["reason"] == "OOMKilled" and "2 times" not in st["failedShards"][0]["message"]
        assert "OOMKilled 3 times" in st["failedShards"][0]["message"]
        assert len(await cluster.jobs(ns, "oom")) == 1


async def test_restarted_operator_creates_no_duplicate_jobs(cluster):
    ns = ns_()
    doc = run_doc("restart", ns, sharding={"shards": 4, "concurrencyPerShard": 2, "maxParallelShards": 4})
    async with operator(cluster.url) as op:
        await cluster.apply_run(doc)
        jobs = await jobs_count(cluster, ns, "restart", 4)
        await cluster.complete(jobs[0])
        await status_of(cluster, ns, "restart", shardSummary="1/4")
    posts_before = cluster.posts(f"/namespaces/{ns}/jobs")
    assert posts_before == 4
    async with operator(cluster.url) as op:
        await status_of(cluster, ns, "restart", shardSummary="1/4")
        for j in jobs[1:]:
            await cluster.complete(j)
        await status_of(cluster, ns, "restart", phase="Succeeded")
    assert cluster.posts(f"/namespaces/{ns}/jobs") == posts_before, "no Job was created twice"
    assert len(await cluster.jobs(ns, "restart")) == 4


async def test_invalid_spec_is_refused_and_others_still_run(cluster):
    ns = ns_()
    bad = run_doc("bad", ns)
    bad["spec"]["matrix"]["models"] = ["sim/nonexistent"]
    big = run_doc("huge", ns, resources={"footprint": {"sharedMiB": 9000, "perWorkerMiB": 10},
                                         "maxPodMemory": "4Gi"})
    good = run_doc("good", ns, sharding={"shards": 1})
    async with operator(cluster.url) as op:
        await cluster.apply_run(bad)
        await cluster.apply_run(big)
        await cluster.apply_run(good)
        st = await status_of(cluster, ns, "bad", phase="Failed")
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
        assert "spec.matrix.models[0]" in ready["message"] and "sim/strong" in ready["message"]
        st = await status_of(cluster, ns, "huge", phase="Failed")
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "InsufficientMemory" and "4096Mi" in ready["message"]
        assert "9000" in ready["message"]
        await jobs_count(cluster, ns, "good", 1)
        assert await cluster.jobs(ns, "bad") == [] and await cluster.jobs(ns, "huge") == []
        warnings = [e for e in await cluster.events(ns) if e.get("reason") == "InvalidSpec"]
        assert len(warnings) == 1, "one event, not one per resync"


async def test_what_the_crd_admits_but_the_parser_refuses_is_an_invalid_spec(cluster):
    """The table of bad manifests: each one a real API server admits is Ready=False InvalidSpec naming the field."""
    ns = ns_()
    rows = [b for b in BAD if b.crd is None and b.path.startswith("spec.")]
    async with operator(cluster.url):
        for i, bad in enumerate(rows):
            doc = run_doc(f"bad{i}", ns)
            bad.change(doc)
            await cluster.apply_run(doc)
        for i, bad in enumerate(rows):
            st = await status_of(cluster, ns, f"bad{i}", phase="Failed")
            ready = next(c for c in st["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == "InvalidSpec" and ready["message"].startswith(bad.path + ":"), (bad.id, ready)
        for i in range(len(rows)):
            assert await cluster.jobs(ns, f"bad{i}") == []


async def test_concurrency_is_lowered_to_fit(cluster):
    ns = ns_()
    doc = run_doc("fit", ns, sharding={"shards": 1, "concurrencyPerShard": 64},
                  resources={"footprint": {"sharedMiB": 200, "perWorkerMiB": 50}, "maxPodMemory": "2Gi"})
    doc["spec"]["matrix"]["instances"] = 20
    async with operator(cluster.url) as op:
        await cluster.apply_run(doc)
        (job,) = await jobs_count(cluster, ns, "fit", 1)
        env = {e["name"]: e.get("value") for e in container(job)["env"]}
        conc = int(env["BENCHPILOT_CONCURRENCY"])
        assert 1 <= conc < 64
        assert int(container(job)["resources"]["requests"]["memory"][:-2]) <= 2048
        st = await status_of(cluster, ns, "fit", phase="Pending")
        assert st["plan"]["concurrencyPerShard"] == conc
        assert "lowered from 64" in next(c for c in st["conditions"] if c["type"] == "Ready")["message"]


async def test_suspend_and_resume(cluster):
    ns = ns_()
    doc = run_doc("pause", ns, sharding={"shards": 3, "concurrencyPerShard": 2, "maxParallelShards": 1})
    async with operator(cluster.url) as op:
        await cluster.apply_run(doc)
        (job,) = await jobs_count(cluster, ns, "pause", 1)
        await cluster.start_pod(job)
        await cluster.patch_run(ns, "pause", {"spec": {"suspend": True}})
        await status_of(cluster, ns, "pause", phase="Suspended")

        async def suspended():
            js = await cluster.jobs(ns, "pause")
            return js if js[0]["spec"]["suspend"] is True else None
        js = await eventually(suspended, what="job suspended")
        await cluster.complete(js[0])
        await status_of(cluster, ns, "pause", phase="Suspended", shardSummary="1/3")
        assert len(await cluster.jobs(ns, "pause")) == 1, "no new shard while suspended"
        await cluster.patch_run(ns, "pause", {"spec": {"suspend": False}})
        js = await jobs_count(cluster, ns, "pause", 2)
        assert js[1]["spec"]["suspend"] is False


async def test_failed_shards_give_partial_success_or_failure(cluster):
    ns = ns_()
    partial = run_doc("part", ns, sharding={"shards": 2}, failurePolicy="partial")
    strict = run_doc("strict", ns, sharding={"shards": 2}, failurePolicy="fail")
    async with operator(cluster.url) as op:
        for doc in (partial, strict):
            await cluster.apply_run(doc)
        for name in ("part", "strict"):
            jobs = await jobs_count(cluster, ns, name, 2)
            await cluster.fail(jobs[0], "DeadlineExceeded", "Job was active longer than specified deadline")
            await cluster.complete(jobs[1])
        # never "Succeeded" with a failed shard; Complete says every shard ran (partial policy)
        st = await status_of(cluster, ns, "part", phase="Failed")
        complete = next(c for c in st["conditions"] if c["type"] == "Complete")
        assert complete["reason"] == "PartiallySucceeded" and "s0: DeadlineExceeded" in complete["message"]
        assert st["failedShards"] == [{"index": 0, "reason": "DeadlineExceeded",
                                       "message": "Job was active longer than specified deadline"}]
        st = await status_of(cluster, ns, "strict", phase="Failed")
        assert next(c for c in st["conditions"] if c["type"] == "Failed")["status"] == "True"
        assert op.metrics.retries.labels(f"{ns}/part", "DeadlineExceeded")._value.get() == 1


async def test_delete_leaves_children_to_owner_references(cluster):
    ns = ns_()
    async with operator(cluster.url) as op:
        created = await cluster.apply_run(run_doc("gone", ns, sharding={"shards": 2}))
        jobs = await jobs_count(cluster, ns, "gone", 2)
        cms = [c for c in await cluster.configmaps(ns) if c["metadata"]["name"] == "gone-spec"]
        for child in jobs + cms:
            (ref,) = child["metadata"]["ownerReferences"]
            assert ref["uid"] == created["metadata"]["uid"] and ref["blockOwnerDeletion"] and ref["controller"]
        await status_of(cluster, ns, "gone", phase="Pending")
        await cluster.delete_run(ns, "gone")

        async def gone():
            try:
                await cluster.run(ns, "gone")
            except AssertionError:
                return True
            return False
        await eventually(gone, what="run deleted (finalizer released)")
        assert f"{ns}/gone" not in op.metrics._phase


async def test_children_of_another_run_with_the_same_name_are_ignored(cluster):
    """Ownership is confirmed by uid, not only by label: a stale Job of a deleted namesake is not ours."""
    ns = ns_()
    stale = {"apiVersion": "batch/v1", "kind": "Job",
             "metadata": {"name": "twin-s0", "namespace": ns, "labels": {"benchpilot.io/run": "twin",
                                                                        "benchpilot.io/shard": "0"},
                          "ownerReferences": [{"kind": "BenchmarkRun", "name": "twin", "uid": "old-uid"}]},
             "spec": {"template": {"metadata": {"labels": {}}, "spec": {"containers": [{"name": "runner"}]}}},
             "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    await cluster._req("POST", f"/apis/batch/v1/namespaces/{ns}/jobs", stale)
    async with operator(cluster.url) as op:
        await cluster.apply_run(run_doc("twin", ns, sharding={"shards": 1}))
        st = await status_of(cluster, ns, "twin", phase="Pending")
        assert st["shards"]["succeeded"] == 0, "the namesake's completed Job must not count"


async def test_progress_is_scraped_from_real_runner_pods(cluster, tmp_path):
    """The test plays kubelet: it runs the real `benchpilot shard` with the Job's env and spec."""
    ns = ns_()
    doc = run_doc("live", ns, sharding={"shards": 2, "concurrencyPerShard": 2},
                  simulation={"sim/slow": {"accuracy": 0.8, "latencySeconds": 0.15}},
                  output={"uri": f"file://{tmp_path}/out", "flushEveryRows": 2, "flushEverySeconds": 1})
    doc["spec"]["matrix"].update(models=["sim/slow"], instances=4)
    procs = []
    async with operator(cluster.url) as op:
        await cluster.apply_run(doc)
        jobs = await jobs_count(cluster, ns, "live", 2)
        (cm,) = [c for c in await cluster.configmaps(ns) if c["metadata"]["name"] == "live-spec"]
        spec_file = tmp_path / "run.json"
        spec_file.write_text(cm["data"]["run.json"])
        for job in jobs:
            port = free_port()
            env = pod_env(container(job), tmp_path)
            env.update(BENCHPILOT_SPEC=str(spec_file), BENCHPILOT_HEALTH_PORT=str(port),
                       BENCHPILOT_HEALTH_HOST="127.0.0.1", HOME=str(tmp_path))
            procs.append(subprocess.Popen([*BENCHPILOT, "shard"], env={**os.environ, **env}, cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            await cluster.start_pod(job, port=port)
        total = parse_manifest(doc).total_cases

        async def partway():
            st = (await cluster.run(ns, "live")).get("status") or {}
            done = (st.get("cases") or {}).get("completed", 0)
            return st if 0 < done < total and st.get("phase") == "Running" else None
        st = await eventually(partway, timeout=60, what="progress between 0 and total")
        assert st["progress"].endswith("%")
        for p in procs:
            assert p.wait(120) == 0, p.stderr.read()[-2000:]
        for job in jobs:
            await cluster.complete(job)
        st = await status_of(cluster, ns, "live", phase="Succeeded")
        assert st["cases"]["completed"] == total
    from benchpilot_runner import report

    summary = report.summarize(report.load(st["results"]["uri"]))
    assert summary["total"] == summary["distinct_case_ids"] == total


async def test_the_text2sql_example_runs_through_the_operator(cluster, tmp_path):
    """examples/text2sql.yaml as applied: the operator parses it with the suite's vocabulary, plans and
    creates its Jobs; each shard's real runner (the test plays kubelet) runs its questions once."""
    import yaml

    from tests.helpers import EXAMPLES

    ns = ns_()
    doc = yaml.safe_load((EXAMPLES / "text2sql.yaml").read_text())
    doc["metadata"]["namespace"] = ns
    doc["spec"]["output"]["uri"] = f"file://{tmp_path}/out"
    total = parse_manifest(doc).total_cases
    async with operator(cluster.url):
        await cluster.apply_run(doc)
        jobs = await jobs_count(cluster, ns, "text2sql", doc["spec"]["sharding"]["shards"])
        (cm,) = [c for c in await cluster.configmaps(ns) if c["metadata"]["name"] == "text2sql-spec"]
        resolved = json.loads(cm["data"]["run.json"])
        assert resolved["spec"]["suite"] == "text2sql" and resolved["spec"]["suiteConfig"]["rowLimit"] == 10000
        volumes = {v["name"]: v for v in jobs[0]["spec"]["template"]["spec"]["volumes"]}
        assert volumes["data"]["emptyDir"] == {"sizeLimit": "4096Mi"}, "the example's resources.scratch"
        spec_file = tmp_path / "run.json"
        spec_file.write_text(cm["data"]["run.json"])
        procs = []
        for job in jobs:
            port = free_port()
            env = pod_env(container(job), tmp_path)
            env.update(BENCHPILOT_SPEC=str(spec_file), BENCHPILOT_HEALTH_PORT=str(port),
                       BENCHPILOT_HEALTH_HOST="127.0.0.1", HOME=str(tmp_path),
                       BENCHPILOT_TERMINATION_LOG=str(tmp_path / f"term-{port}"))
            procs.append(subprocess.Popen([*BENCHPILOT, "shard"], env={**os.environ, **env}, cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            await cluster.start_pod(job, port=port)
        for p in procs:
            assert p.wait(180) == 0, p.stderr.read()[-2000:]
        for job in jobs:
            await cluster.complete(job)
        st = await status_of(cluster, ns, "text2sql", phase="Succeeded")
        assert st["cases"]["completed"] == st["cases"]["total"] == total
    from benchpilot_runner import report

    summary = report.summarize(report.load(st["results"]["uri"]))
    assert summary["total"] == summary["distinct_case_ids"] == summary["final"] == total
    assert summary["suites"] == ["text2sql"] and "valid" in summary["flags"]
    assert len(summary["by_model_prompt_type"]) == 15


async def test_an_unknown_suite_is_an_invalid_spec_naming_the_installed_ones(cluster):
    ns = ns_()
    async with operator(cluster.url):
        await cluster.apply_run(run_doc("nosuite", ns, suite="sql3"))
        st = await status_of(cluster, ns, "nosuite", phase="Failed")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec" and "spec.suite" in ready["message"]
    assert "text2sql, workflow" in ready["message"]


def _share_env(job: dict) -> float | None:
    env = {e["name"]: e.get("value") for e in container(job).get("env", [])}
    return float(env["BENCHPILOT_LIMIT_SHARE"]) if "BENCHPILOT_LIMIT_SHARE" in env else None


async def test_limit_shares_never_sum_above_the_limit_as_shards_start_and_finish(cluster):
    ns = ns_()
    doc = run_doc("shares", ns, sharding={"shards": 4, "maxParallelShards": 2},
                  endpoints=[{"name": "api", "baseURL": "http://llm:8000/v1",
                              "limits": {"requestsPerMinute": 600, "tokensPerMinute": 100000}}])
    doc["spec"]["matrix"]["models"] = [{"name": "m", "endpoint": "api"}]
    seen: list[dict] = []

    async def shares_are(expected: dict):
        async def check():
            st = (await cluster.run(ns, "shares")).get("status") or {}
            got = {k: round(v, 4) for k, v in (st.get("limitShares") or {}).items()}
            seen.append(got)
            return got if got == expected else None
        return await eventually(check, what=f"limitShares {expected}")

    async def published_are(expected: dict) -> dict:
        # status is patched before the ConfigMap is written (controller.py), so the pods' copy may lag
        async def check():
            cms = [c for c in await cluster.configmaps(ns) if c["metadata"]["name"] == "shares-shares"]
            body = json.loads(cms[0]["data"]["shares.json"]) if cms else {}
            seen.append({k: round(v, 4) for k, v in (body.get("shards") or {}).items()})
            return body if body.get("shards") == expected else None
        return await eventually(check, what=f"the shares ConfigMap at {expected}")

    async with operator(cluster.url) as op:
        await cluster.apply_run(doc)
        jobs = await jobs_count(cluster, ns, "shares", 2)
        await shares_are({"0": 0.5, "1": 0.5})
        assert [_share_env(j) for j in jobs] == [0.5, 0.5]
        body = await published_are({"0": 0.5, "1": 0.5})
        assert body["endpoints"]["api"]["0"]["requestsPerMinute"] == pytest.approx(300, rel=1e-4)
        pod_spec = jobs[0]["spec"]["template"]["spec"]
        assert {"name": "shares", "configMap": {"name": "shares-shares", "optional": True}} in pod_spec["volumes"]

        await cluster.complete(jobs[0])  # shard 0 ends: shard 2 starts with what it freed
        jobs = await jobs_count(cluster, ns, "shares", 3)
        await shares_are({"1": 0.5, "2": 0.5})
        await published_are({"1": 0.5, "2": 0.5})
        assert _share_env(jobs[2]) == 0.5
        await cluster.complete(jobs[1])  # shard 1 ends: shard 3 starts; nothing is left to start
        jobs = await jobs_count(cluster, ns, "shares", 4)
        await shares_are({"2": 0.5, "3": 0.5})
        await published_are({"2": 0.5, "3": 0.5})
        await cluster.complete(jobs[2])  # the tail: the last shard gets the whole limit
        await shares_are({"3": 1.0})
        await published_are({"3": 1.0})
    assert seen and all(sum(s.values()) <= 1.0 + 1e-6 for s in seen), "never above the limit"


async def test_budget_stop_is_a_condition_and_raising_the_budget_resumes(cluster):
    ns = ns_()
    doc = run_doc("budget", ns, sharding={"shards": 2}, budget={"maxCostUSD": 1.0},
                  endpoint={"baseURL": "http://llm:8000/v1"})
    doc["spec"]["matrix"]["models"] = [{"name": "paid", "price": {"inputPerMillionTokens": 5}}]
    async with operator(cluster.url) as op:
        await cluster.apply_run(doc)
        jobs = await jobs_count(cluster, ns, "budget", 2)
        for job in jobs:
            pod = await cluster.start_pod(job)
            await cluster.terminate(pod, 0, {"reason": "BudgetExhausted", "done": 3, "failed": 0,
                                             "message": "this shard's share (0.5) of the budget is spent"})
            await cluster.complete(job)
        st = await status_of(cluster, ns, "budget", phase="Succeeded")
        complete = next(c for c in st["conditions"] if c["type"] == "Complete")
        assert complete["reason"] == "BudgetExhausted" and "raise spec.budget" in complete["message"]
        assert st["cases"]["completed"] == 6 < st["cases"]["total"]
        posts = cluster.posts("/jobs")
        await cluster.patch_run(ns, "budget", {"spec": {"budget": {"maxCostUSD": 5.0}}})

        async def replaced():  # new Jobs: created again, with no Complete condition yet
            js = await cluster.jobs(ns, "budget")
            fresh = len(js) == 2 and not any((j.get("status") or {}).get("conditions") for j in js)
            return js if fresh and cluster.posts("/jobs") >= posts + 2 else None
        await eventually(replaced, what="the budget-stopped shards re-created")
        await status_of(cluster, ns, "budget", phase="Pending")


async def test_a_shard_that_exits_3_names_its_unfinished_cases(cluster):
    ns = ns_()
    async with operator(cluster.url) as op:
        await cluster.apply_run(run_doc("unfinished", ns, sharding={"shards": 1}))
        (job,) = await jobs_count(cluster, ns, "unfinished", 1)
        pod = await cluster.start_pod(job)
        await cluster.terminate(pod, 3, {"reason": "CasesUnfinished", "done": 5, "failed": 3,
                                         "message": "3 cases ended without a final outcome; "
                                                    "key sk-leakedsecret0123456789 echoed"})
        await cluster.fail(job, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        st = await status_of(cluster, ns, "unfinished", phase="Failed")
        (f,) = st["failedShards"]
        assert f["reason"] == "CasesUnfinished" and "3 cases ended without a final outcome" in f["message"]
        assert "sk-leakedsecret" not in json.dumps(st), "no secret in status"
        assert st["cases"]["failed"] == 3 and st["cases"]["completed"] == 5


async def test_a_call_in_flight_when_the_operator_stops_still_answers_and_leaks_no_session(cluster):
    """kopf runs its cleanup (which closes the client) while a timer's reconcile may still be calling:
    that call gets a session of its own, closed after it, rather than an error or a session nobody closes."""
    from benchpilot_operator.k8s import Connection, KubeClient, configmaps_path

    ns = ns_()
    client = KubeClient(Connection(server=cluster.url, insecure=True))
    assert await client.create(configmaps_path(ns), {"apiVersion": "v1", "kind": "ConfigMap",
                                                     "metadata": {"name": "before", "namespace": ns}})
    shared = client._session
    await client.close()
    assert await client.create(configmaps_path(ns), {"apiVersion": "v1", "kind": "ConfigMap",
                                                     "metadata": {"name": "after", "namespace": ns}})
    assert {c["metadata"]["name"] for c in await client.list(configmaps_path(ns))} >= {"before", "after"}
    assert shared.closed and client._session is shared, "no new long-lived session after close"
