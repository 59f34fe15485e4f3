"""benchpilot operator: BenchmarkRun -> sharded Jobs, sized from the measured footprint."""

from benchpilot_runner.contract.api import API_GROUP as GROUP, API_VERSION as VERSION, KIND, PLURAL  # noqa: F401 - one place
