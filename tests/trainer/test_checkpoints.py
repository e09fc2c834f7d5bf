"""Checkpoints: never executed, verified whole, written durably; resume falls back past damage."""

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from corpusgen.shards import ManifestError
from trainer.cli import main
from trainer.train import CheckpointError, TrainConfig, checkpoints, load_checkpoint, train, truncate_log

from .conftest import make_build

METRICS = ("mlm_loss", "nsp_loss", "loss", "mlm_acc", "nsp_acc", "lr")


def config(build, out, **kw):
    base = dict(data=str(build), out=str(out), model="tiny", steps=6, batch_size=8, log_every=1, seed=0,
                progress=False, eval_batches=2, save_every=2)  # fmt: skip
    return TrainConfig(**{**base, **kw})


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def full_run(build_dir, tmp_path_factory):
    """An uninterrupted 6-step run, checkpoints at 2, 4, 6."""
    out = tmp_path_factory.mktemp("full") / "run"
    train(config(build_dir, out))
    return out


def test_the_payload_is_live(tmp_path):
    """The payload really runs code when unpickled the unsafe way (so the refusals below mean something)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps({"step": Payload(marker)}))
    assert marker.exists()


@pytest.mark.parametrize("container", ["raw pickle", "torch zip"])
def test_a_checkpoint_carrying_code_is_refused_not_run(build_dir, tmp_path, full_run, container):
    marker = tmp_path / "ran"
    path = tmp_path / "ckpt-0000009.pt"
    if container == "raw pickle":
        path.write_bytes(pickle.dumps({"step": 9, "model": Payload(marker)}, protocol=2))
    else:
        ckpt = torch.load(checkpoints(full_run)[-1], weights_only=True)
        ckpt["rng"] = Payload(marker)  # a real checkpoint with one poisoned value
        torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="refused to load") as exc:
        load_checkpoint(path)
    assert str(exc.value).startswith(f"{path}: ") and "\n" not in str(exc.value)
    assert not marker.exists()
    # the same file through `export` and through `train --resume`
    r = CliRunner().invoke(main, ["export", str(path), "-o", str(tmp_path / "hf")])
    assert r.exit_code == 1 and "refused to load" in r.output and "Traceback" not in r.output
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(path, run / path.name)
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        train(config(build_dir, run, resume=True, steps=12))
    assert not marker.exists() and not (tmp_path / "hf").exists()


def test_truncated_and_bit_flipped_checkpoints_are_damaged(tmp_path, full_run):
    good = checkpoints(full_run)[-1]
    data = good.read_bytes()
    cut = tmp_path / "ckpt-0000006.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged") as exc:
        load_checkpoint(cut)
    assert str(exc.value).startswith(f"{cut}: ") and "\n" not in str(exc.value)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10  # inside the tensor data: torch.load alone takes it
    cut.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="damaged checkpoint .*content sha256"):
        load_checkpoint(cut)
    assert load_checkpoint(good)["step"] == 6


def test_resume_falls_back_past_a_truncated_checkpoint_and_a_partial_log_line(build_dir, tmp_path, full_run, capsys):
    out = tmp_path / "run"
    train(config(build_dir, out, stop_after=4))
    assert [p.name for p in checkpoints(out)] == ["ckpt-0000002.pt", "ckpt-0000004.pt"]
    latest = checkpoints(out)[-1]
    latest.write_bytes(latest.read_bytes()[:1000])  # killed mid-write by something other than our save
    with open(out / "train.jsonl", "a") as f:
        f.write('{"step": 5, "mlm_lo')  # the log line a kill cut short
    (out / ".ckpt-0000006.pt.tmp-4242").write_bytes(b"half a checkpoint")  # a save that was killed
    capsys.readouterr()
    result = train(config(build_dir, out, resume=True))
    said = capsys.readouterr().out
    assert f"{latest}: unreadable checkpoint, truncated or damaged" in said
    assert "falling back to the checkpoint before it" in said
    assert "resuming from ckpt-0000002.pt, the newest intact checkpoint" in said
    assert said.count("partial line") == 1 and f"{out / 'train.jsonl'}: dropped 1 partial line(s)" in said
    assert "removed .ckpt-0000006.pt.tmp-4242" in said and not list(out.glob(".*tmp*"))
    assert result["step"] == 6
    # and the resumed run is the uninterrupted one
    for name in ("train.jsonl", "eval.jsonl"):
        full = [json.loads(x) for x in (full_run / name).read_text().splitlines()]
        ours = [json.loads(x) for x in (out / name).read_text().splitlines()]
        assert [r["step"] for r in ours] == [r["step"] for r in full]
        assert [{k: r.get(k) for k in METRICS} for r in ours] == [{k: r.get(k) for k in METRICS} for r in full]
    a, b = load_checkpoint(checkpoints(full_run)[-1]), load_checkpoint(checkpoints(out)[-1])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"] == 6


def test_logs_without_a_checkpoint_are_not_overwritten_unless_resume_starts_over(build_dir, tmp_path, capsys):
    """What a run interrupted before its first save leaves: its logs. A new run there is refused; --resume
    (a requeued job passes it every time) starts over from step 0 and says so, as it does in an empty --out."""
    out = tmp_path / "run"
    train(config(build_dir, out, stop_after=2))
    for ckpt in checkpoints(out):
        ckpt.unlink()
    before = (out / "train.jsonl").read_text()
    with pytest.raises(SystemExit, match=r"holds an earlier run's train.jsonl.*and no checkpoint.*--resume"):
        train(config(build_dir, out, stop_after=1))
    assert (out / "train.jsonl").read_text() == before
    capsys.readouterr()
    assert train(config(build_dir, out, resume=True, stop_after=1))["step"] == 1
    assert "no checkpoint to resume from; starting at step 0 (the earlier train.jsonl" in capsys.readouterr().out
    assert train(config(build_dir, tmp_path / "new", resume=True, stop_after=1))["step"] == 1
    assert "new: no checkpoint to resume from; starting at step 0\n" in capsys.readouterr().out


def test_resume_refuses_a_changed_schedule(build_dir, tmp_path):
    out = tmp_path / "run"
    train(config(build_dir, out, stop_after=2))
    with pytest.raises(CheckpointError, match=r"--lr 0.002 \(the run has 0.001\)"):
        train(config(build_dir, out, resume=True, lr=2e-3))
    with pytest.raises(CheckpointError, match=r"--warmup 3 \(the run has 1\)"):
        train(config(build_dir, out, resume=True, warmup=3))
    assert train(config(build_dir, out, resume=True))["step"] == 6


def test_resume_refuses_other_training_options_also_once_the_run_is_finished(build_dir, tmp_path):
    """--weight-decay was ignored (the optimizer's state brings the run's back), --accumulation, --optimizer
    and --grad-clip changed the steps after the checkpoint: the run would not continue as it started."""
    out = tmp_path / "run"
    train(config(build_dir, out, stop_after=2))
    changes = [
        (dict(accumulation=2), r"--accumulation 2 \(the run has 1\)"),
        (dict(optimizer="lamb"), r"--optimizer lamb \(the run has adamw\)"),
        (dict(weight_decay=0.5), r"--weight-decay 0.5 \(the run has 0.01\)"),
        (dict(grad_clip=0.0), r"--grad-clip 0.0 \(the run has 1.0\)"),
    ]
    for changed, message in changes:
        with pytest.raises(CheckpointError, match=message):
            train(config(build_dir, out, resume=True, **changed))
    assert train(config(build_dir, out, resume=True))["step"] == 6
    for changed, message in changes:
        with pytest.raises(CheckpointError, match=message):
            train(config(build_dir, out, resume=True, **changed))


def test_resume_refuses_another_model_also_once_the_run_is_finished(build_dir, tmp_path):
    out = tmp_path / "run"
    train(config(build_dir, out, stop_after=2))
    for changed, message in [
        (dict(model="mini"), r"--model mini \(the run's is tiny\)"),
        (dict(dropout=0.3), r"--dropout 0.3 \(the run has 0.1\)"),
        (dict(max_position_embeddings=1024), r"--max-position-embeddings 1024 \(the run has 512\)"),
    ]:
        with pytest.raises(CheckpointError, match=message):
            train(config(build_dir, out, resume=True, **changed))
    assert train(config(build_dir, out, resume=True))["step"] == 6
    # finished: the same refusals, not "nothing to do"
    with pytest.raises(CheckpointError, match=r"--model mini"):
        train(config(build_dir, out, resume=True, model="mini"))
    with pytest.raises(CheckpointError, match=r"--steps 1 \(the run has 6\)"):
        train(config(build_dir, out, resume=True, steps=1))
    assert train(config(build_dir, out, resume=True))["step"] == 6  # the same command: nothing to do


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_stops_train_in_one_line_naming_the_checkpoint_and_the_last_one_kept(
    build_dir, tmp_path, monkeypatch
):
    """torch.save turns the write's ENOSPC into 'RuntimeError: [enforce fail at inline_container.cc:672] .
    unexpected pos …'; the user sees the checkpoint, the reason and where to resume from."""
    import contextlib

    import trainer.train as train_mod

    real = train_mod.atomic_writer
    out = tmp_path / "run"

    @contextlib.contextmanager
    def full_after_the_first(path):
        if not checkpoints(out):
            with real(path) as f:
                yield f
        else:
            with open("/dev/full", "wb") as f:  # every write fails with ENOSPC
                yield f

    monkeypatch.setattr(train_mod, "atomic_writer", full_after_the_first)
    args = ["train", "--data", str(build_dir), "--out", str(out), "--steps", "4", "--batch-size", "4"]
    r = CliRunner().invoke(main, [*args, "--save-every", "2", "--no-progress"])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.output.strip().splitlines()[-1] == (
        f"Error: {out / 'ckpt-0000004.pt'}: No space left on device; free some space; {out / 'ckpt-0000002.pt'} "
        "is the last checkpoint: the same command with --resume continues from it"
    )
    assert [p.name for p in checkpoints(out)] == ["ckpt-0000002.pt"]
    load_checkpoint(out / "ckpt-0000002.pt")


def test_saved_rng_and_optimizer_state_load_weights_only(full_run):
    ckpt = load_checkpoint(checkpoints(full_run)[-1])
    assert isinstance(ckpt["rng"]["numpy"]["key"], torch.Tensor) and len(ckpt["rng"]["python"][1]) == 625
    assert ckpt["scheduler"] == {"warmup": 1, "steps": 6, "lr": 1e-3, "power": 1.0, "min_lr": 0.0}
    assert len(ckpt["digest"]) == 64


def test_truncate_log_keeps_whole_lines_up_to_the_step(tmp_path):
    log = tmp_path / "train.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"st')
    said = []
    truncate_log(log, 2, said.append)
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'
    assert said == [f"{log}: dropped 1 partial line(s) a killed run left behind"]
    truncate_log(log, 2, said.append)
    assert len(said) == 1
    log.write_text('{"step": 1}\n{"step": "2"}\n[3]\n{"step": 3}\n')  # edited by hand
    truncate_log(log, 2, said.append)
    assert log.read_text() == '{"step": 1}\n'
    assert said[1:] == [f"{log}: dropped 2 line(s) that are not a step's record (no number under 'step')"]


def test_a_failed_train_leaves_no_out_folder(tmp_path):
    out = tmp_path / "runs" / "bert"
    with pytest.raises(ManifestError, match="no manifest"):
        train(config(tmp_path / "nothing", out))
    assert not (tmp_path / "runs").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    with pytest.raises(ManifestError):
        train(config(tmp_path / "nothing", existing))
    assert existing.is_dir()  # not ours to remove


def test_a_build_without_training_rows_names_the_cause(tmp_path):
    build = make_build(tmp_path / "b", rows=0, heldout_rows=64)
    m = json.loads((build / "manifest.json").read_text())
    m["stats"]["drops"] = {"missing_text_field": 120, "empty_document": 3}
    (build / "manifest.json").write_text(json.dumps(m))
    r = CliRunner().invoke(main, ["train", "--data", str(build), "--out", str(tmp_path / "run"), "--no-progress"])
    assert r.exit_code == 1
    assert (
        f"{build}: the build has no training instances, only 64 held-out ones (heldout_fraction 0.01; "
        "drops: missing_text_field 120, empty_document 3)" in r.output
    )
    assert "Traceback" not in r.output and not (tmp_path / "run").exists()


@pytest.mark.e2e
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(build_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    steps = 24
    full = train(config(build_dir, tmp_path / "full", steps=steps, log_every=2, save_every=3))
    out = tmp_path / "run"
    args = [sys.executable, "-m", "trainer", "train", "--data", str(build_dir), "--out", str(out),
            "--steps", str(steps), "--batch-size", "8", "--log-every", "2", "--save-every", "3",
            "--eval-batches", "2", "--seed", "0", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root)}  # same threads as this process: the same float sums
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (out / "ckpt-0000006.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]  # killed mid-run, not finished
    r = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "resumed" in r.stdout and json.loads(r.stdout.strip().splitlines()[-1])["step"] == steps
    assert not list(out.glob(".*tmp*"))
    for name in ("train.jsonl", "eval.jsonl"):
        a = [json.loads(x) for x in (tmp_path / "full" / name).read_text().splitlines()]
        b = [json.loads(x) for x in (out / name).read_text().splitlines()]
        assert [{k: r.get(k) for k in ("step", *METRICS)} for r in b] == [
            {k: r.get(k) for k in ("step", *METRICS)} for r in a
        ]
    a, b = load_checkpoint(checkpoints(tmp_path / "full")[-1]), load_checkpoint(checkpoints(out)[-1])
    assert a["step"] == b["step"] == full["step"] == steps
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_batch_larger_than_the_training_rows_is_warned_about(tmp_path):
    build = make_build(tmp_path / "b", rows=12, heldout_rows=0)
    args = ["train", "--data", str(build), "--out", str(tmp_path / "run"), "--steps", "1", "--no-progress"]
    r = CliRunner().invoke(main, [*args, "--batch-size", "16"])
    assert r.exit_code == 0, r.output
    assert "--batch-size 16 x 1 process(es) exceeds the build's 12 training rows" in r.output
    r = CliRunner().invoke(main, [*args, "--batch-size", "8", "--out", str(tmp_path / "run2")])
    assert r.exit_code == 0 and "exceeds" not in r.output


def _start_run(build_dir, out, steps, *extra, workers="0"):
    """``trainer train`` in a child process; returns it once it has logged a step."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    args = [sys.executable, "-m", "trainer", "train", "--data", str(build_dir), "--out", str(out), "--steps",
            str(steps), "--batch-size", "8", "--log-every", "2", "--eval-batches", "2", "--seed", "0",
            "--workers", workers, "--no-progress", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root)}  # same threads as this process: the same float sums
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log, deadline = out / "train.jsonl", time.monotonic() + 300
    while not (log.exists() and log.stat().st_size) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    return proc, args, env


@pytest.mark.e2e
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_at_a_step_with_a_checkpoint_and_resumes_exactly(build_dir, tmp_path, signum):
    """Ctrl-C (or a scheduler's SIGTERM) finishes the step, saves it, exits 128+N; --resume then gives the
    uninterrupted run's logs and weights. DataLoader workers (2 here) ignore the signal."""
    import re
    import signal
    import subprocess

    steps = 400  # far more than are trained before the signal lands; the comparison run stops where it did
    proc, args, env = _start_run(build_dir, tmp_path / "run", steps, workers="2")
    sig = getattr(signal, signum)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-2000:]
    m = re.search(rf"stopped at step (\d+) of {steps} \({signum}\); saved (\S+): the same command with --resume", err)
    assert m, err[-2000:]
    stopped = int(m.group(1))
    assert 0 < stopped < steps and "Traceback" not in err
    assert [p.name for p in checkpoints(tmp_path / "run")] == [f"ckpt-{stopped:07d}.pt"] == [Path(m.group(2)).name]

    # resume to a few steps later with --stop-after, against an uninterrupted run stopped there too
    until = str(stopped + 3)
    r = subprocess.run([*args, "--resume", "--stop-after", until], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    full = tmp_path / "full"
    full_args = [a if a != str(tmp_path / "run") else str(full) for a in args]
    r = subprocess.run([*full_args, "--stop-after", until], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("train.jsonl",):
        a = [json.loads(x) for x in (full / name).read_text().splitlines()]
        b = [json.loads(x) for x in (tmp_path / "run" / name).read_text().splitlines()]
        assert [{k: r.get(k) for k in ("step", *METRICS)} for r in b] == [
            {k: r.get(k) for k in ("step", *METRICS)} for r in a
        ]
    a, b = load_checkpoint(checkpoints(full)[-1]), load_checkpoint(checkpoints(tmp_path / "run")[-1])
    assert a["step"] == b["step"] == stopped + 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_repeated_signal_is_one_request_and_a_later_one_stops_at_once():
    """torchrun forwards the Ctrl-C its workers already got: a repeat within the grace period is the same
    request; one after it is a KeyboardInterrupt now. The handlers are put back on leaving."""
    import signal
    import time

    from trainer.train import Console, StopOnSignal

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopOnSignal(False, None, Console(False, False)) as stop:
        assert not stop.agreed()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs between bytecodes of this thread
        os.kill(os.getpid(), signal.SIGINT)  # within the grace period: nothing more
        time.sleep(0.05)
        assert stop.agreed() and stop.signum == signal.SIGTERM
        stop._at -= StopOnSignal.GRACE_S + 1
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
