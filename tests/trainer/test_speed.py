"""The fast step computes what the plain one does; the step benchmark compares like with like."""

import json

import pytest
import torch
from click.testing import CliRunner

from trainer.bench import hf_inputs, hf_model, measure_train, synthetic_batches
from trainer.data import IGNORE, ShardDataset, ShardLoader
from trainer.export import hf_state_dict
from trainer.model import BertConfig, BertForPreTraining
from trainer.optim import Lamb, param_groups
from trainer.train import TrainConfig, compile_model, eval_cap, fused_adamw, has_padding, model_inputs


def mixed_batches(build_dir, vocab_size, n):
    """Loader batches (padded) alternating with unpadded synthetic ones of another shape."""
    loader = iter(ShardLoader(ShardDataset(build_dir, split="train", batch_size=8, seed=0)))
    full = synthetic_batches(vocab_size, 8, 32, 5, seed=1)
    return [next(loader) if i % 2 else next(full) for i in range(n)]


def loss_curve(batches, vocab_size, *, fast: bool, compile: bool = False, optimizer: str = "adamw"):
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.from_size("tiny", vocab_size=vocab_size)).train()
    if optimizer == "adamw":
        kw = dict(fused=True) if fast else dict(foreach=False)  # plain: torch's per-tensor loop
        opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-3, eps=1e-6, **kw)
    else:
        opt = Lamb(param_groups(model, 0.01), lr=1e-3) if fast else ReferenceLamb(param_groups(model, 0.01), lr=1e-3)
    fwd = compile_model(model) if compile else model
    torch.manual_seed(1)  # dropout
    losses = []
    for batch in batches:
        out = fwd(**(model_inputs(batch, not has_padding(batch)) if fast else batch))
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out["loss"].item())
    return torch.tensor(losses)


def test_fast_step_gives_the_plain_loss_curve(build_dir):
    batches = mixed_batches(build_dir, 512, 8)
    assert [has_padding(b) for b in batches] == [False, True] * 4
    plain = loss_curve(batches, 512, fast=False)
    fast = loss_curve(batches, 512, fast=True)
    assert (plain[1:] - plain[:-1]).abs().min() > 1e-4  # every step moves the loss: the curves compare something
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert fused_adamw(torch.device("cpu"))


def test_foreach_lamb_gives_the_per_tensor_loss_curve(build_dir):
    batches = mixed_batches(build_dir, 512, 6)
    plain = loss_curve(batches, 512, fast=False, optimizer="lamb")
    fast = loss_curve(batches, 512, fast=True, optimizer="lamb")
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_compiled_step_gives_the_plain_loss_curve(build_dir):
    batches = mixed_batches(build_dir, 512, 4)
    plain = loss_curve(batches, 512, fast=False)
    compiled = loss_curve(batches, 512, fast=True, compile=True)
    # inductor draws dropout masks from its own generator: equal only without dropout, so compare the first
    # step's loss (before any update depends on a mask) loosely and the trend
    assert compiled[0].item() == pytest.approx(plain[0].item(), rel=0.05)
    torch.testing.assert_close(compiled, plain, rtol=0.05, atol=0.0)  # the same curve up to dropout noise


def test_no_mask_for_unpadded_batches():
    batch = {"attention_mask": torch.ones(2, 8, dtype=torch.bool), "input_ids": torch.zeros(2, 8, dtype=torch.long)}
    assert not has_padding(batch)
    assert model_inputs(batch, True)["attention_mask"] is None
    assert model_inputs(batch, True)["input_ids"] is batch["input_ids"]
    batch["attention_mask"][1, 7] = False
    assert has_padding(batch)
    assert model_inputs(batch, False)["attention_mask"] is batch["attention_mask"]


def test_evaluation_reads_no_more_batches_than_were_trained():
    cfg = TrainConfig(data="x", eval_batches=50, accumulation=2)
    assert eval_cap(cfg, 10, None) == 20  # 10 steps x 2 micro-batches since the start
    assert eval_cap(cfg, 40, {"step": 10}) == 50  # --eval-batches caps
    assert eval_cap(cfg, 12, {"step": 10}) == 4
    assert eval_cap(TrainConfig(data="x", eval_batches=0), 3, None) == 0  # 0: the whole split, as asked


def test_synthetic_batches_have_the_loader_format(build_dir):
    real = next(iter(ShardLoader(ShardDataset(build_dir, split="train", batch_size=4, seed=0))))
    fake = next(synthetic_batches(512, 4, 32, 5))
    assert {k: (v.dtype, v.dim()) for k, v in fake.items()} == {k: (v.dtype, v.dim()) for k, v in real.items()}
    assert fake["input_ids"].shape == (4, 32) and fake["masked_positions"].shape == (4, 8)  # P rounded up to 8
    pos = fake["masked_positions"][:, :5]
    assert bool((pos[:, 1:] > pos[:, :-1]).all()) and int(pos.min()) >= 1 and int(pos.max()) <= 30
    assert fake["masked_valid"].sum(1).tolist() == [5] * 4
    assert bool((fake["masked_labels"][~fake["masked_valid"]] == IGNORE).all())


def test_transformers_gets_the_same_config_and_loss():
    pytest.importorskip("transformers")
    cfg = BertConfig.from_size("tiny", vocab_size=512)
    ours = BertForPreTraining(cfg).eval()
    theirs = hf_model(cfg).eval()
    missing, unexpected = theirs.load_state_dict(hf_state_dict(ours.state_dict(), cfg), strict=False)
    assert not unexpected and all("decoder.weight" in k for k in missing)  # tied to the word embeddings
    batch = next(synthetic_batches(512, 4, 32, 5))
    inputs = hf_inputs(batch)
    assert int((inputs["labels"] != IGNORE).sum()) == 20
    assert inputs["labels"].gather(1, batch["masked_positions"][:, :5]).equal(batch["masked_labels"][:, :5])
    with torch.no_grad():
        a = ours(**model_inputs(batch, True))["loss"]
        b = theirs(**inputs).loss
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_measure_train_reports_every_figure():
    r = measure_train(model="tiny", batch_size=4, seq_len=32, predictions=5, steps=2, warmup=1, vocab_size=512)
    assert (r["device"], r["dtype"], r["mfu"], r["seq_len"], r["predictions"]) == ("cpu", "fp32", None, 32, 8)
    assert set(r["split_ms"]) == {"data_wait", "forward", "backward", "optimizer"}
    assert 0 < r["split_ms"]["forward"] < r["step_ms"]
    assert r["seq_per_s"] == pytest.approx(4 / (r["step_ms"] / 1e3), rel=2e-3)  # both rounded
    # unpadded rows; seq_per_s is rounded to 0.01 (x 32 tokens) and tokens_per_s to 0.1
    assert r["tokens_per_s"] == pytest.approx(r["seq_per_s"] * 32, abs=0.005 * 32 + 0.05 + 1e-6)


def test_bench_train_cli_prints_json_last(build_dir):
    pytest.importorskip("transformers")
    from trainer.cli import main

    args = ["bench", "train", "--model", "tiny", "--batch-size", "4", "--steps", "1", "--warmup", "1"]
    result = CliRunner().invoke(main, [*args, "--against-hf", "--data", str(build_dir)])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output.strip().splitlines()[-1])
    assert r["ratio_vs_hf"] == pytest.approx(r["seq_per_s"] / r["hf_seq_per_s"], rel=1e-2)
    assert r["mfu"] is None and r["hf_mfu"] is None and r["seq_len"] == 64  # the build's max_seq_length
    assert "ratio" in result.output


class ReferenceLamb(torch.optim.Optimizer):
    """LAMB one tensor at a time, as written in the paper (what the foreach version must equal)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                update = (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + group["eps"])
                update += group["weight_decay"] * p
                w, u = p.norm(), update.norm()
                p -= group["lr"] * (w / u if w > 0 and u > 0 else 1.0) * update


def test_gpu_check_script_runs_its_three_measurements(build_dir, tmp_path):
    """bench/bench_gpu.py (issue 10's GPU checks) on CPU at toy size: the same code path a lent GPU runs."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "bench_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    bench_gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_gpu)
    out = tmp_path / "gpu.json"
    summary = bench_gpu.main(
        ["--device", "cpu", "--model", "tiny", "--batch-size", "4", "--steps", "2", "--warmup", "1",
         "--dtype", "fp32", "--no-compile", "--workers", "0", "--data", str(build_dir), "--json", str(out)]
    )  # fmt: skip
    assert set(summary["runs"]) == {"eager", "data"}
    assert summary["runs"]["eager"]["hf_seq_per_s"] > 0 and summary["runs"]["eager"]["ratio_vs_hf"] > 0
    assert 0 <= summary["data_wait_fraction"] < 1 and summary["runs"]["data"]["batch_size"] == 4
    assert summary["mfu"] is None and summary["mfu_target_met"] is None  # MFU is measured on CUDA only
    assert json.loads(out.read_text())["fastest"] == "eager"
