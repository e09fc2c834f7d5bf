"""Decompression: corpusgen's own readers (which notice a stream cut short) beside Beam's.

    PYTHONPATH=. python bench/bench_decompress.py [--repeat 5]

The bundled Wikipedia sample (5 MB of JSONL) is decompressed as .zst and as .gz through
``readers.open_decompressed`` and through ``FileSystems.open`` (Beam picks the codec by suffix);
best of ``--repeat`` runs, MB/s of output and the ratio ours / Beam's. Never gates on time.
The last line printed is a JSON object with all figures.
"""

import argparse
import gzip
import io
import json
import tempfile
import time
from pathlib import Path

import zstandard
from apache_beam.io.filesystems import FileSystems

from corpusgen import readers

SAMPLE = Path(__file__).resolve().parents[1] / "corpusgen" / "data" / "enwiki_sample.jsonl.zst"


def drain(stream) -> int:
    n = 0
    while block := stream.read(1 << 20):
        n += len(block)
    return n


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    zst = SAMPLE.read_bytes()
    data = zstandard.ZstdDecompressor().decompress(zst, max_output_size=1 << 30)
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, blob in (("zst", zst), ("gz", gzip.compress(data, 6))):
            path = Path(tmp) / f"sample.jsonl.{name}"
            path.write_bytes(blob)
            assert drain(readers.open_decompressed(io.BytesIO(blob), str(path))) == len(data)
            ours = best(lambda b=blob, p=str(path): drain(readers.open_decompressed(io.BytesIO(b), p)), args.repeat)

            def beam_read(p=str(path)):
                with FileSystems.open(p) as f:
                    drain(f)

            beams = best(beam_read, args.repeat)
            figures[name] = {
                "ours_mb_s": round(len(data) / ours / 1e6, 1),
                "beam_mb_s": round(len(data) / beams / 1e6, 1),
                "ratio": round(beams / ours, 2),
            }
            print(f"{name}: ours {figures[name]['ours_mb_s']} MB/s, Beam {figures[name]['beam_mb_s']} MB/s, "
                  f"ratio {figures[name]['ratio']}")  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
