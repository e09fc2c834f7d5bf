"""Multi-process training: torchrun with 2 CPU processes (gloo) keeps the ranks in step on disjoint data."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.train import checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_torchrun_two_ranks_disjoint_rows_identical_weights(build_dir, tmp_path):
    out = tmp_path / "run"
    steps, batch = 6, 8
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "trainer", "train", "--data", str(build_dir), "--out", str(out), "--steps", str(steps),
           "--batch-size", str(batch), "--log-every", "2", "--save-every", "3", "--eval-batches", "2",
           "--no-progress", "--trace"]  # fmt: skip
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "x2" in r.stdout  # "BERT-tiny ... on cpu x2": two processes in one group

    traces = [[json.loads(x) for x in (out / f"trace-rank{k}.jsonl").read_text().splitlines()] for k in (0, 1)]
    assert [t["step"] for t in traces[0]] == [t["step"] for t in traces[1]] == list(range(1, steps + 1))
    seen: set[int] = set()
    for r0, r1 in zip(*traces, strict=True):
        assert r0["weights_sha256"] == r1["weights_sha256"], f"ranks diverged at step {r0['step']}"
        assert len(r0["rows"]) == len(r1["rows"]) == batch
        step_rows = set(r0["rows"]) | set(r1["rows"])
        assert len(step_rows) == 2 * batch, f"ranks shared rows at step {r0['step']}"
        assert not step_rows & seen, "a row came back within the epoch"
        seen |= step_rows
    assert len({t["weights_sha256"] for t in traces[0]}) == steps  # the weights moved every step

    # rank 0's checkpoint holds both ranks' RNG states and the weights both ranks agreed on
    ckpt = load_checkpoint(checkpoints(out)[-1])
    assert ckpt["step"] == steps and len(ckpt["rng"]) == 2
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])  # dropout differs across ranks
    h = hashlib.sha256()
    for t in ckpt["model"].values():
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)
    assert h.hexdigest() == traces[0][-1]["weights_sha256"]


@pytest.mark.e2e
def test_ctrl_c_under_torchrun_stops_every_rank_at_one_step_with_a_checkpoint(build_dir, tmp_path):
    """Ctrl-C in a terminal reaches torchrun and both ranks, and torchrun forwards it again: both ranks
    finish the same step, rank 0 saves it, and --resume goes on with the ranks still in step."""
    import signal
    import time

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "trainer", "train", "--data", str(build_dir), "--out", str(out), "--steps", "100000",
           "--batch-size", "8", "--log-every", "2", "--eval-batches", "2", "--no-progress", "--trace"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    log, deadline = out / "train.jsonl", time.monotonic() + 300
    while not (log.exists() and log.stat().st_size) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, text[-3000:]
    saved = checkpoints(out)
    assert len(saved) == 1, text[-3000:]
    stopped = load_checkpoint(saved[0])["step"]
    assert f"stopped at step {stopped} of 100000 (SIGINT)" in text
    traces = [[json.loads(x) for x in (out / f"trace-rank{k}.jsonl").read_text().splitlines()] for k in (0, 1)]
    assert traces[0][-1]["step"] == traces[1][-1]["step"] == stopped  # neither rank went on alone
    assert traces[0][-1]["weights_sha256"] == traces[1][-1]["weights_sha256"]

    resume = [*cmd, "--resume", "--stop-after", str(stopped + 2)]
    r = subprocess.run(resume, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    traces = [[json.loads(x) for x in (out / f"trace-rank{k}.jsonl").read_text().splitlines()] for k in (0, 1)]
    assert [t["step"] for t in traces[0]] == [t["step"] for t in traces[1]] == list(range(1, stopped + 3))
    assert all(a["weights_sha256"] == b["weights_sha256"] for a, b in zip(*traces, strict=True))
