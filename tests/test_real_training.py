"""The trainer on a real build (the bundled Wikipedia sample), against the project's CPU targets: within
300 CPU steps at batch 64 a tiny BERT brings its MLM loss to 70% of where a correctly initialised model
starts (ln(vocab size), 10.3) or below, and a run stopped and resumed ends exactly where an uninterrupted
one does.

Slow (a few minutes on 2 cores): `make test-all` or `pytest -m slow`.
"""

import json
import math

import pytest

from corpusgen.config import BuildConfig
from pipelines.build import run_build
from tests.conftest import DATA
from trainer.train import TrainConfig, train


@pytest.fixture(scope="module")
def real_build(tmp_path_factory, vocab_file):
    out = tmp_path_factory.mktemp("real")
    run_build([str(DATA / "enwiki_sample.jsonl.zst")], str(out), BuildConfig(dupe_factor=2), vocab_file)
    return out


TIMING = {"seq_per_s", "tokens_per_s", "mfu", "time", "elapsed_s"}


def logs(run_dir):
    """The train log without its timing fields (which differ between any two runs)."""
    rows = [json.loads(line) for line in (run_dir / "train.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.mark.slow
def test_300_cpu_steps_cut_mlm_loss_by_30_percent_and_resume_exactly(real_build, tmp_path):
    common = dict(data=str(real_build), model="tiny", steps=300, batch_size=64, log_every=10, progress=False)
    full = tmp_path / "full"
    train(TrainConfig(out=str(full), **common))
    full_logs = logs(full)
    start = math.log(30522)  # a correctly initialised model starts at ln V
    end = sum(r["mlm_loss"] for r in full_logs[-3:]) / 3
    assert end <= 0.7 * start, f"MLM loss {start:.2f} -> {end:.2f}"
    assert all("nsp_loss" in r for r in full_logs)

    split = tmp_path / "split"
    train(TrainConfig(out=str(split), stop_after=150, **common))
    train(TrainConfig(out=str(split), resume=True, **common))
    assert logs(split) == full_logs, "a run stopped at 150 and resumed ends with the same losses"
