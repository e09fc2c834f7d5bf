"""Training-step benchmark: the trainer's step, and ``transformers.BertForPreTraining`` beside it.

``measure_train`` runs the step the way ``train.py`` does (mask dropped for unpadded batches,
fused AdamW, gradient clipping, optional ``torch.compile``) and reports sequences/s, tokens/s,
the step split into data wait / forward / backward / optimizer, peak memory and, on CUDA, MFU.
With ``against_hf`` the Hugging Face model of the same config gets the same batches and the same
optimizer, one step after each of ours, so both see the same machine load (this matters on a
shared CPU). Batches are synthetic (full-length rows, like a length bin at its top length) or,
with ``data``, read from a build by the trainer's loader, which makes the data wait real.

Timing: phase boundaries are CUDA events on a GPU (the step never waits for the host; one sync
at the end) and ``perf_counter`` on CPU. Figures are medians over the steps (robust to other
processes on a shared machine). The first ``warmup`` steps (which compile, with ``compile``) are
left out and what they took beyond steady steps is reported as ``compile_s``.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import time
from collections.abc import Iterator
from typing import Any

import torch

from trainer.data import IGNORE, ShardDataset, ShardLoader, load_build, round_up
from trainer.model import BertConfig, BertForPreTraining, flops_per_sequence
from trainer.optim import make_optimizer
from trainer.train import compile_model, fused_adamw, has_padding, model_inputs, peak_flops

PHASES = ("data_wait", "forward", "backward", "optimizer")


def synthetic_batches(
    vocab_size: int, batch_size: int, seq_len: int, predictions: int, seed: int = 0
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless random batches in the loader's format (trainer/data.py): unpadded rows of ``seq_len``."""
    g = torch.Generator().manual_seed(seed)
    B, T, P = batch_size, seq_len, round_up(predictions)
    while True:
        ids = torch.randint(5, vocab_size, (B, T), generator=g)  # ids 0-4 are [PAD] [UNK] [CLS] [SEP] [MASK]
        types = (torch.arange(T) >= T // 2).long().expand(B, T).contiguous()
        # `predictions` distinct ascending positions in 1..T-2 per row, padded to P like the loader does
        pos = torch.rand(B, T - 2, generator=g).argsort(dim=1)[:, :predictions].sort(dim=1).values + 1
        valid = torch.arange(P) < predictions
        yield {
            "input_ids": ids,
            "token_type_ids": types,
            "attention_mask": torch.ones(B, T, dtype=torch.bool),
            "masked_positions": torch.cat([pos, torch.zeros(B, P - predictions, dtype=torch.long)], 1),
            "masked_labels": torch.where(valid, torch.randint(5, vocab_size, (B, P), generator=g), IGNORE),
            "masked_valid": valid.expand(B, P).contiguous(),
            "next_sentence_label": torch.randint(0, 2, (B,), generator=g),
        }


def hf_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A loader batch as ``transformers.BertForPreTraining`` takes it: labels (B, T), -100 off the predictions."""
    labels = torch.full_like(batch["input_ids"], IGNORE)
    # padded predictions sit at position 0 ([CLS], never predicted) with label -100: scattering them is harmless
    labels.scatter_(1, batch["masked_positions"], batch["masked_labels"])
    return {
        "input_ids": batch["input_ids"],
        "token_type_ids": batch["token_type_ids"],
        "attention_mask": batch["attention_mask"].long(),
        "labels": labels,
        "next_sentence_label": batch["next_sentence_label"],
    }


def hf_model(mcfg: BertConfig) -> torch.nn.Module:
    """``transformers.BertForPreTraining`` with our config (trainer/export.py's mapping), SDPA attention."""
    import transformers

    from trainer.export import hf_config

    config = transformers.BertConfig(**{k: v for k, v in hf_config(mcfg).items() if k != "torch_dtype"})
    config._attn_implementation = "sdpa"
    return transformers.BertForPreTraining(config)


class _Clock:
    """Phase boundaries: CUDA events on a GPU (recorded in stream order, no host sync), else perf_counter."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, a, b) -> float:
        return a.elapsed_time(b) / 1e3 if self.cuda else b - a


def _peak_mb(device: torch.device, allocated_before: int) -> float:
    """CUDA: most memory allocated since the last reset, above what was allocated before; CPU: peak RSS."""
    if device.type == "cuda":
        return round((torch.cuda.max_memory_allocated(device) - allocated_before) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, 1)  # KiB on Linux


def measure_train(
    *,
    model: str = "tiny",
    batch_size: int = 64,
    seq_len: int = 128,
    predictions: int = 20,
    steps: int = 10,
    warmup: int = 2,
    device: str = "auto",
    dtype: str = "auto",
    compile: bool = False,
    against_hf: bool = False,
    optimizer: str = "adamw",
    data: str | None = None,
    workers: int = 0,
    vocab_size: int = 30522,
    seed: int = 0,
) -> dict[str, Any]:
    """Figures of ``steps`` training steps after ``warmup`` (see the module docstring)."""
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    bf16 = dtype == "bf16" or (dtype == "auto" and dev.type == "cuda")
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    if data is not None:
        manifest = load_build(data)
        vocab_size = int(manifest["tokenizer"]["vocab_size"])
        dataset = ShardDataset(data, split="train", batch_size=batch_size, seed=seed, manifest=manifest)
        dataset.num_workers = workers
        batches = iter(ShardLoader(dataset, num_workers=workers, pin_memory=dev.type == "cuda"))
        seq_len = dataset.max_seq_length
    else:
        batches = synthetic_batches(vocab_size, batch_size, seq_len, predictions, seed)
    torch.manual_seed(seed)
    mcfg = BertConfig.from_size(model, vocab_size=vocab_size, max_position_embeddings=max(512, seq_len))
    clock = _Clock(dev)

    def build(make):
        net = make().to(dev).train()
        opt = make_optimizer(net, optimizer, lr=1e-4, weight_decay=0.01, fused=fused_adamw(dev))
        return net, (compile_model(net) if compile else net), opt

    def step(net, fwd, opt, inputs) -> list:
        """One training step; returns its phase boundaries (after the inputs are on the device)."""
        marks = [clock.mark()]
        with autocast():
            out = fwd(**inputs)
        loss = out["loss"]
        marks.append(clock.mark())
        loss.backward()
        marks.append(clock.mark())
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        marks.append(clock.mark())
        return marks

    def next_batch():
        start = clock.mark()
        host = next(batches)
        batch = {k: v.to(dev, non_blocking=True) for k, v in host.items()}
        return start, batch, not has_padding(host), int(host["attention_mask"].sum())

    before = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else 0
    ours = build(lambda: BertForPreTraining(mcfg))
    hf = None
    t0 = time.perf_counter()
    for _ in range(warmup):
        _, batch, full, _ = next_batch()
        step(*ours, model_inputs(batch, full))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    compile_s = time.perf_counter() - t0
    peak_mb = _peak_mb(dev, before)
    if against_hf:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        hf_before = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else 0
        hf = build(lambda: _HFLosses(hf_model(mcfg)))
        t0 = time.perf_counter()
        for _ in range(warmup):
            batch = next_batch()[1]
            step(*hf, hf_inputs(batch))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        hf_compile_s = time.perf_counter() - t0
        hf_peak_mb = _peak_mb(dev, hf_before) if dev.type == "cuda" else None

    records, hf_records, tokens, flops, hf_flops = [], [], 0, 0.0, 0.0
    for _ in range(steps):
        start, batch, full, real = next_batch()
        tokens += real
        B, T = batch["input_ids"].shape
        P = batch["masked_positions"].shape[1]
        flops += B * flops_per_sequence(mcfg, T, P)
        hf_flops += B * flops_per_sequence(mcfg, T)  # transformers runs its MLM head at every position
        records.append((start, step(*ours, model_inputs(batch, full))))
        if hf is not None:
            hf_marks = step(*hf, hf_inputs(batch))
            hf_records.append((records[-1][0], [records[-1][1][0], *hf_marks]))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)

    def figures(recs: list, flops: float) -> dict[str, Any]:
        # recs: (start, [on device, after forward, after backward, after optimizer]); HF's list has one more
        # mark in front, ours' "on device" (the batch they share), so both count the same data wait
        split = {k: [] for k in PHASES}
        for start, m in recs:
            split["data_wait"].append(clock.seconds(start, m[0]))
            split["forward"].append(clock.seconds(m[-4], m[-3]))
            split["backward"].append(clock.seconds(m[-3], m[-2]))
            split["optimizer"].append(clock.seconds(m[-2], m[-1]))
        step_s = [sum(v) for v in zip(*split.values(), strict=True)]
        # medians: a step that another process on a shared machine slowed down does not move them
        median = statistics.median(step_s)
        seq_per_s = batch_size / median
        peak = peak_flops(dev, bf16)
        return {
            "seq_per_s": round(seq_per_s, 2),
            "tokens_per_s": round(tokens / len(step_s) / median, 1),
            "step_ms": round(1e3 * median, 2),
            "split_ms": {k: round(1e3 * statistics.median(v), 2) for k, v in split.items()},
            "data_wait_fraction": round(sum(split["data_wait"]) / sum(step_s), 4),
            "mfu": round(flops / len(step_s) / median / peak, 4) if peak else None,
        }

    result: dict[str, Any] = {
        "model": model,
        "params": sum(p.numel() for p in ours[0].parameters()),
        "batch_size": batch_size,
        "seq_len": seq_len,
        "predictions": P,
        "device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "dtype": "bf16" if bf16 else "fp32",
        "threads": torch.get_num_threads(),
        "compile": compile,
        "steps": steps,
        **figures(records, flops),
        "peak_mem_mb": peak_mb,
        "peak_mem_kind": "cuda max allocated" if dev.type == "cuda" else "process peak RSS",
    }
    # what the warm-up steps took beyond steady steps: compiling (and first-touch allocation)
    result["compile_s"] = round(max(0.0, compile_s - warmup * result["step_ms"] / 1e3), 2)
    if hf is not None:
        theirs = figures(hf_records, hf_flops)
        result.update({f"hf_{k}": v for k, v in theirs.items()})
        result["hf_peak_mem_mb"] = hf_peak_mb
        result["hf_compile_s"] = round(max(0.0, hf_compile_s - warmup * theirs["step_ms"] / 1e3), 2)
        result["ratio_vs_hf"] = round(result["seq_per_s"] / theirs["seq_per_s"], 3)
    return result


class _HFLosses(torch.nn.Module):
    """transformers' model returning a dict with ``loss``, as ours does (so one step function serves both)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": self.model(**inputs).loss}
