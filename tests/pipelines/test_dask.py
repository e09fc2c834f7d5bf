"""Beam's DaskRunner (a local cluster of worker processes) builds the same bytes as the FnApiRunner."""

import json
import subprocess
import sys

import pytest

from corpusgen.config import BuildConfig
from pipelines.build import run_build
from tests.pipelines.test_build import _shard_digests, _slice

pytest.importorskip("distributed")


def test_dask_runner_builds_the_same_bytes(tmp_path, vocab_file):
    src = _slice(tmp_path, 300)
    config = tmp_path / "build.toml"
    config.write_text("dupe_factor = 2\nnsp_pool_tokens = 20000\n")
    local = tmp_path / "local"
    run_build([str(src)], str(local), BuildConfig.from_file(config), vocab_file)
    dask = tmp_path / "dask"
    cmd = [sys.executable, "-m", "corpusgen.cli", "build", str(src), "-o", str(dask), "--config", str(config)]
    run = subprocess.run(
        [*cmd, "--runner", "DaskRunner", "--workers", "2"], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    # a clean shutdown says nothing alarming (Beam's client, closed after its cluster, logged an ERROR)
    assert not [line for line in run.stderr.splitlines() if "ERROR" in line or "WARNING" in line], run.stderr[-2000:]
    digests = _shard_digests(dask)
    assert len(digests) > 10 and digests == _shard_digests(local)
    m_dask, m_local = (json.loads((d / "manifest.json").read_text()) for d in (dask, local))
    assert m_dask["counters"] == m_local["counters"]
    assert m_dask["stats"]["nsp"]["pools"] > 3
