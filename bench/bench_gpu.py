"""Issue 10's GPU checks in one run: BERT-base, sequence 128, bf16, batch 256, against transformers.

    python bench/bench_gpu.py [--data BUILD_DIR] [--batch-size 256] [--steps 20] [--warmup 3]
                              [--model base] [--device cuda] [--no-compile] [--json FILE]

For a lent GPU machine, where one short prepared command is all there is time for. Three runs of
``trainer.bench.measure_train``, each a line and a JSON entry:

- ``eager`` and ``compiled``: the trainer's step (masked-only MLM head) and
  ``transformers.BertForPreTraining`` (full head) on the same synthetic full-length batches,
  alternating step by step: sequences/s, MFU, the step split, compile seconds, the ratio;
- ``data`` (with ``--data``): the trainer's step fed by its loader from a real build (4 workers,
  pinned memory), in the faster mode of the two: the data wait as a share of the step.

The last line is JSON with the targets read off: MFU >= 45% (the faster mode) and data wait < 2%.
Build the ``--data`` directory beforehand where Beam is installed (``corpusgen build``) and carry it.
Needs only torch and transformers (no Beam), so it runs in the GPU machine's own Python.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.bench import measure_train  # noqa: E402

MFU_TARGET, DATA_WAIT_TARGET = 0.45, 0.02


def line(name: str, r: dict) -> str:
    s = r["split_ms"]
    text = (
        f"{name:8s} corpusgen {r['seq_per_s']:8.1f} seq/s  MFU {r['mfu']}  step {r['step_ms']:.1f} ms"
        f" (data {s['data_wait']:.1f} / fwd {s['forward']:.1f} / bwd {s['backward']:.1f} / opt {s['optimizer']:.1f})"
        f"  compile {r['compile_s']:.0f} s"
    )
    if "hf_seq_per_s" in r:
        text += f"  | transformers {r['hf_seq_per_s']:.1f} seq/s  MFU {r['hf_mfu']}  ratio {r['ratio_vs_hf']:.2f}x"
    if r.get("data_wait_fraction") is not None:
        text += f"  | data wait {100 * r['data_wait_fraction']:.2f}% of the step"
    return text


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="a build to read batches from (the data-wait check)")
    ap.add_argument("--model", default="base")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the figures (they compile)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--workers", type=int, default=4, help="loader workers for --data")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    args = ap.parse_args(argv)
    common = dict(
        model=args.model, batch_size=args.batch_size, seq_len=args.seq_len, predictions=20, steps=args.steps,
        warmup=args.warmup, device=args.device, dtype=args.dtype,
    )  # fmt: skip
    runs: dict[str, dict] = {}
    for compile in (False,) if args.no_compile else (False, True):
        name = "compiled" if compile else "eager"
        runs[name] = measure_train(**common, compile=compile, against_hf=True)
        print(line(name, runs[name]), flush=True)
    fastest = max(runs, key=lambda k: runs[k]["seq_per_s"])
    if args.data:
        runs["data"] = measure_train(**common, compile=fastest == "compiled", data=args.data, workers=args.workers)
        print(line("data", runs["data"]), flush=True)
    best = runs[fastest]
    summary = {
        "device": best["device"],
        "runs": runs,
        "fastest": fastest,
        "mfu": best["mfu"],
        "mfu_target_met": None if best["mfu"] is None else best["mfu"] >= MFU_TARGET,
        "data_wait_fraction": runs["data"]["data_wait_fraction"] if "data" in runs else None,
        "data_wait_target_met": runs["data"]["data_wait_fraction"] < DATA_WAIT_TARGET if "data" in runs else None,
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    return summary


if __name__ == "__main__":
    main()
