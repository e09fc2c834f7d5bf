"""``corpusgen bench build``: a build's throughput beside the bare tokenizer's, stage by stage.

The ceiling is Hugging Face ``tokenizers``' ``encode_batch`` over the same documents' texts on
the same cores (its Rust threads use them all), best of three. Each build runs in a child
process (so its peak memory, summed over the whole process tree, is its own) and reports the
seconds each stage spent, summed over workers (CPU-seconds where workers overlap), from Beam's
metrics. Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from corpusgen.config import BuildConfig
from corpusgen.timing import METRIC_PREFIX, STAGES
from corpusgen.tokenizer import SubwordTokenizer, VocabFile


def read_texts(files: list[str], cfg: BuildConfig) -> list[str]:
    """The documents' texts as the build reads them (the same readers, before cleaning)."""
    from corpusgen.readers import read_documents
    from pipelines.inputs import open_raw

    counts: Counter = Counter()
    return [doc for f in files for doc in read_documents(f, cfg, counts, open_raw)]


def bare_tokenizer_seconds(texts: list[str], vocab: VocabFile, repeats: int = 3) -> tuple[float, int]:
    wp = SubwordTokenizer(vocab)
    wp.tokenizer.encode_batch_fast(texts[:200], add_special_tokens=False)  # warm up
    best, tokens = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        enc = wp.tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        best = min(best, time.perf_counter() - start)
        tokens = sum(len(e.ids) for e in enc)
    return best, tokens


def _tree_rss(proc) -> int:
    import psutil

    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:  # the build, or a worker, just ended
        return 0
    total = 0
    for p in tree:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_child_build(files: list[str], out: str, cfg: BuildConfig, vocab_path: str, workers: int, taskset: str | None):
    """Run one build in a child process; (wall seconds, peak RSS of its process tree, stage seconds)."""
    import psutil

    spec = {"files": files, "out": out, "cfg": cfg.to_dict(), "vocab": vocab_path, "workers": workers}
    cmd = [sys.executable, "-m", "pipelines.bench", "--child", json.dumps(spec)]
    if taskset:
        cmd = ["taskset", "-c", taskset, *cmd]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    ps = psutil.Process(proc.pid)
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(ps))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"build failed ({proc.returncode}): {stderr.strip().splitlines()[-1:]}")
    return wall, peak, json.loads(stdout.strip().splitlines()[-1])


def _child(spec_json: str) -> None:
    from pipelines.build import run_build

    spec = json.loads(spec_json)
    cfg = BuildConfig.from_dict(spec["cfg"])
    result = run_build(spec["files"], spec["out"], cfg, VocabFile.read(spec["vocab"]), workers=spec["workers"])
    seconds: Counter = Counter()
    for c in result.metrics().query()["counters"]:
        name = c.key.metric.name
        if name.startswith(METRIC_PREFIX) and name.endswith("_us"):
            seconds[name[len(METRIC_PREFIX) : -3]] += (c.committed or c.attempted or 0) / 1e6
    print(json.dumps(seconds))


def bench_build(
    files: list[str],
    *,
    vocab_path: str,
    workers: list[int],
    dupe_factors: list[int],
    cfg: BuildConfig,
    taskset_one: bool = False,
    echo=print,
) -> dict:
    vocab = VocabFile.read(vocab_path)
    texts = read_texts(files, cfg)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    bare_s, bare_tokens = bare_tokenizer_seconds(texts, vocab)
    echo(
        f"input: {len(files)} file(s), {len(texts)} documents, {mb:.1f} MB, {bare_tokens / 1e6:.2f} M tokens, {os.cpu_count()} cores"
    )
    echo(
        f"bare tokenizer (encode_batch, best of 3): {bare_s:.2f} s  {bare_tokens / bare_s / 1e6:.2f} M tokens/s  {mb / bare_s:.2f} MB/s"
    )
    results = {
        "documents": len(texts),
        "mb": round(mb, 2),
        "bare_tokens": bare_tokens,
        "bare_s": round(bare_s, 3),
        "builds": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for dupe in dupe_factors:
            for w in workers:
                out = os.path.join(tmp, f"out-{dupe}-{w}")
                shutil.rmtree(out, ignore_errors=True)
                pin = "0" if (taskset_one and w == 1) else None
                wall, peak, stages = run_child_build(files, out, cfg.replace(dupe_factor=dupe), vocab_path, w, pin)
                m = json.loads(Path(out, "manifest.json").read_text())
                kept = m["stats"]["tokens"]["kept"]
                nbytes = sum(e["bytes"] for e in m["shards"])
                ntok = sum(e["tokens"] for e in m["shards"])
                row = {
                    "dupe_factor": dupe,
                    "workers": w,
                    "pinned_to_one_core": pin is not None,
                    "seconds": round(wall, 3),
                    "tokens_per_s": round(kept / wall),
                    "ratio_to_bare_tokenizer": round(bare_s / wall, 3),
                    "bytes_per_token": round(nbytes / ntok, 4) if ntok else None,
                    "instances": m["stats"]["instances"],
                    "peak_rss_mb": round(peak / 1e6, 1),
                    "stage_seconds": {k: round(stages.get(k, 0.0), 3) for k in STAGES},
                }
                results["builds"].append(row)
                echo(
                    f"build dupe_factor={dupe} workers={w}{' (taskset -c 0)' if pin else ''}: {wall:.2f} s  "
                    f"{kept / wall / 1e6:.2f} M tokens/s  ratio to bare tokenizer {bare_s / wall:.3f}  "
                    f"{row['bytes_per_token']} bytes/token  peak RSS {peak / 1e6:.0f} MB"
                )
                echo(
                    "  stage seconds (summed over workers): "
                    + "  ".join(f"{k} {v:.2f}" for k, v in row["stage_seconds"].items())
                )
    base = {(b["dupe_factor"], b["workers"]): b["seconds"] for b in results["builds"]}
    for dupe in dupe_factors:
        if dupe != dupe_factors[0]:
            for w in workers:
                ratio = base[(dupe, w)] / base[(dupe_factors[0], w)]
                echo(f"dupe_factor {dupe} / dupe_factor {dupe_factors[0]} (workers={w}): {ratio:.2f}x the time")
        if len(workers) > 1:
            echo(
                f"workers {workers[-1]} vs {workers[0]} (dupe_factor {dupe}): {base[(dupe, workers[0])] / base[(dupe, workers[-1])]:.2f}x as fast"
            )
    return results


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    _child(sys.argv[2])
