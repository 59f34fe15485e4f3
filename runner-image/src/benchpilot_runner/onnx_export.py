"""``benchpilot cache build``: the cache's encoder exported to ONNX for runners, and checked.

The whole sentence-transformers pipeline (transformer, pooling, normalisation) becomes one graph
from token ids to the sentence embedding, its weights in ``model.onnx.data`` beside the graph
(onnxruntime maps that file instead of parsing a copy of every weight). The export is then run
by the runner's own :class:`~benchpilot_runner.encoder.OnnxEncoder` on a sample of the cache's
texts and on a few awkward ones (empty, one letter, non-Latin scripts, a text past the truncation
length), in the runner's batch size: every component must be within ``TOLERANCE`` of what
sentence-transformers computed, or the build fails. Needs the ``cache-build`` extra (torch, onnx).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .encoder import ONNX_DATA, ONNX_FILE, OnnxEncoder

TOLERANCE = 1e-5
PROBES = ("", "a", "Ünïcödé, 東京 and emoji 🎉\twith tabs\nand newlines", "word " * 600)
CHECK_SAMPLE = 256  # cache texts compared, spread evenly over the rows, plus the longest ones
CHECK_BATCH = 8  # what a runner batches (resources.EMBED_BATCH)


class ExportError(Exception):
    """The ONNX export does not reproduce the encoder's vectors."""


def export(st_model, model_dir: Path) -> None:
    """Write ``model_dir/model.onnx`` and ``model.onnx.data`` from a loaded SentenceTransformer."""
    import onnx
    import torch

    class Pipeline(torch.nn.Module):  # positional tensors in, the sentence embedding out
        def __init__(self, st, names):
            super().__init__()
            self.st, self.names = st, names

        def forward(self, *tensors):
            return self.st(dict(zip(self.names, tensors)))["sentence_embedding"]

    feats = st_model.preprocess(["a short text", "a somewhat longer text, so the sequence axis has two sizes"])
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in feats]
    single = model_dir / "model.single.onnx"
    axes = {**{n: {0: "batch", 1: "sequence"} for n in names}, "sentence_embedding": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the tracer's notes on shape checks that hold for every input
        torch.onnx.export(Pipeline(st_model, names).eval(), tuple(feats[n] for n in names), str(single),
                          dynamo=False, input_names=names, output_names=["sentence_embedding"],
                          dynamic_axes=axes, opset_version=17)
    onnx.save_model(onnx.load(str(single)), str(model_dir / ONNX_FILE), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=ONNX_DATA, size_threshold=1024)
    single.unlink()
    for name in (ONNX_FILE, ONNX_DATA):
        os.chmod(model_dir / name, 0o644)  # a cache is read by runners under other users


def check_sample(texts: list[str]) -> list[int]:
    """Rows whose vectors the check compares: evenly spread, plus the 16 longest texts."""
    if len(texts) <= CHECK_SAMPLE:
        return list(range(len(texts)))
    spread = np.linspace(0, len(texts) - 1, CHECK_SAMPLE).astype(int).tolist()
    longest = sorted(range(len(texts)), key=lambda i: -len(texts[i]))[:16]
    return sorted(set(spread) | set(longest))


def check(st_model, model_dir: Path, texts: list[str], vectors: np.ndarray) -> dict:
    """Compare the export with sentence-transformers on a sample of ``texts`` (whose vectors are
    ``vectors``) and on the probes; raise :class:`ExportError` past ``TOLERANCE``."""
    rows = check_sample(texts)
    probe_vecs = st_model.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False).astype(np.float32)
    sample = [texts[i] for i in rows] + list(PROBES)
    want = np.concatenate([np.asarray(vectors[rows], dtype=np.float32), probe_vecs])
    got = OnnxEncoder(model_dir, threads=os.cpu_count() or 1).encode(sample, batch_size=CHECK_BATCH)
    diff = np.abs(got - want).max(axis=1)
    worst = int(diff.argmax())
    if float(diff[worst]) > TOLERANCE:
        raise ExportError(f"the ONNX export of the encoder differs from sentence-transformers by "
                          f"{float(diff[worst]):.2e} (allowed {TOLERANCE:g}) on {sample[worst][:60]!r}; "
                          "this model cannot be exported as one graph")
    return {"file": f"{model_dir.name}/{ONNX_FILE}", "maxAbsDiff": float(diff.max()), "tolerance": TOLERANCE,
            "checkedTexts": len(sample)}
