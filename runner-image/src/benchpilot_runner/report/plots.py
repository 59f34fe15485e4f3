"""The PNG plot: success rate per model × prompt type as grouped bars with their 95 % intervals."""

from __future__ import annotations


def _errors(cells: list[dict | None]) -> list[list[float]]:
    """matplotlib's asymmetric yerr: distance from the estimate down and up (0 where there is no interval)."""
    down, up = [], []
    for s in cells:
        if not s or s.get("low") is None:
            down.append(0.0)
            up.append(0.0)
        else:
            down.append(s["estimate"] - s["low"])
            up.append(s["high"] - s["estimate"])
    return [down, up]


def success_png(summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = summary["by_model_prompt_type"]
    models = sorted({g["model"] for g in groups})
    prompts = sorted({g["prompt_type"] for g in groups})
    cell = {(g["model"], g["prompt_type"]): g["success"] for g in groups}
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(prompts) + 2), 4.5))
    try:
        for i, model in enumerate(models):
            xs = [j + i * width for j in range(len(prompts))]
            cells = [cell.get((model, p)) for p in prompts]
            ax.bar(xs, [(c or {}).get("estimate") or 0.0 for c in cells], width, label=model,
                   yerr=_errors(cells), capsize=3, error_kw={"elinewidth": 1})
        ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(prompts))])
        ax.set_xticklabels(prompts, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(f"success rate ({summary.get('confidence', 0.95):.0%} CI)")
        ax.set_title(f"Success rate by model × prompt type ({summary['total']} cases)")
        if models:
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
