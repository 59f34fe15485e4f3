"""PURE: observed children -> the run's status and what to do next. No I/O.

Given the spec, the plan, each shard's Job and pods as last seen, the progress scraped from running
pods and the previous status, :func:`reconcile` returns the new status (written in one patch) and
the actions: Jobs to create, Jobs to replace with more memory after an OOM kill, Jobs to suspend or
resume, events to post, retries to count. One policy per module, each with its own table tests:

- :mod:`.children`: what a shard's Job and pods say (state, OOM kills, the runner's termination message)
- :mod:`.retries`: what a finished or failed shard leads to (re-create after an OOM kill, resume
  after a budget raise, record a failure)
- :mod:`.schedule`: which Jobs to create, suspend or resume, and each shard's limit share
- :mod:`.summary`: counts, progress, phase and conditions
- :mod:`.conditions`: conditions, merge patches, the status of a run that cannot start
"""

from .conditions import invalid_status, merge_patch, utc_now, with_condition  # noqa: F401
from .children import pod_running  # noqa: F401
from .model import PHASES, Actions, CreateJob, ShardObs  # noqa: F401
from .reconcile import reconcile  # noqa: F401
