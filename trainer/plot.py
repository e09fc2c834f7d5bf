"""Training curves of a run directory (train.jsonl, eval.jsonl) as one PNG."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    """The records of a run's log; a line that is not a JSON object (the torn last line of a run killed
    while writing) is skipped and said on stderr."""
    if not path.exists():
        return []
    records, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), (int, float)):
            records.append(record)
        else:
            bad += 1
    if bad:
        sys.stderr.write(f"{path}: {bad} unreadable line(s) skipped (a run killed while writing leaves one)\n")
    return records


def plot_run(run_dir: Path, output: Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display needed: headless servers, CI
    import matplotlib.pyplot as plt

    train, heldout = read_jsonl(run_dir / "train.jsonl"), read_jsonl(run_dir / "eval.jsonl")
    if not train:
        raise FileNotFoundError(f"{run_dir}: no train.jsonl records; is this a `corpusgen train --out` directory?")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    panels = [(axes[0], ("mlm_loss", "nsp_loss"), "loss"), (axes[1], ("mlm_acc", "nsp_acc"), "accuracy")]
    for ax, keys, ylabel in panels:
        for key, color in zip(keys, ("tab:blue", "tab:orange"), strict=True):
            for records, style, label in ((train, "-", "train"), (heldout, "o--", "held-out")):
                points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, style, color=color, label=f"{key} ({label})", markersize=4)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    output = output or run_dir / "curves.png"
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output
