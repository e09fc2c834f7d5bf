"""Seconds spent per build stage, summed over a worker's calls (what ``corpusgen bench build`` reports)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

STAGES = (
    "read",
    "clean",
    "split",
    "tokenize",
    "write_work",
    "read_pool",
    "pair",
    "mask",
    "sort",
    "compress",
    "write",
)
METRIC_PREFIX = "seconds_"  # Beam Metrics counters hold microseconds: seconds_<stage>_us


class StageTimer:
    """``with timer.stage("tokenize"): ...`` adds the block's wall time to ``timer.seconds["tokenize"]``."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def take(self) -> dict[str, float]:
        """The seconds gathered so far, and start again from zero."""
        out, self.seconds = dict(self.seconds), Counter()
        return out
