"""Structured logs: one JSON object per line on stderr, with every ``extra`` field kept."""

from __future__ import annotations

import json
import logging
import sys
import time

from .redact import scrub, scrub_deep

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
# extras that libraries attach to every record and that say nothing per line (kopf: its whole settings object)
_NOISE = {"settings", "k8s_skip"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "msg": scrub(record.getMessage())}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _NOISE and not key.startswith("_"):
                out[key] = scrub_deep(value)
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        # a secret may hide in a value json renders differently (bytes, objects): scrub the line too
        return scrub(json.dumps(out, default=str))


def setup(level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "aiobotocore", "s3fs", "fsspec", "urllib3", "aiohttp.access", "filelock",
                  "sentence_transformers", "httpx", "matplotlib", "PIL", "faiss.loader", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
