"""A build killed halfway (SIGKILL, a real subprocess) is rerun: finished pools are kept, the bytes are the same."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from corpusgen.config import BuildConfig
from corpusgen.intermediate import WORK_DIR
from pipelines.build import prepare_work_dir, run_build
from tests.pipelines.test_build import _shard_digests, _slice

CONFIG = "dupe_factor = 2\nnsp_pool_tokens = 10000\nrows_per_shard = 400\n"


def _build_cmd(src, out, config):
    return [
        sys.executable,
        "-m",
        "corpusgen.cli",
        "build",
        str(src),
        "-o",
        str(out),
        "--config",
        str(config),
        "--workers",
        "1",
    ]


def test_killed_build_resumes_to_the_same_bytes(tmp_path, vocab_file):
    src = _slice(tmp_path, 1500)
    config = tmp_path / "build.toml"
    config.write_text(CONFIG)
    whole = tmp_path / "whole"
    run_build([str(src)], str(whole), BuildConfig.from_file(config), vocab_file)

    out = tmp_path / "killed"
    proc = subprocess.Popen(_build_cmd(src, out, config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pools = out / WORK_DIR / "pools"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and len(list(pools.glob("*.json"))) < 3:
        time.sleep(0.02)
    assert proc.poll() is None, "the build ended before it could be killed; give it more pools"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    done = {p.name: p.stat().st_mtime_ns for p in pools.glob("*.json")}
    kept_shards = {
        e["path"]: (out / e["path"]).stat().st_mtime_ns
        for name in done
        for e in json.loads((pools / name).read_text())["entries"]
    }
    assert kept_shards

    rerun = subprocess.run(_build_cmd(src, out, config), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stderr
    assert _shard_digests(out) == _shard_digests(whole)
    for path, mtime in kept_shards.items():  # written before the kill, not again
        assert (out / path).stat().st_mtime_ns == mtime, path
    m_out, m_whole = (json.loads((d / "manifest.json").read_text()) for d in (out, whole))
    assert m_out["counters"] == m_whole["counters"]
    assert not (out / WORK_DIR).exists()
    assert not list(out.rglob("*.tmp-*"))


def test_another_build_in_the_same_folder_starts_over(tmp_path):
    stamp = {"config": {"dupe_factor": 1}, "files": ["a"], "vocab_sha256": "x", "chunk_chars": 1}
    assert prepare_work_dir(str(tmp_path), stamp) is False
    (tmp_path / WORK_DIR / "pools").mkdir()
    (tmp_path / WORK_DIR / "pools" / "train-00000-of-00001.json").write_text("{}")
    assert prepare_work_dir(str(tmp_path), stamp) is True
    assert (tmp_path / WORK_DIR / "pools" / "train-00000-of-00001.json").exists()
    assert prepare_work_dir(str(tmp_path), {**stamp, "config": {"dupe_factor": 2}}) is False
    assert not (tmp_path / WORK_DIR / "pools").exists()


@pytest.mark.parametrize("torn", ["", '{"entries": ['])
def test_a_torn_marker_means_redo(tmp_path, torn):
    from pipelines.transforms import read_marker

    (tmp_path / "m.json").write_text(torn)
    assert read_marker(str(tmp_path / "m.json")) is None
    assert read_marker(str(tmp_path / "absent.json")) is None
