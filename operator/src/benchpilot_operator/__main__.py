"""``python -m benchpilot_operator``: run the operator (kopf) with this package's handlers."""

from __future__ import annotations

import asyncio

import kopf

from benchpilot_runner import logs

from . import handlers  # noqa: F401 - registers the handlers
from .state import OperatorState


def main() -> None:
    state = OperatorState.build()
    logs.setup(state.config.log_level)  # JSON lines with every extra field, scrubbed, as the runner logs
    namespaces = [state.config.namespace] if state.config.namespace else []
    asyncio.run(kopf.operator(
        clusterwide=not namespaces, namespaces=namespaces, standalone=True, memo=kopf.Memo(state=state),
        liveness_endpoint=f"http://0.0.0.0:{state.config.liveness_port}/healthz" if state.config.liveness_port
        else None))


if __name__ == "__main__":
    main()
