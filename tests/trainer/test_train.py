import json
import math

import pytest
import torch

from trainer.optim import Lamb, lr_at
from trainer.train import TrainConfig, checkpoints, load_checkpoint, train

METRICS = ("mlm_loss", "nsp_loss", "loss", "mlm_acc", "nsp_acc", "lr")


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def config(build, out, **kw):
    base = dict(
        data=str(build),
        out=str(out),
        model="tiny",
        steps=30,
        batch_size=16,
        log_every=5,
        seed=0,
        progress=False,
        eval_batches=4,
    )
    return TrainConfig(**{**base, **kw})


def test_lr_schedule():
    kw = dict(lr=1.0, warmup=10, steps=110)
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.5)
    assert lr_at(110, **kw) == 0.0
    assert lr_at(60, **kw, power=0.5) == pytest.approx(0.5**0.5)
    assert lr_at(110, **kw, min_lr=0.1) == pytest.approx(0.1)


def test_lamb_minimises_a_quadratic():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(10, 10))
    opt = Lamb([w], lr=0.05, weight_decay=0.0)
    start = (w**2).sum().item()
    for _ in range(100):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert (w**2).sum().item() < 0.05 * start


def test_bad_config_is_refused_before_work(tmp_path):
    with pytest.raises(ValueError, match="--model"):
        TrainConfig(data="x", model="huge")
    with pytest.raises(ValueError, match="--data"):
        TrainConfig()
    for option, message in [
        (dict(dropout=1.0), r"--dropout must be in \[0, 1\)"),  # 1.0 divided by zero, 1.5 trained on nonsense
        (dict(dropout=-0.1), r"--dropout must be in \[0, 1\)"),
        (dict(grad_clip=-1.0), "--grad-clip must be >= 0"),
        (dict(lr=-1e-4), "--lr must be positive"),
        (dict(keep_checkpoints=0), "--keep-checkpoints must be at least 1"),
        (dict(eval_batches=-1), "--eval-batches must be >= 0"),
        (dict(workers=-1), "--workers must be >= 0"),
        # each of these used to train: NaN losses, a rate growing 99-fold at the end, a bare numpy traceback
        (dict(lr=math.inf), "--lr must be positive"),
        (dict(seed=-1), "--seed must be >= 0"),
        (dict(weight_decay=-1.0), "--weight-decay must be >= 0"),
        (dict(weight_decay=math.nan), "--weight-decay must be >= 0"),
        (dict(decay_power=-1.0), "--decay-power must be >= 0"),
        (dict(min_lr=math.inf), "--min-lr must be >= 0"),
        (dict(shuffle_buffer=0), "--shuffle-buffer must be at least 1"),
        (dict(device="gpu"), "--device gpu: not a device name"),
        *(
            [(dict(device="mps"), "--device mps: this torch cannot use it")]
            if not torch.backends.mps.is_available()
            else []
        ),
        *(
            [(dict(device="cuda"), "--device cuda: this torch sees no CUDA GPU")]
            if not torch.cuda.is_available()
            else []
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainConfig(data="x", **option)


def test_training_lowers_the_loss_and_logs_every_key(build_dir, tmp_path):
    result = train(config(build_dir, tmp_path / "run", steps=60, log_every=10, eval_every=30, lr=2e-3, warmup=5))
    log = read(tmp_path / "run" / "train.jsonl")
    assert [r["step"] for r in log] == [10, 20, 30, 40, 50, 60]
    for r in log:
        assert {
            "step",
            "mlm_loss",
            "nsp_loss",
            "loss",
            "mlm_acc",
            "nsp_acc",
            "lr",
            "seq_per_s",
            "tokens_per_s",
        } <= r.keys()
    assert log[-1]["mlm_loss"] < log[0]["mlm_loss"] - 0.25
    evals = read(tmp_path / "run" / "eval.jsonl")
    assert [r["step"] for r in evals] == [30, 60] and result["eval"]["step"] == 60
    assert [p.name for p in checkpoints(tmp_path / "run")] == ["ckpt-0000060.pt"]


def test_stop_and_resume_equals_an_uninterrupted_run(build_dir, tmp_path):
    train(config(build_dir, tmp_path / "full", steps=30, eval_every=10, accumulation=2))
    stopped = train(config(build_dir, tmp_path / "split", steps=30, eval_every=10, accumulation=2, stop_after=13))
    assert stopped["step"] == 13 and [p.name for p in checkpoints(tmp_path / "split")] == ["ckpt-0000013.pt"]
    resumed = train(config(build_dir, tmp_path / "split", steps=30, eval_every=10, accumulation=2, resume=True))
    assert resumed["step"] == 30
    for name in ("train.jsonl", "eval.jsonl"):
        full, split = read(tmp_path / "full" / name), read(tmp_path / "split" / name)
        assert [r["step"] for r in full] == [r["step"] for r in split]
        for a, b in zip(full, split, strict=True):
            assert {k: a.get(k) for k in METRICS} == {k: b.get(k) for k in METRICS}
    a, b = load_checkpoint(checkpoints(tmp_path / "full")[-1]), load_checkpoint(checkpoints(tmp_path / "split")[-1])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_out_with_checkpoints_needs_resume(build_dir, tmp_path):
    train(config(build_dir, tmp_path / "run", steps=2, log_every=1))
    with pytest.raises(SystemExit, match="--resume"):
        train(config(build_dir, tmp_path / "run", steps=4))
    with pytest.raises(ValueError, match="--steps 4"):  # the schedule would change midway
        train(config(build_dir, tmp_path / "run", steps=4, batch_size=8, resume=True))
    with pytest.raises(ValueError, match=r"--batch-size 8 \(the run has"):  # finished, yet checked
        train(config(build_dir, tmp_path / "run", steps=2, batch_size=8, resume=True))
    # already done: nothing to do, no error
    assert train(config(build_dir, tmp_path / "run", steps=2, resume=True))["step"] == 2


def test_resume_at_or_past_stop_after_says_there_is_nothing_to_do(build_dir, tmp_path, capsys):
    train(config(build_dir, tmp_path / "run", steps=4, stop_after=2, log_every=1))
    saved = checkpoints(tmp_path / "run")
    capsys.readouterr()
    assert train(config(build_dir, tmp_path / "run", steps=4, stop_after=2, resume=True))["step"] == 2
    out = capsys.readouterr()
    assert "at or past --stop-after 2; nothing to do" in out.out + out.err
    assert checkpoints(tmp_path / "run") == saved
    assert train(config(build_dir, tmp_path / "run", steps=4, resume=True))["step"] == 4  # without it: to --steps


def test_save_every_keeps_the_latest(build_dir, tmp_path):
    train(config(build_dir, tmp_path / "run", steps=8, save_every=2, keep_checkpoints=2, log_every=4, optimizer="lamb"))
    assert [p.name for p in checkpoints(tmp_path / "run")] == ["ckpt-0000006.pt", "ckpt-0000008.pt"]
    assert not list((tmp_path / "run").glob(".*tmp*"))
    ckpt = load_checkpoint(checkpoints(tmp_path / "run")[-1])
    assert {"model", "optimizer", "scheduler", "step", "data", "rng", "model_config", "train_config"} <= ckpt.keys()
    assert ckpt["data"]["batches"] == 8


def test_no_nsp_build_trains_mlm_only(tmp_path):
    from .conftest import make_build

    build = make_build(tmp_path / "none", rows=300, heldout_rows=64, next_sentence="none")
    result = train(config(build, tmp_path / "run", steps=5, log_every=5))
    assert result["train"]["nsp_loss"] is None and result["train"]["nsp_acc"] is None
    assert result["train"]["loss"] == result["train"]["mlm_loss"]


def test_train_config_file_uses_the_shared_reader(tmp_path):
    (tmp_path / "t.toml").write_text('[build]\nmax_seq_length = 64\n[train]\nsteps = 7\nmodel = "mini"\n')
    cfg = TrainConfig.from_file(tmp_path / "t.toml", data="d", steps=9)
    assert (cfg.steps, cfg.model, cfg.data) == (9, "mini", "d")
    (tmp_path / "t.json").write_text('{"steps": 5, "data": "d"}')
    assert TrainConfig.from_file(tmp_path / "t.json").steps == 5
    for name, text, message in [
        ("bad.toml", "steps = ", "bad.toml: not valid TOML"),
        ("bad.json", "[1, 2]", "bad.json: a config file holds a table of options, not list"),
        ("unknown.toml", "stepz = 3", "unknown.toml: unknown train option\\(s\\) stepz"),
        ("type.toml", 'steps = "ten"\ndata = "d"', "type.toml: steps = 'ten' should be an integer"),
        ("lr.toml", 'lr = -1.0\ndata = "d"', "lr.toml: lr = -1.0: must be positive, got -1.0"),
        ("batch.toml", 'batch_size = 0\ndata = "d"', "batch.toml: batch_size = 0: must be at least 1"),
        ("drop.toml", 'dropout = 1.5\ndata = "d"', r"drop.toml: dropout = 1.5: must be in \[0, 1\)"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message) as exc:
            TrainConfig.from_file(tmp_path / name)
        assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="missing.toml: cannot read config"):
        TrainConfig.from_file(tmp_path / "missing.toml")
    # a bad value given on the command line is the option's, not the file's
    with pytest.raises(ValueError, match="^--lr must be positive"):
        TrainConfig.from_file(tmp_path / "t.json", lr=-2.0)


def test_a_warmup_as_long_as_the_run_is_warned_about():
    assert TrainConfig(data="d", steps=2).warnings() == []  # the default warmup follows the steps
    (warning,) = TrainConfig(data="d", steps=2, warmup=5000).warnings()
    assert "warmup (5000 steps) is not shorter than the run (2 steps)" in warning


def test_a_min_lr_above_the_peak_is_warned_about():
    assert TrainConfig(data="d", min_lr=1e-3).warnings() == []  # tiny's peak: a constant rate after warmup
    (warning,) = TrainConfig(data="d", min_lr=1e-2).warnings()
    assert "--min-lr 0.01 is above the peak learning rate 0.001" in warning


def test_eval_data_evaluates_on_another_builds_heldout_split(build_dir, tmp_path):
    from trainer.data import ManifestError

    from .conftest import make_build

    other = make_build(tmp_path / "other", rows=200, heldout_rows=40, seed=7)
    own = train(config(build_dir, tmp_path / "own", steps=5, log_every=5, eval_batches=0))
    moved = train(config(build_dir, tmp_path / "moved", steps=5, log_every=5, eval_batches=0, eval_data=str(other)))
    assert moved["train"]["loss"] == own["train"]["loss"]  # the same training; only the held-out set differs
    assert moved["eval"]["mlm_loss"] != own["eval"]["mlm_loss"]
    bigger = make_build(tmp_path / "bigger", rows=200, heldout_rows=40, vocab_size=600)
    with pytest.raises(ManifestError, match="another vocabulary"):
        train(config(build_dir, tmp_path / "refused", steps=5, eval_data=str(bigger)))
    cased = make_build(tmp_path / "cased", rows=200, heldout_rows=40)  # the same vocab.txt, kept case
    manifest = json.loads((cased / "manifest.json").read_text())
    manifest["config"]["do_lower_case"] = manifest["tokenizer"]["do_lower_case"] = False
    (cased / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=f"tokenized otherwise: do_lower_case False \\({build_dir} has True\\)"):
        train(config(build_dir, tmp_path / "refused", steps=5, eval_data=str(cased)))
    assert not (tmp_path / "refused").exists()


def test_an_mlm_only_model_reports_no_nsp_on_a_held_out_set_with_pairs(tmp_path):
    from .conftest import make_build

    packed = make_build(tmp_path / "none", rows=300, heldout_rows=0, next_sentence="none")
    pairs = make_build(tmp_path / "pairs", rows=100, heldout_rows=64)
    result = train(config(packed, tmp_path / "run", steps=5, log_every=5, eval_data=str(pairs), eval_batches=0))
    assert result["eval"]["nsp_loss"] is None and result["eval"]["nsp_acc"] is None
    assert result["eval"]["loss"] == result["eval"]["mlm_loss"]
