"""The operator's status policies one by one (``benchpilot_operator/status/``), each with its own
table: what a Job and its pods say (children), conditions, the retry policy (OOM, budget, failures),
and scheduling. ``test_operator_core.py`` checks them together through ``reconcile``."""

from __future__ import annotations

import pytest

from benchpilot_operator.config import OperatorConfig
from benchpilot_operator.plan import MiB, plan_run
from benchpilot_operator.status.children import explain_failure, job_state, last_termination, oom_killed
from benchpilot_operator.status.conditions import condition, merge_patch
from benchpilot_operator.status.model import Actions, Decisions
from benchpilot_operator.status.retries import budget_key, decide_shard
from benchpilot_operator.status.schedule import new_jobs, suspend_or_resume
from benchpilot_runner.contract.outcomes import ExitCode, Reason
from benchpilot_runner.contract.parse import parse_manifest
from tests.helpers import manifest
from tests.unit.builders import JobB, PodB, obs

CFG = OperatorConfig()


def spec_of(**over):
    doc = manifest(**over)
    doc["metadata"] = {"name": "r", "namespace": "ns", "uid": "uid-1"}
    return parse_manifest(doc)


# ---------------------------------------------------------------- children: what a Job and its pods say

@pytest.mark.parametrize("job,want", [
    (JobB(), ("pending", "Pending", "")),
    (JobB().active(), ("running", "Running", "")),
    (JobB().succeeded(), ("succeeded", "Complete", "")),
    (JobB().suspended(), ("suspended", "Suspended", "")),
    (JobB().failed("DeadlineExceeded", "too long"), ("failed", "DeadlineExceeded", "too long")),
    (JobB().failed("BackoffLimitExceeded"), ("failed", "BackoffLimitExceeded", "")),
    # the pod failure policy fails the Job on exit 2 at once: that is the runner refusing its configuration
    (JobB().failed("PodFailurePolicy", "exit 2"), ("failed", Reason.CONFIG_ERROR.value, "exit 2")),
])
def test_job_state(job, want):
    assert job_state(job.build()) == want


def test_a_failure_target_counts_as_failed_and_success_criteria_as_complete():
    job = JobB().build()
    job["status"]["conditions"] = [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]
    assert job_state(job)[:2] == ("failed", "DeadlineExceeded")
    job["status"]["conditions"] = [{"type": "SuccessCriteriaMet", "status": "True"}]
    assert job_state(job)[0] == "succeeded"
    job["status"]["conditions"] = [{"type": "Failed", "status": "False"}]  # a condition that is not True says nothing
    assert job_state(job)[0] == "pending"


@pytest.mark.parametrize("pods,want", [
    ([], []),
    ([PodB("a").running()], []),
    ([PodB("a").oom_killed(), PodB("b").running()], ["a"]),
    ([PodB("a").oom_killed(), PodB("b").oom_killed()], ["a", "b"]),
    ([PodB("a").terminated(137)], []),  # killed, but not for memory
])
def test_oom_killed(pods, want):
    assert oom_killed([p.build() for p in pods]) == want


def test_the_newest_termination_is_the_one_read():
    old = PodB("old").terminated(3, Reason.CASES_UNFINISHED.value, message="old", finished="2026-01-01T00:00:00Z")
    new = PodB("new").terminated(0, Reason.COMPLETE.value, message="new", done=7, total=9,
                                 finished="2026-01-01T00:05:00Z")
    term = last_termination([new.build(), old.build()])
    assert (term.exit_code, term.reason, term.message, term.said.done, term.said.total) == (
        0, Reason.COMPLETE, "new", 7, 9)
    assert last_termination([PodB().running().build()]) is None


@pytest.mark.parametrize("pod,reason,words", [
    (PodB().terminated(int(ExitCode.INCOMPLETE), Reason.CASES_UNFINISHED.value, message="4 cases"),
     Reason.CASES_UNFINISHED.value, "4 cases"),
    (PodB().terminated(int(ExitCode.CONFIG_ERROR), Reason.AUTH_REFUSED.value, message="401 from default"),
     Reason.AUTH_REFUSED.value, "401 from default"),
    (PodB().terminated(int(ExitCode.CONFIG_ERROR), Reason.CONFIG_ERROR.value, message="spec.x: bad"),
     Reason.CONFIG_ERROR.value, "spec.x: bad"),
    (PodB().evicted('Pod ephemeral local storage usage exceeds the total limit of containers 4Gi. "data"'),
     "Evicted", "raise spec.resources.scratch"),
    (PodB().evicted("The node was low on resource: memory."), "Evicted", "low on resource"),
    (PodB().terminated(1), "BackoffLimitExceeded", "the Job's own message"),  # nothing more to say
])
def test_explain_failure_in_the_runners_terms(pod, reason, words):
    got_reason, message = explain_failure("BackoffLimitExceeded", "the Job's own message", [pod.build()])
    assert got_reason == reason and words in message


# ---------------------------------------------------------------- conditions

def test_a_condition_keeps_its_transition_time_until_its_status_changes():
    first = condition([], "Ready", True, "Planned", "a", "T1")
    assert first["lastTransitionTime"] == "T1"
    same = condition([first], "Ready", True, "Replanned", "b", "T2")  # reason and message may change
    assert (same["lastTransitionTime"], same["reason"], same["message"]) == ("T1", "Replanned", "b")
    flipped = condition([same], "Ready", False, "InvalidSpec", "c", "T3")
    assert (flipped["status"], flipped["lastTransitionTime"]) == ("False", "T3")


@pytest.mark.parametrize("prev,new,patch", [
    ({"a": 1}, {"a": 1}, {}),
    ({"a": 1}, {"a": 2}, {"a": 2}),
    ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),  # a merge patch keeps what it does not mention: removed = null
    ({"m": {"0": 0.5, "1": 0.5}}, {"m": {"0": 1.0}}, {"m": {"0": 1.0, "1": None}}),
    ({"kopf": {"x": 1}, "a": 1}, {"a": 1}, {}),  # kopf's own bookkeeping is never removed
])
def test_merge_patch(prev, new, patch):
    assert merge_patch(prev, new) == patch


# ---------------------------------------------------------------- retries: OOM, budget, failures

def _decide(spec, shard_obs, rec=None, prev=None):
    plan = plan_run(spec, CFG)
    d, acts = Decisions(), Actions()
    decide_shard(spec, plan.shards[shard_obs.index], shard_obs, rec or {}, prev or {}, CFG, d, acts)
    return plan, d, acts


def test_an_oom_kill_recreates_the_job_with_more_memory():
    spec = spec_of(resources={"maxPodMemory": "8Gi"})
    plan, d, acts = _decide(spec, obs(0, JobB().failed("BackoffLimitExceeded"), PodB("p1").oom_killed()))
    request = plan.shards[0].request_bytes
    [create] = acts.create
    assert create.replace and create.oom_retries == 1
    assert create.request_bytes == -(-int(request * CFG.memory.oom_factor) // MiB) * MiB > request
    assert d.retries["0"]["memoryBytes"] == create.request_bytes and d.retries["0"]["oomPods"] == ["p1"]
    assert acts.urgent_status == {"shardRetries": d.retries}  # recorded before the Job is replaced
    assert acts.retries == ["OOMKilled"] and d.states[0][0] == "pending"


@pytest.mark.parametrize("rec,max_memory,why", [
    ({"oomKilled": CFG.memory.max_oom_retries, "oomPods": ["p0"]}, "8Gi",
     f"OOMKilled {CFG.memory.max_oom_retries + 1} times"),
    ({}, None, "maxPodMemory"),  # already at the cap: cannot grow
])
def test_an_oom_kill_past_the_retries_or_the_cap_fails_the_shard(rec, max_memory, why):
    spec = spec_of(resources={"maxPodMemory": max_memory or "8Gi"})
    if max_memory is None:
        rec = {"memoryBytes": spec.resources.max_pod_memory_bytes}
    job = JobB().failed("BackoffLimitExceeded").oom_retries(int(rec.get("oomKilled", 0)))
    _, d, acts = _decide(spec, obs(0, job, PodB("p1").oom_killed()), rec)
    assert acts.create == [] and d.failed[0][0] == "OOMKilled" and why in d.failed[0][1]
    assert d.retries["0"]["failed"] == "OOMKilled" and d.states[0][0] == "failed"


def test_an_oom_pod_counts_once_and_a_recorded_retry_is_acted_on():
    spec = spec_of(resources={"maxPodMemory": "8Gi"})
    seen = {"oomKilled": 1, "oomPods": ["p1"], "memoryBytes": 600 * MiB}
    # the replaced Job (annotation 1) still shows the old OOM-killed pod: no second retry
    _, d, acts = _decide(spec, obs(0, JobB().active().oom_retries(1), PodB("p1").oom_killed()), seen)
    assert acts.create == [] and d.states[0][0] == "running"
    # a retry recorded but the Job not replaced yet (the operator stopped in between): replaced now
    _, d, acts = _decide(spec, obs(0, JobB().active().oom_retries(0)), seen)
    assert [(c.replace, c.request_bytes, c.oom_retries) for c in acts.create] == [(True, 600 * MiB, 1)]


def test_a_budget_stop_finishes_the_shard_until_the_budget_changes():
    spec = spec_of(budget={"maxTokens": 1000})
    stopped = PodB().terminated(0, Reason.BUDGET_EXHAUSTED.value, message="spent", done=3)
    _, d, acts = _decide(spec, obs(0, JobB().succeeded(), stopped))
    assert d.states[0] == ("budget", Reason.BUDGET_EXHAUSTED.value, "spent") and acts.create == []
    assert d.retries["0"]["budgetStop"] == budget_key(spec)
    raised = spec_of(budget={"maxTokens": 5000})
    _, d, acts = _decide(raised, obs(0, JobB().succeeded(), stopped), {"budgetStop": budget_key(spec)})
    assert [c.replace for c in acts.create] == [True] and "budgetStop" not in d.retries["0"]
    assert acts.events[0][1] == "BudgetRaised"


def test_a_failed_job_is_recorded_once_in_the_runners_terms():
    spec = spec_of()
    pod = PodB().terminated(int(ExitCode.INCOMPLETE), Reason.CASES_UNFINISHED.value, message="2 cases")
    _, d, acts = _decide(spec, obs(0, JobB().failed("BackoffLimitExceeded"), pod))
    assert d.failed[0][0] == Reason.CASES_UNFINISHED.value
    assert [e[1] for e in acts.events] == ["ShardFailed"]
    _, d, acts = _decide(spec, obs(0, JobB().failed("BackoffLimitExceeded"), pod),
                         prev={"failedShards": [{"index": 0}]})
    assert d.failed[0][0] == Reason.CASES_UNFINISHED.value and acts.events == []  # no second event


# ---------------------------------------------------------------- schedule

@pytest.mark.parametrize("states,max_parallel,want", [
    ({0: "missing", 1: "missing", 2: "missing", 3: "missing"}, 4, [0, 1, 2, 3]),
    ({0: "missing", 1: "missing", 2: "missing", 3: "missing"}, 2, [0, 1]),
    ({0: "running", 1: "missing", 2: "missing", 3: "missing"}, 2, [1]),
    ({0: "succeeded", 1: "failed", 2: "missing", 3: "missing"}, 2, [2, 3]),  # finished ones free their room
    ({0: "pending", 1: "suspended", 2: "missing", 3: "missing"}, 2, []),
])
def test_new_jobs_within_max_parallel_shards(states, max_parallel, want):
    spec = spec_of(sharding={"shards": 4, "concurrencyPerShard": 2, "maxParallelShards": max_parallel})
    d = Decisions(states={i: (s, "", "") for i, s in states.items()})
    assert [c.index for c in new_jobs(spec, plan_run(spec, CFG), d)] == want


def test_a_new_job_gets_the_memory_its_retries_recorded():
    spec = spec_of()
    d = Decisions(states={0: ("missing", "", ""), 1: ("missing", "", "")},
                  retries={"1": {"memoryBytes": 900 * MiB, "oomKilled": 2}})
    plan = plan_run(spec, CFG)
    jobs = {c.index: (c.request_bytes, c.oom_retries) for c in new_jobs(spec, plan, d)}
    assert jobs == {0: (plan.shards[0].request_bytes, 0), 1: (900 * MiB, 2)}


@pytest.mark.parametrize("suspend,job,state,want", [
    (True, JobB().active(), "running", ([0], [])),
    (True, JobB().suspended(), "suspended", ([], [])),
    (False, JobB().suspended(), "suspended", ([], [0])),
    (True, JobB().succeeded(), "succeeded", ([], [])),  # a finished Job is left alone
])
def test_suspend_or_resume(suspend, job, state, want):
    spec = spec_of(suspend=suspend)
    d, acts = Decisions(states={0: (state, "", "")}), Actions()
    suspend_or_resume(spec, {0: obs(0, job)}, d, acts, skip=set())
    assert (acts.suspend, acts.resume) == want
    acts = Actions()
    suspend_or_resume(spec, {0: obs(0, job)}, d, acts, skip={0})  # a Job being replaced is left alone
    assert (acts.suspend, acts.resume) == ([], [])
