"""``python -m benchpilot_operator``: run the operator (kopf) with this package's handlers."""

from __future__ import annotations

import asyncio
import logging

import kopf

from . import handlers  # noqa: F401 - registers the handlers
from .config import OperatorConfig


def main() -> None:
    cfg = OperatorConfig.from_env()
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    namespaces = [cfg.namespace] if cfg.namespace else []
    asyncio.run(kopf.operator(
        clusterwide=not namespaces, namespaces=namespaces, standalone=True,
        liveness_endpoint=f"http://0.0.0.0:{cfg.liveness_port}/healthz" if cfg.liveness_port else None))


if __name__ == "__main__":
    main()
