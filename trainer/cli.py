"""Click commands of the trainer: ``train``, ``plot``, ``export`` and the loader and step benchmarks.

``corpusgen/cli.py`` attaches them (``for c in COMMANDS: cli.add_command(c)`` and
``bench.add_command(bench_loader)``, ``bench_train``); ``python -m trainer`` / ``torchrun -m trainer`` runs
them without the rest of corpusgen. torch is imported inside the commands so that
``corpusgen --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import click

# option name → TrainConfig field; options left out keep the config file's or TrainConfig's value
_TRAIN_OPTIONS = [
    click.option("--data", "data", type=click.Path(file_okay=False), help="A `corpusgen build` output directory."),
    click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, exists=True),
        help="TOML/JSON file of train options ([train] table); flags override it.",
    ),
    click.option(
        "--model", type=click.Choice(["tiny", "mini", "small", "base", "large"]), help="Model size (default tiny)."
    ),
    click.option(
        "--max-position-embeddings",
        type=int,
        help="Model positions (default max(512, the build's max_seq_length rounded up to a power of 2)); "
        "fewer than the build's rows need is refused.",
    ),
    click.option("--steps", type=int, help="Total optimizer steps of the run; fixes the LR schedule (default 1000)."),
    click.option("--batch-size", type=int, help="Sequences per micro-batch per process (default 32)."),
    click.option("--accumulation", type=int, help="Micro-batches per optimizer step (default 1)."),
    click.option(
        "--lr", type=float, help="Peak learning rate (default by size: tiny/mini 1e-3, small 5e-4, base/large 1e-4)."
    ),
    click.option("--min-lr", type=float, help="Learning rate at the end of the decay (default 0)."),
    click.option("--warmup", type=int, help="Warmup steps (default 1% of --steps)."),
    click.option("--decay-power", type=float, help="Polynomial decay power: 1 linear (default), 0.5 for LAMB recipes."),
    click.option(
        "--optimizer",
        type=click.Choice(["adamw", "lamb"]),
        help="adamw (default; fused on CUDA) or lamb for large batches.",
    ),
    click.option("--weight-decay", type=float, help="Default 0.01 (not on biases and LayerNorm)."),
    click.option("--grad-clip", type=float, help="Clip the gradient norm to this (0: off; default 1.0)."),
    click.option("--dropout", type=float, help="Hidden and attention dropout (default 0.1)."),
    click.option(
        "--attention-dropout",
        type=float,
        help="Attention-probability dropout (default: --dropout); 0 lets packed builds use FlexAttention on CUDA.",
    ),
    click.option("--seed", type=int, help="Seeds weights, dropout and data order (default 0)."),
    click.option(
        "--out", type=click.Path(file_okay=False), help="Run directory: logs, checkpoints (default runs/bert)."
    ),
    click.option("--log-every", type=int, help="Log every N steps (default 10)."),
    click.option(
        "--eval-every", type=int, help="Evaluate on held-out shards every N steps (default: at the end only)."
    ),
    click.option(
        "--eval-data",
        type=click.Path(file_okay=False),
        help="Evaluate on this build's held-out split (same vocabulary) instead of --data's.",
    ),
    click.option(
        "--eval-batches",
        type=int,
        help="Held-out batches per evaluation per process (default 50, 0: all); at most the micro-batches since the last.",
    ),
    click.option("--save-every", type=int, help="Checkpoint every N steps (default: at the end and at --stop-after)."),
    click.option("--keep-checkpoints", type=int, help="Checkpoints kept in --out (default 3)."),
    click.option("--stop-after", type=int, help="End this invocation at step N with a checkpoint (preemptible jobs)."),
    click.option("--resume/--no-resume", default=None, help="Continue the run in --out from its latest checkpoint."),
    click.option("--workers", type=int, help="DataLoader worker processes (default 2 on CUDA, 0 on CPU)."),
    click.option("--shuffle-buffer", type=int, help="Rows per consumer in the shuffle buffer (default 65536)."),
    click.option("--device", help="auto (default), cpu, cuda, cuda:1, ..."),
    click.option(
        "--dtype", type=click.Choice(["auto", "bf16", "fp32"]), help="auto: bf16 autocast on CUDA, fp32 on CPU."
    ),
    click.option("--compile/--no-compile", default=None, help="torch.compile the model."),
    click.option(
        "--tensorboard/--no-tensorboard", default=None, help="Also log to OUT/tensorboard (needs tensorboard)."
    ),
    click.option(
        "--progress/--no-progress",
        default=None,
        help="Live progress line between log lines on a terminal (default on).",
    ),
    click.option(
        "--trace/--no-trace",
        default=None,
        help="Debug: per step, each process logs its weights' sha256 and the row ids it consumed "
        "to OUT/trace-rankR.jsonl.",
    ),
]


def _with_options(options):
    def wrap(f):
        for option in reversed(options):
            f = option(f)
        return f

    return wrap


@click.command("train")
@_with_options(_TRAIN_OPTIONS)
def train(config_file: str | None, **options) -> None:
    """Pretrain BERT (MLM + NSP) on a build's shards; under torchrun, one process per GPU."""
    from trainer.train import CheckpointError, TrainConfig, TrainingInterrupted
    from trainer.train import train as run

    given = {k: v for k, v in options.items() if v is not None}
    try:
        cfg = TrainConfig.from_file(config_file, **given) if config_file else TrainConfig(**given)
    except (ValueError, OSError) as exc:
        raise click.UsageError(str(exc)) from None
    if int(os.environ.get("RANK", "0")) == 0:
        for warning in cfg.warnings():
            click.echo(f"warning: {warning}", err=True)
    from corpusgen.shards import ManifestError

    try:
        result = run(cfg)
    except (ManifestError, CheckpointError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(write_error(exc, Path(cfg.out))) from None
    except SystemExit as refused:
        if isinstance(refused.code, str):  # a start refused in one line (trainer.train): "Error: …" as the others
            raise click.ClickException(refused.code) from None
        raise
    except TrainingInterrupted as stop:
        if stop.path is not None:  # rank 0
            click.echo(
                f"stopped at step {stop.step} of {cfg.steps} ({signal.Signals(stop.signum).name}); saved {stop.path}: "
                "the same command with --resume continues the run exactly",
                err=True,
            )
        sys.exit(128 + stop.signum)
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0:
            from trainer.train import checkpoints

            saved = checkpoints(Path(cfg.out)) if Path(cfg.out).is_dir() else []
            where = (
                f"{saved[-1]} is the last checkpoint: the same command with --resume continues from it"
                if saved
                else "no checkpoint was saved yet (--save-every N keeps progress)"
            )
            click.echo(f"interrupted; {cfg.out} keeps the run's logs; {where}", err=True)
        sys.exit(130)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank returns the same summary
        click.echo(json.dumps(result))


def write_error(exc: OSError, out: Path) -> str:
    """One line for a run that could not write into ``out`` (a full disk, a read-only folder): the file, the
    reason, the fix, and where the run can continue from."""
    import errno

    from trainer.train import checkpoints

    where = Path(exc.filename) if exc.filename else out
    inside = where.absolute().is_relative_to(out.absolute())
    if not inside or exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{where}: {exc.strerror or exc}"  # not a write into the run's folder (a shard it read, …)
    fix = "free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable"
    saved = checkpoints(out) if out.is_dir() else []
    then = (
        f"; {saved[-1]} is the last checkpoint: the same command with --resume continues from it"
        if saved
        else ", or choose another --out"
    )
    return f"{where}: {exc.strerror}; {fix}{then}"


@click.command("plot")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Image path: .png, .svg, .pdf, … (default RUN_DIR/curves.png).",
)
def plot(run_dir: str, output: str | None) -> None:
    """Draw a run's losses and accuracies (train and held-out) to a PNG."""
    from trainer.plot import plot_run

    target = Path(output) if output else None
    if target is not None:
        target = target if target.suffix else target.with_suffix(".png")  # what matplotlib would write
        if not target.parent.is_dir():
            raise click.ClickException(f"{target.parent}: no such folder; create it or pick another --output")
        from matplotlib.backend_bases import FigureCanvasBase

        if target.suffix[1:].lower() not in FigureCanvasBase.get_supported_filetypes():
            raise click.ClickException(
                f"{target}: no image format is named {target.suffix}; name it .png, .svg or .pdf"
            )
    try:
        path = plot_run(Path(run_dir), target)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(path))


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for config.json + model.safetensors.",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in OUTPUT (other files stay).")
@click.option(
    "--tokenizer",
    type=click.Path(dir_okay=False),
    help="The vocab.txt / tokenizer.json the model was trained with [the training build's].",
)
def export(checkpoint: str, output: str, overwrite: bool, tokenizer: str | None) -> None:
    """Convert a checkpoint (or a run directory's latest) for transformers' BertForPreTraining."""
    from trainer.export import export as run
    from trainer.train import CheckpointError

    try:
        out, vocab, pair_head_trained = run(checkpoint, output, overwrite=overwrite, tokenizer=tokenizer)
    except (CheckpointError, FileNotFoundError, FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if not pair_head_trained:
        click.echo(
            f"note: the model was trained on an MLM-only build, so the pooler and NSP head in {out} hold their "
            "initial weights; load it as BertForMaskedLM or BertModel (not for next-sentence predictions)",
            err=True,
        )
    if vocab is None:
        click.echo(
            f"warning: the training build is gone, so {out} has the weights but no tokenizer; "
            "add it with --tokenizer (the build's vocab.txt or tokenizer.json) and --overwrite",
            err=True,
        )
    click.echo(str(out))


@click.command("loader")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="DataLoader worker processes (0: this process).",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="How long to measure.",
)
@click.option("--split", default="train", show_default=True)
def bench_loader(data_dir: str, batch_size: int, workers: int, seconds: float, split: str) -> None:
    """Measure the shard loader: sequences/s, tokens/s and padding share (last line JSON)."""
    from corpusgen.shards import ManifestError

    try:
        result = measure_loader(data_dir, batch_size=batch_size, workers=workers, seconds=seconds, split=split)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{result['seq_per_s']:,.0f} seq/s  {result['tokens_per_s']:,.0f} tokens/s  padding {result['pad_fraction']:.1%}  ({result['batches']} batches of {batch_size}, {workers} workers)"
    )
    click.echo(json.dumps(result))


def measure_loader(
    data_dir: str, *, batch_size: int = 256, workers: int = 0, seconds: float = 10.0, split: str = "train"
) -> dict:
    """Batches/s of a training stream after a short warm-up (start-up and worker spawn excluded)."""
    from contextlib import closing

    from trainer.data import ShardDataset, ShardLoader

    data = ShardDataset(data_dir, split=split, batch_size=batch_size, seed=0)
    with closing(iter(ShardLoader(data, num_workers=workers))) as it:
        for _ in range(max(2, 2 * workers)):
            next(it)
        seqs = tokens = slots = batches = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            mask = next(it)["attention_mask"]
            seqs += mask.shape[0]
            tokens += int(mask.sum())
            slots += mask.numel()
            batches += 1
        dt = time.perf_counter() - t0
    return {
        "seq_per_s": round(seqs / dt, 1),
        "tokens_per_s": round(tokens / dt, 1),
        "pad_fraction": round(1 - tokens / slots, 4),
        "batches": batches,
        "max_seq_length": data.max_seq_length,
    }


@click.command("train")
@click.option(
    "--model", type=click.Choice(["tiny", "mini", "small", "base", "large"]), default="tiny", show_default=True
)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--seq-len", type=click.IntRange(min=4), default=128, show_default=True, help="Length of the synthetic rows."
)
@click.option(
    "--predictions",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Masked positions per synthetic row (at most seq-len - 2).",
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=10, show_default=True, help="Measured steps (after --warmup)."
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Steps left out of the figures (they compile).",
)
@click.option("--compile/--no-compile", default=False, show_default=True, help="torch.compile (both models).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True)
@click.option("--optimizer", type=click.Choice(["adamw", "lamb"]), default="adamw", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="torch intra-op threads (default: torch's choice).")
@click.option("--against-hf", is_flag=True, help="Run transformers.BertForPreTraining beside it; print the ratio.")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False),
    help="Read batches from this build with the trainer's loader (default: synthetic full-length rows).",
)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="Loader workers with --data.")
def bench_train(threads: int | None, **options) -> None:
    """Measure training steps: seq/s, tokens/s, step split, peak memory, MFU on CUDA (last line JSON)."""
    import torch

    from corpusgen.shards import ManifestError
    from trainer.bench import measure_train

    if options["predictions"] > options["seq_len"] - 2:
        raise click.BadParameter(
            f"{options['predictions']} masked positions do not fit rows of {options['seq_len']} ([CLS] and [SEP] are never masked)",
            param_hint="--predictions",
        )
    if threads:
        torch.set_num_threads(threads)
    try:
        r = measure_train(**options)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None
    except ImportError as exc:
        raise click.ClickException(f"{exc}; --against-hf needs transformers (pip install transformers)") from None

    def line(prefix: str) -> str:
        split = "  ".join(f"{k} {v:.1f}" for k, v in r[prefix + "split_ms"].items())
        mfu = "" if r[prefix + "mfu"] is None else f"  MFU {r[prefix + 'mfu']:.1%}"
        return (
            f"{r[prefix + 'seq_per_s']:,.1f} seq/s  {r[prefix + 'tokens_per_s']:,.0f} tokens/s  "
            f"step {r[prefix + 'step_ms']:.1f} ms ({split} ms){mfu}"
        )

    click.echo(
        f"BERT-{r['model']} batch {r['batch_size']} seq {r['seq_len']} on {r['device']} {r['dtype']} "
        f"({r['threads']} threads){' compiled' if r['compile'] else ''}, {r['steps']} steps"
    )
    click.echo(f"corpusgen     {line('')}  peak {r['peak_mem_mb']:,.0f} MB ({r['peak_mem_kind']})")
    if "hf_seq_per_s" in r:
        click.echo(f"transformers  {line('hf_')}")
        click.echo(f"ratio {r['ratio_vs_hf']:.2f}x")
    if r["compile"]:
        click.echo(
            f"compile {r['compile_s']:.1f}s"
            + (f" (transformers {r['hf_compile_s']:.1f}s)" if "hf_compile_s" in r else "")
        )
    click.echo(json.dumps(r))


COMMANDS = [train, plot, export]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The corpusgen BERT trainer (also reachable as `corpusgen train|plot|export|bench loader`)."""


for _command in COMMANDS:
    main.add_command(_command)


@main.group("bench")
def _bench() -> None:
    """Benchmarks."""


_bench.add_command(bench_loader)
_bench.add_command(bench_train)


def run_module(argv: list[str] | None = None) -> None:
    """``python -m trainer ...``; bare options (``torchrun -m trainer --data ...``) mean ``train``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["train", *argv]
    main.main(args=argv, prog_name="python -m trainer")
