"""Pretrain BERT on a corpusgen build: one process, or many under torchrun (DDP).

Read top to bottom: config → setup (DDP, device, data, model, optimizer) → resume → loop
(accumulate, clip, step, log, evaluate, checkpoint). A checkpoint is one dict; resuming it
continues the run bit for bit on CPU: the data stream, dropout RNG, optimizer and metric
accumulators all come back as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import pickle
import random
import re
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from corpusgen.config import check_known_options, check_option_types, read_config_file
from corpusgen.partition import VALIDATION
from corpusgen.shards import ManifestError, atomic_write_bytes, atomic_writer, remove_stale_temps
from trainer.data import ShardDataset, ShardLoader, load_build
from trainer.model import IGNORE, SIZES, BertConfig, BertForPreTraining, flops_per_sequence
from trainer.optim import lr_at, make_optimizer

CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")
DEFAULT_LR = {"tiny": 1e-3, "mini": 1e-3, "small": 5e-4, "base": 1e-4, "large": 1e-4}
# (bf16, tf32) dense tensor-core peak FLOP/s of one GPU, by a part of torch.cuda.get_device_name; first match wins
PEAK_FLOPS = {
    "H100 PCIe": (756e12, 378e12),
    "H100": (989e12, 494.7e12),
    "H200": (989e12, 494.7e12),
    "A100": (312e12, 156e12),
}


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/bert"
    model: str = "tiny"
    steps: int = 1000
    """Total optimizer steps of the run; fixes the LR schedule (a resumed run uses the same)."""
    batch_size: int = 32
    """Sequences per micro-batch per process; the effective batch is batch_size x accumulation x processes."""
    accumulation: int = 1
    lr: float | None = None
    """Peak learning rate; None: by model size (tiny/mini 1e-3, small 5e-4, base/large 1e-4)."""
    min_lr: float = 0.0
    warmup: int | None = None
    """Warmup steps; None: 1% of steps (BERT: 10k of 1M)."""
    decay_power: float = 1.0
    """1: linear decay (BERT); 0.5: the polynomial decay LAMB recipes use."""
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    dropout: float = 0.1
    seed: int = 0
    log_every: int = 10
    eval_every: int = 0
    """Evaluate on the held-out shards every N steps (0: only at the end of the run)."""
    eval_data: str | None = None
    """Evaluate on the held-out split of this build instead of --data's (the same vocabulary): compares
    runs trained on builds of different recipes on one held-out set."""
    eval_batches: int = 50
    """Held-out batches per evaluation per process (0: all); never more than the micro-batches trained since
    the previous evaluation, so evaluating costs less than the training it follows."""
    save_every: int = 0
    """Checkpoint every N steps (0: only at the end and at --stop-after)."""
    keep_checkpoints: int = 3
    stop_after: int | None = None
    resume: bool = False
    workers: int | None = None
    """DataLoader workers; None: 2 on CUDA, 0 (in-process) on CPU."""
    shuffle_buffer: int = 65536
    device: str = "auto"
    dtype: str = "auto"
    """auto: bf16 autocast on CUDA, fp32 elsewhere; or bf16 / fp32."""
    compile: bool = False
    tensorboard: bool = False
    progress: bool = True
    """Live progress line between log lines (only on a terminal)."""
    attention_dropout: float | None = None
    """Dropout on attention probabilities; None: --dropout. 0 lets packed builds use FlexAttention on CUDA
    (it has no dropout; with attention dropout the document mask goes through scaled_dot_product_attention)."""
    max_position_embeddings: int | None = None
    """Positions of the model; None: max(512, the build's max_seq_length rounded up to a power of 2).
    A model with fewer positions than the build's rows is refused."""
    trace: bool = False
    """Debugging: each process appends, per optimizer step, the sha256 of its weights and the ids of
    the rows it consumed to OUT/trace-rank{R}.jsonl (DDP ranks must agree on the first and never share the
    second)."""

    def __post_init__(self) -> None:
        device = device_problem(self.device)
        checks = [
            (bool(self.data), "--data is required: a `corpusgen build` output directory"),
            (self.model in SIZES, f"--model must be one of {', '.join(SIZES)}, got {self.model!r}"),
            (self.steps >= 1, "--steps must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.accumulation >= 1, "--accumulation must be at least 1"),
            (self.stop_after is None or 1 <= self.stop_after, "--stop-after must be at least 1"),
            (self.optimizer in ("adamw", "lamb"), "--optimizer must be adamw or lamb"),
            (self.dtype in ("auto", "bf16", "fp32"), "--dtype must be auto, bf16 or fp32"),
            (self.log_every >= 1, "--log-every must be at least 1"),
            (self.warmup is None or self.warmup >= 0, "--warmup must be >= 0"),
            (device is None, f"--device {self.device}: {device}"),
            (self.lr is None or 0 < self.lr < math.inf, f"--lr must be positive, got {self.lr}"),
            (0 <= self.seed < 2**63, f"--seed must be >= 0 and below 2**63, got {self.seed}"),
            (0 <= self.weight_decay < math.inf, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (
                0 <= self.decay_power < math.inf,
                f"--decay-power must be >= 0 (1: linear, 0: constant after warmup), got {self.decay_power}",
            ),
            (self.shuffle_buffer >= 1, f"--shuffle-buffer must be at least 1, got {self.shuffle_buffer}"),
            (self.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1"),
            (
                min(self.save_every, self.eval_every, self.eval_batches) >= 0,
                "--save-every, --eval-every and --eval-batches must be >= 0 (0: at the end only / all)",
            ),
            (self.workers is None or self.workers >= 0, "--workers must be >= 0 (0: load in this process)"),
            (0 <= self.min_lr < math.inf, f"--min-lr must be >= 0, got {self.min_lr}"),
            (0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}"),
            (self.grad_clip >= 0.0, f"--grad-clip must be >= 0 (0: no clipping), got {self.grad_clip}"),
            (
                self.attention_dropout is None or 0.0 <= self.attention_dropout < 1.0,
                "--attention-dropout must be in [0, 1)",
            ),
            (
                self.max_position_embeddings is None or self.max_position_embeddings >= 1,
                "--max-position-embeddings must be at least 1",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """A ``.toml`` / ``.json`` file (top-level keys or a ``[train]`` table), then ``overrides``."""
        data = read_config_file(path, "train")
        check_known_options(data, [f.name for f in dataclasses.fields(cls)], str(path), "train ")
        check_option_types(cls, data, str(path))
        try:
            return cls(**{**data, **overrides})
        except ValueError as exc:  # a check on a value the file gave: name the file and its key
            flag, _, rest = str(exc).partition(" ")
            key = flag.rstrip(",").removeprefix("--").replace("-", "_")
            if flag.startswith("--") and key in data and key not in overrides:
                raise ValueError(f"{path}: {key} = {data[key]!r}: {rest}") from None
            raise

    def warnings(self) -> list[str]:
        """What is allowed but likely a mistake."""
        out = []
        if self.min_lr > self.peak_lr:
            out.append(
                f"--min-lr {self.min_lr:g} is above the peak learning rate {self.peak_lr:g}: the rate rises after "
                "warmup instead of decaying; lower --min-lr or raise --lr"
            )
        if self.warmup is not None and self.warmup >= self.steps:
            out.append(
                f"warmup ({self.warmup_steps} steps) is not shorter than the run ({self.steps} steps): the learning "
                f"rate never reaches its peak {self.peak_lr:g}; lower --warmup or raise --steps"
            )
        return out

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.model]

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else max(1, self.steps // 100)


def device_problem(device: str) -> str | None:
    """What is wrong with a --device value (None: usable as far as can be told before the run)."""
    if device == "auto":
        return None
    try:
        dev = torch.device(device)
    except RuntimeError:
        return "not a device name; use auto, cpu, cuda or cuda:N"
    if dev.type == "cuda" and not torch.cuda.is_available():
        return "this torch sees no CUDA GPU; use --device cpu (or auto)"
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        return f"this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
    if dev.type not in ("cpu", "cuda"):  # mps, xpu, …: try it (on CUDA this would open a context on GPU 0)
        try:
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:160]
            return f"this torch cannot use it ({reason}); use --device cpu (or auto)"
    return None


# --- checkpoints --------------------------------------------------------------------------


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded or resumed from (one line: the file, what is wrong, the fix)."""


# what every checkpoint holds; one without these was not written whole by this trainer
CKPT_KEYS = ("step", "model", "optimizer", "scheduler", "model_config", "data", "rng", "metrics", "digest")


def checkpoints(out: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in out.glob("ckpt-*.pt") if (m := CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_digest(obj: Any) -> str:
    """sha256 of a checkpoint's whole content (tensor bytes, dtypes, shapes, every other value).

    Stored in the checkpoint and recomputed on load: a flipped bit that still unpickles (tensor
    data is not checksummed by torch's zip reader) is caught, and the checkpoint counts as damaged.
    """
    h = hashlib.sha256()

    def walk(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().to("cpu").contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
        elif isinstance(x, dict):
            h.update(b"D%d" % len(x))
            for k in sorted(x, key=repr):
                h.update(repr(k).encode())
                walk(x[k])
        elif isinstance(x, (list, tuple)):  # the same after a save/load round trip
            h.update(b"L%d" % len(x))
            for v in x:
                walk(v)
        else:
            h.update(f"V{type(x).__name__}{x!r}".encode())

    walk(obj)
    return h.hexdigest()


def save_checkpoint(out: Path, ckpt: dict[str, Any], keep: int) -> Path:
    """Write ``ckpt`` durably (temp file, fsync, rename, fsync of the folder), then drop all but the last ``keep``."""
    path = out / f"ckpt-{ckpt['step']:07d}.pt"
    ckpt = {**ckpt, "digest": checkpoint_digest({k: v for k, v in ckpt.items() if k != "digest"})}
    try:
        with atomic_writer(path) as f:  # a reader sees the old set or the new file, never half of one
            torch.save(ckpt, f)
    except (OSError, RuntimeError) as exc:  # a failed write (a full disk): name the checkpoint it was for
        # torch's zip writer turns the OSError into "RuntimeError: [enforce fail …] unexpected pos …"
        cause = exc if isinstance(exc, OSError) else exc.__context__
        if not isinstance(cause, OSError):
            raise
        raise OSError(cause.errno, cause.strerror, str(path)) from None
    for old in checkpoints(out)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint, loaded without executing anything in it (``weights_only=True``) and verified whole.

    Raises ``CheckpointError`` naming the file when it holds anything but tensors and plain values
    (a pickle that would run code is refused, not run), is truncated or damaged, or is incomplete.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        objects = next((line for line in lines if "GLOBAL" in line), None)
        if objects is not None:  # it names a class or function to import: the unpickling would run code
            raise CheckpointError(
                f"{path}: refused to load: it holds Python objects, not only tensors and plain values ({objects}); "
                "it was not written by this trainer or has been tampered with: do not use it"
            ) from None
        detail = next((line for line in lines if "Unsupported" in line), lines[-1] if lines else "not a pickle")
        raise CheckpointError(
            f"{path}: unreadable checkpoint, truncated or damaged ({detail[:160]}); "
            "resume from an earlier checkpoint or start a new run"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: unreadable checkpoint, truncated or damaged ({first[:160]}); "
            "resume from an earlier checkpoint or start a new run"
        ) from None
    missing = [k for k in CKPT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(CKPT_KEYS)
    if missing:
        raise CheckpointError(
            f"{path}: incomplete checkpoint (lacks {', '.join(missing)}); not written by this trainer"
        )
    digest = checkpoint_digest({k: v for k, v in ckpt.items() if k != "digest"})
    if digest != ckpt["digest"]:
        raise CheckpointError(
            f"{path}: damaged checkpoint (content sha256 {digest[:12]}… differs from the {str(ckpt['digest'])[:12]}… "
            "it was saved with); resume from an earlier checkpoint"
        )
    return ckpt


RUN_LOGS = ("train.jsonl", "eval.jsonl", "run.json")  # what a run writes beside its checkpoints


def resume_point(found: list[Path], say) -> tuple[dict[str, Any], Path]:
    """The newest checkpoint of ``found`` that loads intact; a damaged newer one is skipped, saying so."""
    for skipped, path in enumerate(reversed(found)):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            say(f"{exc}; falling back to the checkpoint before it")
            continue
        if skipped:
            say(f"resuming from {path.name}, the newest intact checkpoint")
        return ckpt, path
    raise CheckpointError(
        f"{found[-1].parent}: no intact checkpoint to resume from ({len(found)} damaged); start a new run"
    )


def schedule_state(cfg: TrainConfig) -> dict[str, Any]:
    """What fixes the learning-rate schedule; saved as a checkpoint's ``scheduler``."""
    return {
        "warmup": cfg.warmup_steps,
        "steps": cfg.steps,
        "lr": cfg.peak_lr,
        "power": cfg.decay_power,
        "min_lr": cfg.min_lr,
    }


SCHEDULE_OPTIONS = {
    "warmup": "--warmup",
    "steps": "--steps",
    "lr": "--lr",
    "power": "--decay-power",
    "min_lr": "--min-lr",
}


def check_schedule(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """A resumed run continues the schedule it started with: refuse options that would change it midway."""
    now = schedule_state(cfg)
    changed = [f"{SCHEDULE_OPTIONS[k]} {now[k]} (the run has {saved.get(k)})" for k in now if saved.get(k) != now[k]]
    if changed:
        raise CheckpointError(
            f"{path}: resuming would change the learning-rate schedule: {', '.join(changed)}; "
            "resume with the run's values, or start a new run in another --out"
        )


def check_model(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """A resumed run trains the checkpoint's model: refuse options asking for another one (they were
    ignored before, and run.json then recorded what was not trained)."""
    layers, hidden, heads = SIZES[cfg.model]
    run_size = next((n for n, v in SIZES.items() if v == tuple(saved.get(k) for k in _SIZE_KEYS)), "custom")
    changed = []
    if (layers, hidden, heads) != tuple(saved.get(k) for k in _SIZE_KEYS):
        changed.append(f"--model {cfg.model} (the run's is {run_size})")
    attention = cfg.dropout if cfg.attention_dropout is None else cfg.attention_dropout
    if saved.get("hidden_dropout_prob") != cfg.dropout:
        changed.append(f"--dropout {cfg.dropout} (the run has {saved.get('hidden_dropout_prob')})")
    if saved.get("attention_probs_dropout_prob") != attention:
        changed.append(f"attention dropout {attention} (the run has {saved.get('attention_probs_dropout_prob')})")
    if cfg.max_position_embeddings is not None and saved.get("max_position_embeddings") != cfg.max_position_embeddings:
        changed.append(
            f"--max-position-embeddings {cfg.max_position_embeddings} (the run has {saved.get('max_position_embeddings')})"
        )
    if changed:
        raise CheckpointError(
            f"{path}: resuming would change the model: {', '.join(changed)}; "
            "resume with the run's options, or start a new run in another --out"
        )


_SIZE_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads")

# what makes each step of a run: its batch, its data order, its update
TRAINING_OPTIONS = ("batch_size", "accumulation", "seed", "optimizer", "weight_decay", "grad_clip")


def check_training(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """A resumed run takes the steps it started with: refuse options that would change them midway (a new
    --weight-decay was ignored before, the optimizer's saved state restoring the old one, and run.json then
    recorded what was not trained)."""
    changed = [
        f"--{k.replace('_', '-')} {getattr(cfg, k)} (the run has {saved[k]})"
        for k in TRAINING_OPTIONS
        if k in saved and saved[k] != getattr(cfg, k)
    ]
    if changed:
        raise CheckpointError(
            f"{path}: the run was trained with other options: {', '.join(changed)}; "
            "resume with the run's values, or start a new run in another --out"
        )


def rng_state() -> dict[str, Any]:
    """Every RNG the run draws from, as tensors and plain values (so ``weights_only`` loading takes it)."""
    version, mt, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": [version, list(mt), gauss],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trace:
    """``--trace``: per optimizer step, this process's weight sha256 and the rows it consumed, one JSONL line.

    Hooked onto the optimizer (a step post-hook) and the loader (row ids travel with each batch and
    are taken off it before the model sees it), so the training loop itself is unchanged.
    """

    def __init__(self, out: Path, rank: int, model: torch.nn.Module, optimizer, loader: ShardLoader, step: int):
        self.path = out / f"trace-rank{rank}.jsonl"
        self.model, self.loader, self.step = model, loader, step
        out.mkdir(parents=True, exist_ok=True)
        truncate_log(self.path, step)
        loader.trace_rows = []
        optimizer.register_step_post_hook(lambda *_: self.record())

    def record(self) -> None:
        self.step += 1
        h = hashlib.sha256()
        for t in self.model.state_dict().values():
            h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().data)
        rows = [int(i) for ids in self.loader.trace_rows for i in ids]
        self.loader.trace_rows.clear()
        append_jsonl(self.path, {"step": self.step, "weights_sha256": h.hexdigest(), "rows": rows})


# --- metrics -----------------------------------------------------------------------------

# sums kept on the device between log steps, so the loop never waits for the GPU
M_MLM_LOSS, M_NSP_LOSS, M_MICRO, M_MLM_OK, M_MLM_N, M_NSP_OK, M_NSP_N, M_SEQS, M_TOKENS = range(9)


def accumulate(acc: torch.Tensor, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        labels, nsp_labels = batch["masked_labels"], batch["next_sentence_label"]
        mlm_valid, nsp_valid = labels != IGNORE, nsp_labels != IGNORE
        mlm_ok = (out["mlm_logits"].argmax(-1) == labels) & mlm_valid
        zero = torch.zeros((), device=acc.device)
        nsp_ok = (out["nsp_logits"].argmax(-1) == nsp_labels) & nsp_valid if "nsp_logits" in out else zero
        acc += torch.stack(
            [
                out["mlm_loss"].detach().float(),
                out["nsp_loss"].detach().float() if "nsp_loss" in out else zero,
                torch.ones((), device=acc.device),
                mlm_ok.sum().float(),
                mlm_valid.sum().float(),
                nsp_ok.sum().float(),
                nsp_valid.sum().float() if "nsp_logits" in out else zero,  # no NSP head run: no NSP figures
                torch.full((), float(len(labels)), device=acc.device),  # a fill, not a host-to-device copy
                batch["attention_mask"].sum().float(),
            ]
        )


def summarize(acc: torch.Tensor) -> dict[str, float | None]:
    a = acc.tolist()
    micro = max(a[M_MICRO], 1.0)
    has_nsp = a[M_NSP_N] > 0
    mlm_loss, nsp_loss = a[M_MLM_LOSS] / micro, a[M_NSP_LOSS] / micro
    return {
        "mlm_loss": round(mlm_loss, 6),
        "nsp_loss": round(nsp_loss, 6) if has_nsp else None,
        "loss": round(mlm_loss + nsp_loss, 6),
        "mlm_acc": round(a[M_MLM_OK] / max(a[M_MLM_N], 1.0), 6),
        "nsp_acc": round(a[M_NSP_OK] / a[M_NSP_N], 6) if has_nsp else None,
    }


def all_reduce(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


@torch.no_grad()
def evaluate(
    model: BertForPreTraining, data: ShardDataset, device: torch.device, autocast, max_batches: int, nsp: bool = True
) -> dict:
    """Losses and accuracies over (up to max_batches per process of) the held-out split; ``nsp`` False (a model
    trained without NSP labels, whose NSP head is untrained) skips the NSP head whatever the held-out rows hold."""
    was_training = model.training
    model.eval()
    data.batches_consumed = 0  # every evaluation reads the held-out split from its start
    acc = torch.zeros(9, device=device)
    for i, batch in enumerate(ShardLoader(data)):
        if max_batches and i >= max_batches:
            break
        full = not has_padding(batch)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast():
            out = model(**model_inputs(batch, full, nsp and data.has_nsp))
        accumulate(acc, out, batch)
    model.train(was_training)
    return summarize(all_reduce(acc))


# --- the run -----------------------------------------------------------------------------


class Console:
    """One log line per log step; between them a live progress line when the console is a terminal."""

    def __init__(self, enabled: bool, live: bool):
        self.enabled = enabled
        self.live = enabled and live and sys.stderr.isatty()

    def progress(self, text: str) -> None:
        if self.live:
            print(f"\r{text}\033[K", end="", file=sys.stderr, flush=True)

    def line(self, text: str) -> None:
        if self.enabled:
            if self.live:
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            print(text, flush=True)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or continue) a pretraining run; returns the last train and eval metrics.

    A run that fails before it logs a step leaves no trace: the ``--out`` folder (and any parent)
    it created is removed again, so a bad ``--data`` or an empty build leaves nothing behind. Once a
    step is logged or a checkpoint saved (a run stopped with Ctrl-C included) the folder stays.
    """
    out = Path(cfg.out).absolute()
    created = next((p for p in reversed([out, *out.parents]) if not p.exists()), None)
    if int(os.environ.get("RANK", "0")) != 0:
        created = None  # only rank 0 makes the folder
    try:
        return _train(cfg)
    except BaseException:
        if created is not None and created.is_dir() and not _has_progress(out):
            shutil.rmtree(created, ignore_errors=True)
        raise


def _has_progress(out: Path) -> bool:
    """Whether a run's folder holds a checkpoint or a logged step (what a removal would lose)."""
    log = out / "train.jsonl"
    return out.is_dir() and (bool(checkpoints(out)) or (log.is_file() and log.stat().st_size > 0))


def _train(cfg: TrainConfig) -> dict[str, Any]:
    # --- processes and device ---
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if ddp:
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        rank, world, local_rank = dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
        # the stop flag goes through a CPU group, so agreeing on it never waits for the GPU
        flag_group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    else:
        rank, world, local_rank = 0, 1, 0
        flag_group = None
    if cfg.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    use_bf16 = cfg.dtype == "bf16" or (cfg.dtype == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    master = rank == 0
    console = Console(master, cfg.progress)
    out = Path(cfg.out)
    if master:
        out.mkdir(parents=True, exist_ok=True)

    # --- resume or start ---
    if master:
        for stale in remove_stale_temps(out):
            console.line(f"removed {stale.name}: a temporary file left by a save that was killed")
    found = checkpoints(out) if out.is_dir() else []
    if found and not cfg.resume:
        raise SystemExit(
            f"{out}: holds checkpoints already; pass --resume to continue that run, or choose another --out"
        )
    logs = [name for name in RUN_LOGS if (out / name).exists()] if not found else []
    if logs and not cfg.resume:
        raise SystemExit(
            f"{out}: holds an earlier run's {', '.join(logs)} and no checkpoint; choose another --out, or pass "
            "--resume to start that run over from step 0 (its logs are replaced)"
        )
    if cfg.resume and not found:
        console.line(
            f"{out}: no checkpoint to resume from; starting at step 0"
            + (f" (the earlier {', '.join(logs)} are replaced)" if logs else "")
        )
    ckpt, ckpt_path = resume_point(found, console.line) if cfg.resume and found else (None, None)
    if ckpt is not None:  # before anything is read: the same refusals for a finished run as for an unfinished one
        check_model(ckpt["model_config"], cfg, ckpt_path)
        check_schedule(ckpt["scheduler"], cfg, ckpt_path)
        check_training(ckpt.get("train_config") or {}, cfg, ckpt_path)
    manifest = load_build(cfg.data, expect_vocab_sha256=ckpt["vocab_sha256"] if ckpt else None)
    if ckpt is not None and ckpt["step"] >= cfg.steps:
        console.line(f"{ckpt_path.name}: already at step {ckpt['step']} of --steps {cfg.steps}; nothing to do")
        return {"step": ckpt["step"], "train": ckpt.get("last_train"), "eval": ckpt.get("last_eval")}
    if ckpt is not None and cfg.stop_after is not None and ckpt["step"] >= cfg.stop_after:
        console.line(
            f"{ckpt_path.name}: already at step {ckpt['step']}, at or past --stop-after {cfg.stop_after}; "
            "nothing to do (raise --stop-after, or leave it out to train to --steps)"
        )
        return {"step": ckpt["step"], "train": ckpt.get("last_train"), "eval": ckpt.get("last_eval")}

    # --- data ---
    workers = cfg.workers if cfg.workers is not None else (2 if device.type == "cuda" else 0)
    train_data = ShardDataset(
        cfg.data, split="train", batch_size=cfg.batch_size, seed=cfg.seed, rank=rank, world_size=world,
        shuffle_buffer=cfg.shuffle_buffer, manifest=manifest,
    )  # fmt: skip
    loader = ShardLoader(train_data, num_workers=workers, pin_memory=device.type == "cuda")
    eval_dir, eval_manifest = cfg.data, manifest
    if cfg.eval_data:
        eval_dir, eval_manifest = cfg.eval_data, load_build(cfg.eval_data)
        if eval_manifest["vocab_sha256"] != manifest["vocab_sha256"]:
            raise ManifestError(
                f"{cfg.eval_data}: built with another vocabulary than {cfg.data}; "
                "--eval-data needs a build made with the same vocabulary file"
            )
        ours, theirs = manifest["tokenizer"], eval_manifest["tokenizer"]
        changed = [
            f"{k} {theirs.get(k)} ({cfg.data} has {ours.get(k)})" for k in ours | theirs if ours.get(k) != theirs.get(k)
        ]
        if changed:  # the same file read otherwise (--no-lower-case): ids of other text
            raise ManifestError(
                f"{cfg.eval_data}: the same vocabulary, but tokenized otherwise: {', '.join(changed)}; "
                "--eval-data needs a build made with the same tokenizer options (--lower-case/--no-lower-case)"
            )
    train_rows = sum(e["rows"] for e in manifest["shards"] if e.get("split", "train") == "train")
    if cfg.batch_size * world > train_rows:
        console.line(
            f"warning: --batch-size {cfg.batch_size} x {world} process(es) exceeds the build's {train_rows} training "
            "rows: rows repeat inside a batch (and memory grows with the batch, not the data)"
        )
    heldout_rows = sum(e["rows"] for e in eval_manifest["shards"] if e.get("split") == VALIDATION)
    eval_data = None
    if heldout_rows >= world:
        eval_data = ShardDataset(
            eval_dir, split=VALIDATION, batch_size=cfg.batch_size, seed=cfg.seed, rank=rank, world_size=world,
            shuffle=False, epochs=1, drop_last=False, manifest=eval_manifest,
        )  # fmt: skip
    elif heldout_rows:
        console.line(f"{eval_dir}: {heldout_rows} held-out row(s) for {world} processes: evaluation is skipped")
    else:
        console.line(f"no held-out shards in {eval_dir}: evaluation is skipped")

    # --- model and optimizer ---
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    if ckpt is not None:
        mcfg = BertConfig(**ckpt["model_config"])
    else:
        mcfg = BertConfig.from_size(
            cfg.model,
            vocab_size=int(manifest["tokenizer"]["vocab_size"]),
            max_position_embeddings=cfg.max_position_embeddings or max(512, round_up_pow2(train_data.max_seq_length)),
            hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout if cfg.attention_dropout is None else cfg.attention_dropout,
            pad_token_id=int(manifest["tokenizer"].get("pad_id", 0)),
        )
    if mcfg.max_position_embeddings < train_data.max_seq_length:
        raise SystemExit(
            f"{cfg.data}: rows of up to {train_data.max_seq_length} tokens need a model with as many positions; "
            f"this one has {mcfg.max_position_embeddings}: pass --max-position-embeddings {train_data.max_seq_length} "
            "or more (a new run), or train on a build with a shorter --max-seq-length"
        )
    if eval_data is not None and eval_data.max_seq_length > mcfg.max_position_embeddings:
        raise ManifestError(
            f"{eval_dir}: rows of up to {eval_data.max_seq_length} tokens, the model has "
            f"{mcfg.max_position_embeddings} positions; evaluate on a build of at most that length"
        )
    raw = BertForPreTraining(mcfg).to(device)
    has_nsp = train_data.has_nsp
    if not has_nsp:  # MLM only: the NSP head is never run, so it has no gradient (DDP must not wait for one)
        for p in (*raw.pooler.parameters(), *raw.nsp.parameters()):
            p.requires_grad_(False)
    optimizer = make_optimizer(
        raw, cfg.optimizer, lr=cfg.peak_lr, weight_decay=cfg.weight_decay, fused=fused_adamw(device)
    )
    acc = torch.zeros(9, device=device)
    step = 0
    torch.manual_seed(cfg.seed + rank)  # dropout differs across ranks, as it should
    if ckpt is not None:
        raw.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        try:
            loader.load_state_dict(ckpt["data"])
        except ValueError as exc:  # another batch size, seed, world size, workers or data than the run's
            raise CheckpointError(f"{ckpt_path}: {exc}") from None
        acc.copy_(ckpt["metrics"].to(device))
        step = ckpt["step"]
        rngs = ckpt["rng"]
        if isinstance(rngs, list) and len(rngs) != world:
            raise CheckpointError(f"{ckpt_path}: saved by {len(rngs)} processes, resumed with {world}; use the same")
        set_rng_state(rngs[rank] if isinstance(rngs, list) else rngs)
        console.line(f"resumed {ckpt_path} at step {step}")
    if cfg.trace:
        Trace(out, rank, raw, optimizer, loader, step)
    model: torch.nn.Module = raw
    if cfg.compile:
        model = compile_model(model)
    if ddp:
        model = DDP(model, device_ids=[local_rank] if device.type == "cuda" else None)

    # --- logging ---
    log_path = out / "train.jsonl"
    eval_path = out / "eval.jsonl"
    if master:
        for p in (log_path, eval_path):
            truncate_log(p, step, console.line)  # drop lines a crashed run wrote after its last checkpoint
        run_info = {"train_config": dataclasses.asdict(cfg), "model_config": mcfg.to_dict(), "world_size": world,
                    "params": raw.num_params(), "data": str(cfg.data), "build_config": manifest["config"]}  # fmt: skip
        atomic_write_bytes(out / "run.json", json.dumps(run_info, indent=1).encode("utf-8"))
    tb = make_tensorboard(out) if master and cfg.tensorboard else None
    console.line(
        f"BERT-{cfg.model} {raw.num_params() / 1e6:.1f}M params on {device} x{world}"
        f"{' bf16' if use_bf16 else ''}; batch {cfg.batch_size}x{cfg.accumulation}x{world}; steps {step}->{cfg.steps}"
    )
    if not has_nsp:
        console.line(
            f"MLM only: the build ({manifest['config']['next_sentence']}) has no NSP/SOP labels; "
            "the NSP head is neither run nor trained"
        )
    if train_data.segments:
        console.line("packed rows: attention kept inside each document (doc_ids), positions restart per document")

    # --- the loop ---
    end = min(cfg.steps, cfg.stop_after or cfg.steps)
    batches = iter(loader)
    last_train: dict | None = ckpt.get("last_train") if ckpt else None
    last_eval: dict | None = ckpt.get("last_eval") if ckpt else None
    t0 = time.time()
    first_step_started = t0 if cfg.compile else None

    def save() -> Path | None:
        rngs = gather_objects(rng_state())
        if not master:
            return None
        ckpt = {
            "step": step,
            "model": raw.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule_state(cfg),
            "model_config": mcfg.to_dict(),
            "train_config": dataclasses.asdict(cfg),
            "data": loader.state_dict(),
            "rng": rngs,
            "metrics": acc.cpu(),
            "vocab_sha256": manifest["vocab_sha256"],
            "tokenizer": manifest["tokenizer"],
            "build_config": manifest["config"],
            "data_dir": str(Path(cfg.data).resolve()),
            "last_train": last_train,
            "last_eval": last_eval,
        }
        path = save_checkpoint(out, ckpt, cfg.keep_checkpoints)
        console.line(f"saved {path}")
        return path

    # closing: an error leaves no DataLoader worker behind to block the process's exit
    with StopOnSignal(ddp, flag_group, console) as stop, contextlib.closing(batches):
        while step < end:
            lr = lr_at(
                step, lr=cfg.peak_lr, warmup=cfg.warmup_steps, steps=cfg.steps, power=cfg.decay_power, min_lr=cfg.min_lr
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            for micro in range(cfg.accumulation):
                host = next(batches)
                full = not has_padding(host)  # decided on the host copy, so the step never waits for the device
                batch = {k: v.to(device, non_blocking=True) for k, v in host.items()}
                # DDP all-reduces gradients on the last micro-batch only
                last = micro == cfg.accumulation - 1
                with contextlib.nullcontext() if last or not ddp else model.no_sync():
                    with autocast():
                        outputs = model(**model_inputs(batch, full, has_nsp))
                    (outputs["loss"] / cfg.accumulation).backward()
                accumulate(acc, outputs, batch)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if first_step_started is not None:  # the first step of a compiled model includes compiling its graph
                console.line(f"step {step} took {time.time() - first_step_started:.1f}s (compiling the first graph)")
                first_step_started = None

            # not at --stop-after: the open interval's sums go into the checkpoint, so the resumed run logs what
            # the uninterrupted one would
            if step % cfg.log_every == 0 or step == cfg.steps:
                stats = all_reduce(acc.clone())
                dt = time.time() - t0
                seqs, tokens = stats[M_SEQS].item(), stats[M_TOKENS].item()
                last_train = {
                    "step": step,
                    **summarize(stats),
                    "lr": lr,
                    "seq_per_s": round(seqs / dt, 2),
                    "tokens_per_s": round(tokens / dt, 1),
                }
                if device.type == "cuda":
                    last_train["mfu"] = round(mfu(mcfg, stats, dt, world, device, use_bf16), 4)
                acc.zero_()
                t0 = time.time()
                if master:
                    append_jsonl(log_path, last_train)
                    log_tensorboard(tb, "train", last_train)
                    console.line(format_metrics(last_train, cfg.steps))
            else:
                console.progress(
                    f"step {step}/{cfg.steps} lr {lr:.2e} ({(time.time() - t0) / max(step % cfg.log_every, 1):.2f}s/step)"
                )

            if eval_data is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps):
                last_eval = {
                    "step": step,
                    **evaluate(raw, eval_data, device, autocast, eval_cap(cfg, step, last_eval), has_nsp),
                }
                if master:
                    append_jsonl(eval_path, last_eval)
                    log_tensorboard(tb, "eval", last_eval)
                    console.line("eval " + format_metrics(last_eval, cfg.steps))
                t0 = time.time()

            saved = (cfg.save_every and step % cfg.save_every == 0) or step == end
            path = save() if saved else None
            if saved:
                t0 = time.time()
            if stop.agreed() and step < end:  # a step boundary, the same one on every rank
                raise TrainingInterrupted(stop.signum, step, path if saved else save())

    if tb is not None:
        tb.close()
    if ddp:
        dist.barrier()
        dist.destroy_process_group()
    return {"step": step, "train": last_train, "eval": last_eval}


# --- helpers ---------------------------------------------------------------------------------


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM at a step boundary, its checkpoint saved (``path``: on rank 0)."""

    def __init__(self, signum: int, step: int, path: Path | None):
        super().__init__(f"stopped at step {step} by {signal.Signals(signum).name}")
        self.signum, self.step, self.path = signum, step, path


class StopOnSignal:
    """Turns the first SIGINT or SIGTERM into a request to stop at the next step boundary.

    The loop asks ``agreed()`` once per step. In one process that is the request itself; under DDP
    every rank posts its flag in an asynchronous all-reduce (MAX) and reads the previous step's
    result, so all ranks stop after the same step, one step after the first of them got the
    signal, and nothing waits on the flag. A repeat of the signal within ``GRACE_S`` counts as the
    same request (torchrun forwards the Ctrl-C that its workers already got from the terminal); a
    later one stops at once (KeyboardInterrupt, no checkpoint). DataLoader workers ignore both
    signals (``ignore_stop_signals``), so a batch being loaded is not lost with them.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    GRACE_S = 3.0

    def __init__(self, ddp: bool, group: Any, console: Console):
        self.ddp, self.group, self.console = ddp, group, console
        self.signum: int | None = None
        self._requested: int = 0
        self._at = 0.0
        self._pending: tuple[torch.Tensor, Any] | None = None
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._saved = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for s, handler in self._saved.items():
            signal.signal(s, handler)
        if exc_type is None and self._pending is not None:
            self._pending[1].wait()  # every rank posted the same reductions: complete the last one

    def _handle(self, signum: int, frame: Any) -> None:
        if not self._requested:
            self._requested, self._at = signum, time.monotonic()
            self.console.line(
                f"{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
                "(press Ctrl-C again to stop at once, without one)"
            )
        elif time.monotonic() - self._at > self.GRACE_S:
            raise KeyboardInterrupt

    def agreed(self) -> bool:
        """Whether to stop now (call once per step on every rank)."""
        if not self.ddp:
            self.signum = self._requested or None
            return self.signum is not None
        stop = False
        if self._pending is not None:
            flag, work = self._pending
            work.wait()
            signum = int(flag.item())
            if signum:
                self.signum, stop = signum, True
        flag = torch.tensor([self._requested], dtype=torch.int64)
        self._pending = (flag, dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group, async_op=True))
        return stop


def has_padding(batch: dict[str, torch.Tensor]) -> bool:
    """Whether any row of a (host) batch is padded; a length bin at its top length often has none."""
    return not bool(batch["attention_mask"].all())


def model_inputs(batch: dict[str, torch.Tensor], full: bool, nsp: bool = True) -> dict[str, Any]:
    """The batch as the model's arguments; ``full`` (no row padded) drops the attention mask.

    Without a mask ``scaled_dot_product_attention`` may take its fastest (flash) kernel, and the
    result is the same: a mask of all True changes nothing. ``nsp`` False (a build without NSP/SOP
    labels): the model skips its NSP head.
    """
    return {**batch, "attention_mask": None if full else batch["attention_mask"], "nsp": nsp}


def fused_adamw(device: torch.device) -> bool:
    """torch's fused AdamW runs on CUDA and CPU; on CPU it is several times faster than the default loop."""
    return device.type in ("cuda", "cpu")


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile`` with static shapes: one graph per (T, P, mask or none) the length bins produce."""
    # bins x {masked, mask-free} x {train, eval} graphs: raise dynamo's limit so none falls back to eager
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(model, dynamic=False)


def eval_cap(cfg: TrainConfig, step: int, last_eval: dict | None) -> int:
    """Held-out batches for the evaluation at ``step``: --eval-batches, and (unless that is 0, all)
    no more than the training micro-batches since the previous evaluation. A forward pass costs
    about a third of a training step, so an evaluation never takes longer than the steps before it."""
    if not cfg.eval_batches:
        return 0
    since = (step - (last_eval["step"] if last_eval else 0)) * cfg.accumulation
    return max(1, min(cfg.eval_batches, since))


def round_up_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def gather_objects(obj: Any) -> Any:
    """Every rank's ``obj`` as a list on all ranks (each rank keeps its own dropout RNG)."""
    if not dist.is_initialized():
        return obj
    objs: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(objs, obj)
    return objs


def peak_flops(device: torch.device, bf16: bool) -> float | None:
    """Dense peak FLOP/s of one GPU in the step's dtype (bf16, or fp32 as TF32); None if unknown."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak[0 if bf16 else 1] for key, peak in PEAK_FLOPS.items() if key in name), None)


def mfu(mcfg: BertConfig, stats: torch.Tensor, dt: float, world: int, device: torch.device, bf16: bool) -> float:
    """Model FLOPs utilisation: achieved matmul FLOP/s over the GPUs' dense peak in the step's dtype."""
    seqs = stats[M_SEQS].item()
    peak = peak_flops(device, bf16)
    if not seqs or not peak:
        return math.nan
    seq_len = stats[M_TOKENS].item() / seqs
    preds = stats[M_MLM_N].item() / seqs
    return flops_per_sequence(mcfg, round(seq_len), round(preds)) * seqs / dt / (peak * world)


def format_metrics(m: dict[str, Any], total: int) -> str:
    def f(key: str, fmt: str) -> str:
        return "-" if m.get(key) is None else format(m[key], fmt)

    text = f"step {m['step']}/{total} loss {f('loss', '.4f')} mlm {f('mlm_loss', '.4f')} nsp {f('nsp_loss', '.4f')} mlm_acc {f('mlm_acc', '.3f')} nsp_acc {f('nsp_acc', '.3f')}"
    if "lr" in m:
        text += f" lr {m['lr']:.2e} {m['seq_per_s']:.0f} seq/s {m['tokens_per_s']:.0f} tok/s"
    return text


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one line and fsync it: a line the log shows is on disk (a kill can cut only the last one)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_log(path: Path, step: int, say=print) -> None:
    """Keep the log's lines up to ``step`` (a resumed run rewrites what came after its checkpoint).

    A last line cut short by a killed run is dropped, and ``say`` tells so once; so is a line that is
    no step's record (an edited log: a list, a string ``step``), which a resumed run could not order.
    The log is rewritten atomically.
    """
    if not path.exists():
        return
    data = path.read_bytes()
    lines = data.decode("utf-8", errors="replace").split("\n")
    keep, partial, other = [], 0, 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            partial += 1
            continue
        at = record.get("step") if isinstance(record, dict) else None
        if not isinstance(at, (int, float)) or isinstance(at, bool):
            other += 1
        elif at <= step:
            keep.append(line)
    if partial:
        say(f"{path}: dropped {partial} partial line(s) a killed run left behind")
    if other:
        say(f"{path}: dropped {other} line(s) that are not a step's record (no number under 'step')")
    new = "".join(line + "\n" for line in keep).encode("utf-8")
    if new != data:
        atomic_write_bytes(path, new)


def make_tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard is not installed (pip install tensorboard); logging to JSONL only", file=sys.stderr)
        return None
    return SummaryWriter(str(out / "tensorboard"))


def log_tensorboard(tb, prefix: str, m: dict[str, Any]) -> None:
    if tb is None:
        return
    for k, v in m.items():
        if k != "step" and isinstance(v, (int, float)):
            tb.add_scalar(f"{prefix}/{k}", v, m["step"])
