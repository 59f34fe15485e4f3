"""The runner image people pull: its size, what fills it, and what a process in it costs.

Builds (or reuses: cached by content) the image of runner-image/Dockerfile with
``scripts/node-image.sh runner`` (buildah; root), then, inside the image itself (``buildah run``):
- size: the image's layers uncompressed (what a node stores), against the 800 MB goal (issue 21);
  0.2's image, with PyPI's torch and its CUDA wheels, was 5.72 GB;
- what fills it: the base and the largest installed packages;
- that no torch, transformers, sentence-transformers or nvidia package is installed;
- ``benchpilot --help`` wall time (an import of the CLI in a fresh process), median of 5.
Figures, not a pass/fail test.

    sudo .venv/bin/python bench/runner_image.py

Last line: {"image_mb": …, "venv_mb": …, "base_mb": …, "torch_installed": …, "help_s": …}
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORE = Path(os.environ.get("BENCHPILOT_IMAGE_CACHE", Path.home() / ".cache/benchpilot/images")) / "storage"
HEAVY = ("torch", "transformers", "sentence_transformers", "nvidia")


def buildah(*args: str) -> str:
    out = subprocess.run(["buildah", "--root", str(STORE / "root"), "--runroot", str(STORE / "run"),
                          "--storage-driver", "overlay", *args], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main() -> None:
    if os.geteuid() != 0 or not shutil.which("buildah"):
        print("bench/runner_image.py: skipped: it builds the image with buildah, which needs root "
              "(scripts/bootstrap.sh --system installs buildah)")
        return
    built = subprocess.run([str(ROOT / "scripts" / "node-image.sh"), "runner"], capture_output=True, text=True)
    if built.returncode != 0:
        raise SystemExit(f"scripts/node-image.sh runner failed:\n{built.stderr[-3000:]}")
    name, archive, size = built.stdout.split()
    ctr = buildah("from", "--pull-never", name)
    try:
        mnt = Path(buildah("mount", ctr))
        sp = mnt / "opt/venv/lib/python3.11/site-packages"
        du = subprocess.run(["du", "-sk", *map(str, sp.iterdir())], capture_output=True, text=True).stdout
        pkgs = sorted(((int(k) / 1024, Path(p).name) for k, p in (ln.split("\t") for ln in du.splitlines())),
                      reverse=True)
        venv_mb = int(subprocess.run(["du", "-sk", str(mnt / "opt/venv")], capture_output=True, text=True)
                      .stdout.split()[0]) / 1024
        heavy = sorted({p for _, p in pkgs if p.split("-")[0].split(".")[0].lower() in HEAVY})
        runs = []
        for _ in range(5):
            t0 = time.monotonic()
            buildah("run", "--isolation", "chroot", ctr, "--", "benchpilot", "--help")
            runs.append(time.monotonic() - t0)
    finally:
        buildah("umount", ctr)
        buildah("rm", ctr)
    image_mb = int(size) / 1e6
    print(f"{name}: {image_mb:.0f} MB uncompressed (goal <= 800 MB; 0.2's image with CUDA torch: 5720 MB)")
    print(f"  /opt/venv {venv_mb:.0f} MiB; the rest (Debian base, python3.11) {image_mb / 1.048576 - venv_mb:.0f} MiB")
    print("  largest packages: " + ", ".join(f"{p} {mb:.0f}" for mb, p in pkgs[:8]) + " (MiB)")
    print(f"  torch/transformers/sentence-transformers/nvidia installed: {heavy or 'none'}")
    print(f"  benchpilot --help in the image: median {statistics.median(runs):.2f}s over 5 (buildah run)")
    print(json.dumps({"image_mb": round(image_mb), "venv_mb": round(venv_mb),
                      "base_mb": round(image_mb / 1.048576 - venv_mb), "torch_installed": bool(heavy),
                      "help_s": round(statistics.median(runs), 2)}))


if __name__ == "__main__":
    sys.exit(main())
