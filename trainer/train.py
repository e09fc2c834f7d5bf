"""Pretrain BERT on a corpusgen build: one process, or many under torchrun (DDP).

Read top to bottom: config → setup (DDP, device, data, model, optimizer) → resume → loop
(accumulate, clip, step, log, evaluate, checkpoint). A checkpoint is one dict; resuming it
continues the run bit for bit on CPU: the data stream, dropout RNG, optimizer and metric
accumulators all come back as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from corpusgen.partition import VALIDATION
from trainer.data import ShardDataset, ShardLoader, load_build
from trainer.model import IGNORE, SIZES, BertConfig, BertForPreTraining, flops_per_sequence
from trainer.optim import lr_at, make_optimizer

CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")
DEFAULT_LR = {"tiny": 1e-3, "mini": 1e-3, "small": 5e-4, "base": 1e-4, "large": 1e-4}
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense, per GPU


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
    eval_batches: int = 50
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

    def __post_init__(self) -> None:
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
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """A ``.toml`` / ``.json`` file (top-level keys or a ``[train]`` table), then ``overrides``."""
        import tomllib

        path = Path(path)
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        data = data.get("train", data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown train option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{**data, **overrides})

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.model]

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else max(1, self.steps // 100)


# --- checkpoints --------------------------------------------------------------------------


def checkpoints(out: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in out.glob("ckpt-*.pt") if (m := CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(out: Path, ckpt: dict[str, Any], keep: int) -> Path:
    path = out / f"ckpt-{ckpt['step']:07d}.pt"
    tmp = out / f".{path.name}.tmp-{os.getpid()}"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # a reader sees the old set or the new file, never half of one
    for old in checkpoints(out)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- metrics -----------------------------------------------------------------------------

# sums kept on the device between log steps, so the loop never waits for the GPU
M_MLM_LOSS, M_NSP_LOSS, M_MICRO, M_MLM_OK, M_MLM_N, M_NSP_OK, M_NSP_N, M_SEQS, M_TOKENS = range(9)


def accumulate(acc: torch.Tensor, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        labels, nsp_labels = batch["masked_labels"], batch["next_sentence_label"]
        mlm_valid, nsp_valid = labels != IGNORE, nsp_labels != IGNORE
        mlm_ok = (out["mlm_logits"].argmax(-1) == labels) & mlm_valid
        nsp_ok = (out["nsp_logits"].argmax(-1) == nsp_labels) & nsp_valid
        acc += torch.stack(
            [
                out["mlm_loss"].detach().float(),
                out["nsp_loss"].detach().float(),
                torch.ones((), device=acc.device),
                mlm_ok.sum().float(),
                mlm_valid.sum().float(),
                nsp_ok.sum().float(),
                nsp_valid.sum().float(),
                torch.tensor(float(len(labels)), device=acc.device),
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
def evaluate(model: BertForPreTraining, data: ShardDataset, device: torch.device, autocast, max_batches: int) -> dict:
    """Losses and accuracies over (up to max_batches per process of) the held-out split."""
    was_training = model.training
    model.eval()
    data.batches_consumed = 0  # every evaluation reads the held-out split from its start
    acc = torch.zeros(9, device=device)
    for i, batch in enumerate(ShardLoader(data)):
        if max_batches and i >= max_batches:
            break
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast():
            out = model(**batch)
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
    """Run (or continue) a pretraining run; returns the last train and eval metrics."""
    # --- processes and device ---
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if ddp:
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        rank, world, local_rank = dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    else:
        rank, world, local_rank = 0, 1, 0
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
    found = checkpoints(out) if out.is_dir() else []
    if found and not cfg.resume:
        raise SystemExit(
            f"{out}: holds checkpoints already; pass --resume to continue that run, or choose another --out"
        )
    ckpt = load_checkpoint(found[-1]) if cfg.resume and found else None
    if ckpt is not None and ckpt["step"] >= cfg.steps:
        console.line(f"{found[-1].name}: already at step {ckpt['step']} of --steps {cfg.steps}; nothing to do")
        return {"step": ckpt["step"], "train": ckpt.get("last_train"), "eval": ckpt.get("last_eval")}

    # --- data ---
    manifest = load_build(cfg.data, expect_vocab_sha256=ckpt["vocab_sha256"] if ckpt else None)
    workers = cfg.workers if cfg.workers is not None else (2 if device.type == "cuda" else 0)
    train_data = ShardDataset(
        cfg.data, split="train", batch_size=cfg.batch_size, seed=cfg.seed, rank=rank, world_size=world,
        shuffle_buffer=cfg.shuffle_buffer, manifest=manifest,
    )  # fmt: skip
    loader = ShardLoader(train_data, num_workers=workers, pin_memory=device.type == "cuda")
    heldout_rows = sum(e["rows"] for e in manifest["shards"] if e.get("split") == VALIDATION)
    eval_data = None
    if heldout_rows >= world:
        eval_data = ShardDataset(
            cfg.data, split=VALIDATION, batch_size=cfg.batch_size, seed=cfg.seed, rank=rank, world_size=world,
            shuffle=False, epochs=1, drop_last=False, manifest=manifest,
        )  # fmt: skip
    else:
        console.line("no held-out shards in the build: evaluation is skipped")

    # --- model and optimizer ---
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    if ckpt is not None:
        mcfg = BertConfig(**ckpt["model_config"])
    else:
        mcfg = BertConfig.from_size(
            cfg.model,
            vocab_size=int(manifest["tokenizer"]["vocab_size"]),
            max_position_embeddings=max(512, round_up_pow2(train_data.max_seq_length)),
            hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout,
            pad_token_id=int(manifest["tokenizer"].get("pad_id", 0)),
        )
    raw = BertForPreTraining(mcfg).to(device)
    optimizer = make_optimizer(
        raw, cfg.optimizer, lr=cfg.peak_lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda"
    )
    acc = torch.zeros(9, device=device)
    step = 0
    torch.manual_seed(cfg.seed + rank)  # dropout differs across ranks, as it should
    if ckpt is not None:
        raw.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        loader.load_state_dict(ckpt["data"])
        acc.copy_(ckpt["metrics"].to(device))
        step = ckpt["step"]
        set_rng_state(ckpt["rng"][rank] if isinstance(ckpt["rng"], list) and rank < len(ckpt["rng"]) else ckpt["rng"])
        console.line(f"resumed {found[-1]} at step {step}")
    model: torch.nn.Module = raw
    if cfg.compile:
        # one graph per (T, P) padded shape: raise the limit so all bins stay compiled
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        model = torch.compile(model)
    if ddp:
        model = DDP(model, device_ids=[local_rank] if device.type == "cuda" else None)

    # --- logging ---
    log_path = out / "train.jsonl"
    eval_path = out / "eval.jsonl"
    if master:
        for p in (log_path, eval_path):
            truncate_log(p, step)  # drop lines a crashed run wrote after its last checkpoint
        run_info = {"train_config": dataclasses.asdict(cfg), "model_config": mcfg.to_dict(), "world_size": world,
                    "params": raw.num_params(), "data": str(cfg.data), "build_config": manifest["config"]}  # fmt: skip
        (out / "run.json").write_text(json.dumps(run_info, indent=1), encoding="utf-8")
    tb = make_tensorboard(out) if master and cfg.tensorboard else None
    console.line(
        f"BERT-{cfg.model} {raw.num_params() / 1e6:.1f}M params on {device} x{world}"
        f"{' bf16' if use_bf16 else ''}; batch {cfg.batch_size}x{cfg.accumulation}x{world}; steps {step}->{cfg.steps}"
    )

    # --- the loop ---
    end = min(cfg.steps, cfg.stop_after or cfg.steps)
    batches = iter(loader)
    last_train: dict | None = ckpt.get("last_train") if ckpt else None
    last_eval: dict | None = ckpt.get("last_eval") if ckpt else None
    t0 = time.time()
    while step < end:
        lr = lr_at(
            step, lr=cfg.peak_lr, warmup=cfg.warmup_steps, steps=cfg.steps, power=cfg.decay_power, min_lr=cfg.min_lr
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        for micro in range(cfg.accumulation):
            batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
            if ddp:
                # all-reduce gradients only on the last micro-batch (no_sync() would need a nested context)
                model.require_backward_grad_sync = micro == cfg.accumulation - 1
            with autocast():
                outputs = model(**batch)
            (outputs["loss"] / cfg.accumulation).backward()
            accumulate(acc, outputs, batch)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

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
                last_train["mfu"] = round(mfu(mcfg, stats, dt, world, device), 4)
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
            last_eval = {"step": step, **evaluate(raw, eval_data, device, autocast, cfg.eval_batches)}
            if master:
                append_jsonl(eval_path, last_eval)
                log_tensorboard(tb, "eval", last_eval)
                console.line("eval " + format_metrics(last_eval, cfg.steps))
            t0 = time.time()

        if (cfg.save_every and step % cfg.save_every == 0) or step == end:
            rngs = gather_objects(rng_state())
            if master:
                ckpt = {
                    "step": step,
                    "model": raw.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": {
                        "warmup": cfg.warmup_steps,
                        "steps": cfg.steps,
                        "lr": cfg.peak_lr,
                        "power": cfg.decay_power,
                        "min_lr": cfg.min_lr,
                    },
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
            t0 = time.time()

    if tb is not None:
        tb.close()
    if ddp:
        dist.barrier()
        dist.destroy_process_group()
    return {"step": step, "train": last_train, "eval": last_eval}


# --- helpers ---------------------------------------------------------------------------------


def round_up_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def gather_objects(obj: Any) -> Any:
    """Every rank's ``obj`` as a list on all ranks (each rank keeps its own dropout RNG)."""
    if not dist.is_initialized():
        return obj
    objs: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(objs, obj)
    return objs


def mfu(mcfg: BertConfig, stats: torch.Tensor, dt: float, world: int, device: torch.device) -> float:
    """Model FLOPs utilisation: achieved matmul FLOP/s over the GPUs' dense bf16 peak."""
    seqs = stats[M_SEQS].item()
    if not seqs:
        return 0.0
    seq_len = stats[M_TOKENS].item() / seqs
    preds = stats[M_MLM_N].item() / seqs
    flops = flops_per_sequence(mcfg, round(seq_len), round(preds)) * seqs / dt
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    return flops / (peak * world) if peak else math.nan


def format_metrics(m: dict[str, Any], total: int) -> str:
    def f(key: str, fmt: str) -> str:
        return "-" if m.get(key) is None else format(m[key], fmt)

    text = f"step {m['step']}/{total} loss {f('loss', '.4f')} mlm {f('mlm_loss', '.4f')} nsp {f('nsp_loss', '.4f')} mlm_acc {f('mlm_acc', '.3f')} nsp_acc {f('nsp_acc', '.3f')}"
    if "lr" in m:
        text += f" lr {m['lr']:.2e} {m['seq_per_s']:.0f} seq/s {m['tokens_per_s']:.0f} tok/s"
    return text


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def truncate_log(path: Path, step: int) -> None:
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    keep = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(keep) != len(lines):
        path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")


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
