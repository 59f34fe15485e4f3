"""What a shard's Job and pods say: the Job's state, OOM kills, the runner's termination message."""

from __future__ import annotations

from dataclasses import dataclass

from benchpilot_runner.contract.outcomes import ExitCode, Reason, TerminationMessage, parse_termination
from benchpilot_runner.redact import scrub


def job_state(job: dict) -> tuple[str, str, str]:
    """(state, reason, message): state is succeeded | failed | suspended | running | pending."""
    st = job.get("status") or {}
    conds = {c.get("type"): c for c in st.get("conditions") or [] if str(c.get("status")) == "True"}
    if "Complete" in conds or "SuccessCriteriaMet" in conds:
        return "succeeded", "Complete", ""
    for t in ("Failed", "FailureTarget"):
        if t in conds:
            reason = conds[t].get("reason") or "Failed"
            if reason == "PodFailurePolicy":
                reason = Reason.CONFIG_ERROR.value
            return "failed", reason, conds[t].get("message") or ""
    if "Suspended" in conds or (job.get("spec") or {}).get("suspend"):
        return "suspended", "Suspended", ""
    if (st.get("active") or 0) > 0:
        return "running", "Running", ""
    return "pending", "Pending", ""


def pod_running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def oom_killed(pods: list[dict]) -> list[str]:
    """Names of the pods whose container was OOMKilled."""
    out = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if any(((cs.get(key) or {}).get("terminated") or {}).get("reason") == "OOMKilled"
                   for key in ("state", "lastState")):
                out.append((pod.get("metadata") or {}).get("name", ""))
                break
    return out


@dataclass(frozen=True)
class Termination:
    """How the newest runner container of a shard ended: its exit code and what the runner said."""

    exit_code: int | None
    said: TerminationMessage = TerminationMessage()

    @property
    def reason(self) -> Reason | None:
        return self.said.reason

    @property
    def message(self) -> str:
        return self.said.message


def last_termination(pods: list[dict]) -> Termination | None:
    """The newest terminated runner container among ``pods``, with the runner's termination message."""
    best: tuple[str, dict] | None = None
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = ((cs.get("state") or {}).get("terminated") or {})
            if "exitCode" in term:
                key = str(term.get("finishedAt") or "")
                best = (key, term) if best is None or key >= best[0] else best
    if best is None:
        return None
    said = parse_termination(best[1].get("message"))
    served = tuple((scrub(m), tuple(scrub(x) for x in ids)) for m, ids in said.served)
    return Termination(int(best[1]["exitCode"]), TerminationMessage(said.reason, scrub(said.message)[:600],
                                                                     said.done, said.failed, said.total, served))


def explain_failure(reason: str, message: str, pods: list[dict]) -> tuple[str, str]:
    """A failed shard's reason in the runner's terms where its exit code and message say more."""
    term = last_termination(pods)
    code = term.exit_code if term else None
    said = f": {term.message}" if term and term.message else ""
    if code == ExitCode.INCOMPLETE:
        return Reason.CASES_UNFINISHED.value, (f"cases ended without a final outcome (infrastructure errors or "
                                               f"timeouts) on every attempt ({reason})"
                                               f"{said or '; a rerun retries only those'}")
    if code == ExitCode.CONFIG_ERROR:
        if term and term.reason == Reason.AUTH_REFUSED:
            return Reason.AUTH_REFUSED.value, f"an endpoint refused the API key{said}"
        return Reason.CONFIG_ERROR.value, f"the runner refused its configuration (exit 2){said or '; see the pod log'}"
    evicted = [p.get("status") or {} for p in pods if (p.get("status") or {}).get("reason") == "Evicted"]
    if evicted:
        said = str(evicted[-1].get("message") or "").strip()
        hint = ("; raise spec.resources.scratch (the pod's scratch volume, where a remote dataset is copied)"
                if "\"data\"" in said or "ephemeral" in said.lower() else "")
        return "Evicted", f"the kubelet evicted the shard's pod ({reason}): {said or 'no message'}{hint}"
    return reason, message
