"""Golden build of google-research/bert's sample_text.txt: any change in the algorithm shows here.

The digest covers the decoded rows of every shard (not the file bytes, which depend on the
zstd library's version). When a deliberate change to pairing, masking, splitting or shard order
alters the output, read the diff of the first row below, then update both values.
"""

import hashlib
import json

from corpusgen.config import BuildConfig
from corpusgen.shards import read_shard
from pipelines.build import run_build
from tests.conftest import DATA

GOLDEN_ROWS_SHA256 = "5d81e8d1a76bde3a7a68fff5a6459e847e997121bd8847669a2690c2d42cf9db"
GOLDEN_FIRST_ROW_OF_LAST_SHARD = {
    "a_len": 29,
    "masked_positions": [2, 4, 10, 24, 32, 44, 56, 60, 66, 72, 73, 77, 78, 90, 93, 100, 102, 104, 108],
    "masked_labels": [
        3793,
        2443,
        8971,
        29895,
        1999,
        2021,
        15778,
        1010,
        13675,
        1997,
        13713,
        2192,
        2594,
        2559,
        2062,
        2008,
        8501,
        9315,
        2000,
    ],
    "next_sentence_label": 1,
}


def test_golden_sample_text_build(tmp_path, vocab_file):
    out = tmp_path / "golden"
    run_build([str(DATA / "sample_text.txt")], str(out), BuildConfig(dupe_factor=2, heldout_fraction=0.0), vocab_file)
    m = json.loads((out / "manifest.json").read_text())
    s = m["stats"]
    assert (s["documents"]["kept"], s["sentences"]["kept"], s["tokens"]["kept"]) == (3, 31, 1019)
    assert (s["instances"], s["nsp"]["next"], s["nsp"]["random"], s["masking"]["masked"]) == (27, 13, 14, 401)
    assert [e["bin"] for e in m["shards"]] == [[33, 48], [49, 64], [65, 80], [81, 96], [97, 112], [113, 128]]
    digest = hashlib.sha256()
    for e in m["shards"]:
        table = read_shard(out / e["path"])
        for column in table.column_names:
            digest.update(json.dumps(table.column(column).to_pylist()).encode())
    first = read_shard(out / m["shards"][-1]["path"]).slice(0, 1).to_pylist()[0]
    assert {k: first[k] for k in GOLDEN_FIRST_ROW_OF_LAST_SHARD} == GOLDEN_FIRST_ROW_OF_LAST_SHARD
    assert first["input_ids"][:14] == [101, 2023, 103, 2003, 103, 2000, 2191, 2469, 27260, 2003, 8971, 7919, 1024, 1778]
    assert digest.hexdigest() == GOLDEN_ROWS_SHA256
