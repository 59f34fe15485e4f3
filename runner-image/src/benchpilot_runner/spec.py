"""Moved: the contract is :mod:`benchpilot_runner.contract`. This module only forwards the old names
while branches written against it are merged; nothing new imports it."""

from .contract.api import API_GROUP, API_VERSION, KIND, PLURAL, SHARD_CASES_METRIC  # noqa: F401
from .contract.cases import (Case, case_at, case_id, expand, iter_cases, iter_shard_cases, shard_cases,  # noqa: F401
                             shard_of, shard_sizes)
from .contract.fields import (MAX_MODEL_NAME, MAX_NAME, MAX_STRING, OUTPUT_PROTOCOLS, Fields, SpecError,  # noqa: F401
                              check_number, check_output_uri, parse_memory, show)
from .contract.outcomes import FINAL_STATUSES, RETRY_STATUSES, STATUSES, ExitCode  # noqa: F401
from .contract.parse import parse_manifest, with_overrides  # noqa: F401
from .contract.registry import find_suite  # noqa: F401
from .contract.resolved import from_resolved, to_manifest  # noqa: F401
from .contract.sizing import BASE_MIB, HEADROOM_MIN_MIB, HEADROOM_RATIO, LIMIT_FACTOR, memory_request_mib  # noqa: F401
from .contract.tree import MODEL_PARAMS, TOOL_CALLING  # noqa: F401
from .contract.types import (DEFAULT_ENDPOINT, DEFAULT_KEY_ENV, DEFAULT_SUITE, Budget, Endpoint,  # noqa: F401
                             EndpointLimits, Expected, Limits, Matrix, ModelSpec, Output, Resources, RunSpec,
                             Sharding, SimModel)

CONFIG_ERROR_EXIT = int(ExitCode.CONFIG_ERROR)
INCOMPLETE_EXIT = int(ExitCode.INCOMPLETE)
