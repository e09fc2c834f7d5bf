"""Coverage-guided fuzzing of the readers and the cleaning step with atheris (not a pytest module).

    pip install atheris   # the `fuzz` extra
    PYTHONPATH=. python tests/corpusgen/fuzz_atheris.py -max_total_time=60

Each input is read as text, JSONL and HTML, plain and behind every codec (whole and cut in
half), and each document is cleaned; the counts must add up and nothing may raise. A crash
prints the input; keep it as a regression test in tests/corpusgen/test_fuzz_inputs.py.
"""

import io
import sys
from collections import Counter

import atheris

with atheris.instrument_imports():
    from corpusgen import readers, stats
    from corpusgen.clean import clean_document
    from corpusgen.config import BuildConfig

CFG = BuildConfig(max_line_bytes=4096, max_document_chars=2000)
NAMES = ("a.txt", "a.jsonl", "a.html", "a.txt.gz", "a.jsonl.zst", "a.txt.bz2", "a.jsonl.xz", "a.txt.deflate")


def check(data: bytes, name: str) -> None:
    counts: Counter = Counter()
    docs = list(readers.read_documents(name, CFG, counts, lambda _: io.BytesIO(data)))
    assert counts[stats.RECORDS_READ] == len(docs) + sum(counts[r] for r in stats.RECORD_DROPS), (name, counts)
    for doc in docs:
        doc.encode("utf-8")
        assert "\x00" not in doc
        text, reason = clean_document(doc, CFG, counts)
        assert (text is None) != (reason is None)
        if text is not None:
            text.encode("utf-8")


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    name = NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]
    check(fdp.ConsumeBytes(fdp.remaining_bytes()), name)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
