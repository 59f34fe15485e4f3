"""``python -m benchpilot_operator``: run the operator (kopf) with this package's handlers."""

from __future__ import annotations

import asyncio

import kopf

from benchpilot_runner import logs

from . import handlers  # noqa: F401 - registers the handlers
from .state import OperatorState


def setup_logging(level: str) -> None:
    """JSON lines with every ``extra`` field, scrubbed of secrets, as the runner logs (0.1's basicConfig
    dropped the extra fields, so the error text of failed API calls never appeared)."""
    logs.setup(level)


def main() -> None:
    state = OperatorState.build()
    setup_logging(state.config.serving.log_level)
    namespaces = [state.config.watching.namespace] if state.config.watching.namespace else []
    asyncio.run(kopf.operator(
        clusterwide=not namespaces, namespaces=namespaces, standalone=True, memo=kopf.Memo(state=state),
        liveness_endpoint=f"http://0.0.0.0:{state.config.serving.liveness_port}/healthz" if state.config.serving.liveness_port
        else None))


if __name__ == "__main__":
    main()
