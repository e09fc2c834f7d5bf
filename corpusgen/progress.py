"""Progress of a local build, read from the markers its steps leave in the work folder.

Every finished input file, chunk, pool copy and pool bin leaves a small JSON marker (see
``pipelines.transforms``); counting them tells how far a build is on any local runner, with
any number of worker processes, without asking the runner. The tokenizing stage is most of
the time, so its share of chunks done gives the ETA once every input file has been read.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from corpusgen.intermediate import WORK_DIR


def _markers(folder: Path) -> list[dict]:
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):  # being written
            pass
    return out


def _files_read(markers: list[dict]) -> int:
    """Input files read in full: a whole-file marker each, or byte-range markers that tile the file."""
    ranged: dict[str, int] = {}
    done = 0
    for m in markers:
        lo, hi = m.get("bytes") or (0, None)
        if hi is None:
            done += 1
        else:
            ranged[m["input"]] = ranged.get(m["input"], 0) + (hi - lo)
    for path, covered in ranged.items():
        try:
            done += covered >= os.path.getsize(path)
        except OSError:
            pass
    return done


def progress_line(output_dir: str | Path, elapsed: float, input_files: int) -> str:
    work = Path(output_dir) / WORK_DIR
    markers = _markers(work / "docs")
    files = _files_read(markers)
    chunks_total = sum(len(m["chunks"]) for m in markers)
    tokenized = _markers(work / "tokens")
    docs = sum(m["counts"].get("documents_cleaned", 0) for m in tokenized)
    tokens = sum(m["counts"].get("tokens_read", 0) for m in tokenized)
    copies = len(list((work / "instances").glob("*.json"))) if (work / "instances").is_dir() else 0
    shards = sum(len(m.get("entries", ())) for m in _markers(work / "pools"))
    parts = [f"read {files}/{input_files} files"]
    if chunks_total:
        parts.append(
            f"tokenized {len(tokenized)}/{chunks_total} chunks ({docs:,} documents, {tokens / 1e6:.1f} M tokens"
        )
        parts[-1] += f", {tokens / max(elapsed, 1e-9) / 1e6:.2f} M tokens/s)"
    if copies:
        parts.append(f"{copies} pool copies paired and masked")
    if shards:
        parts.append(f"{shards} shards written")
    line = " · ".join(parts) + f" · {elapsed:.0f}s"
    if files == input_files and chunks_total and 0 < len(tokenized) < chunks_total:
        eta = elapsed * (chunks_total - len(tokenized)) / len(tokenized)
        line += f" · tokenizing done in ~{eta:.0f}s"
    return line


class ProgressPrinter:
    """Prints ``progress_line`` every ``every`` seconds on a background thread while a build runs."""

    def __init__(self, output_dir: str | Path, input_files: int, echo, every: float = 5.0) -> None:
        self.output_dir, self.input_files, self.echo, self.every = output_dir, input_files, echo, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="progress")
        self._started = time.monotonic()

    def _run(self) -> None:
        last = ""
        while not self._stop.wait(self.every):
            line = progress_line(self.output_dir, time.monotonic() - self._started, self.input_files)
            if line.split(" · ")[:-1] != last.split(" · ")[:-1]:  # only when something moved
                self.echo(line)
                last = line

    def __enter__(self) -> ProgressPrinter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
