"""Query embedding in a runner: the cache's ONNX export of its encoder, run by onnxruntime.

``benchpilot cache build`` writes ``model/model.onnx`` (+ ``model.onnx.data``, the weights) next to
the encoder's own files: the whole sentence-transformers pipeline (transformer, pooling,
normalisation) as one graph from token ids to the sentence embedding, checked at build against the
vectors sentence-transformers made (``manifest.json`` records the largest difference). A runner
needs only this module's two light libraries — ``tokenizers`` and ``onnxruntime`` — and never
imports torch: about 460 MiB less per process, and an image without torch or CUDA.

Tokenisation is the model's own ``tokenizer.json`` with sentence-transformers' settings: truncation
at ``max_seq_length`` (``sentence_bert_config.json``), padding to the longest text of a batch,
lower-casing first when ``do_lower_case`` says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

ONNX_FILE = "model.onnx"
ONNX_DATA = "model.onnx.data"
# the files a runner reads from the model folder (the cache verifies them before loading)
RUNTIME_FILES = (ONNX_FILE, ONNX_DATA, "tokenizer.json", "tokenizer_config.json", "sentence_bert_config.json")


def encoder_threads() -> int:
    """Threads for one encoder call (BENCHPILOT_ENCODER_THREADS, default 1): questions come in
    batches while hundreds of cases wait on the LLM, so one thread keeps up and leaves the cores
    to the event loop and SQL."""
    raw = os.environ.get("BENCHPILOT_ENCODER_THREADS", "1")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 64:
        raise ValueError(f"BENCHPILOT_ENCODER_THREADS={raw[:20]!r}: expected a whole number from 1 to 64")
    return value


def tokenizer_settings(model_dir: Path) -> dict:
    """What sentence-transformers tokenises with: max_seq_length, do_lower_case and the pad token."""
    st = _json(model_dir / "sentence_bert_config.json")
    tk = _json(model_dir / "tokenizer_config.json")
    max_len = st.get("max_seq_length") or tk.get("model_max_length") or 512
    return {"max_seq_length": int(min(max_len, tk.get("model_max_length") or max_len)),
            "do_lower_case": bool(st.get("do_lower_case", False)),
            "pad_token": tk.get("pad_token") or "[PAD]"}


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


class OnnxEncoder:
    """``encode(texts) -> float32 [n, dim]``, L2-normalised, as the cache's sentence-transformers
    model computes it (to 1e-5, checked when the cache was built)."""

    def __init__(self, model_dir: str | Path, *, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        self.settings = tokenizer_settings(model_dir)
        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=self.settings["max_seq_length"])
        pad = self.settings["pad_token"]
        pad_id = tok.token_to_id(pad)
        tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad)
        self.tokenizer = tok
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or encoder_threads()
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False  # activations are freed after each call, not kept at their peak
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_dir / ONNX_FILE), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        out = [self._batch(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def _batch(self, texts: list[str]) -> np.ndarray:
        if self.settings["do_lower_case"]:
            texts = [t.lower() for t in texts]
        enc = self.tokenizer.encode_batch(texts)
        feed = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64)}
        (vec,) = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})
        return np.asarray(vec, dtype=np.float32)
