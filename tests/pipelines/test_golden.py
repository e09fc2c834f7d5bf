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

GOLDEN_ROWS_SHA256 = "9d11a41172ac541dca9ede80b1d7120df340853067b88665f2ec407d4c4a6423"
GOLDEN_FIRST_ROW_OF_LAST_SHARD = {
    "a_len": 14,
    "masked_positions": [5, 7, 11, 17, 19, 21, 29, 30, 50, 61, 69, 72, 77, 79, 103, 105, 109, 119, 123],
    "masked_labels": [
        9866,
        1044,
        2841,
        2011,
        1010,
        1045,
        11498,
        19454,
        2026,
        1011,
        2033,
        2755,
        1037,
        1997,
        1011,
        1005,
        999,
        2097,
        28684,
    ],
    "next_sentence_label": 0,
}


def test_golden_sample_text_build(tmp_path, vocab_file):
    out = tmp_path / "golden"
    run_build([str(DATA / "sample_text.txt")], str(out), BuildConfig(dupe_factor=2, heldout_fraction=0.0), vocab_file)
    m = json.loads((out / "manifest.json").read_text())
    s = m["stats"]
    assert (s["documents"]["kept"], s["sentences"]["kept"], s["tokens"]["kept"]) == (3, 31, 1019)
    assert (s["instances"], s["nsp"]["next"], s["nsp"]["random"], s["masking"]["masked"]) == (25, 14, 11, 388)
    assert [e["bin"] for e in m["shards"]] == [[33, 48], [49, 64], [65, 80], [81, 96], [97, 112], [113, 128]]
    digest = hashlib.sha256()
    for e in m["shards"]:
        table = read_shard(out / e["path"])
        for column in table.column_names:
            digest.update(json.dumps(table.column(column).to_pylist()).encode())
    first = read_shard(out / m["shards"][-1]["path"]).slice(0, 1).to_pylist()[0]
    assert {k: first[k] for k in GOLDEN_FIRST_ROW_OF_LAST_SHARD} == GOLDEN_FIRST_ROW_OF_LAST_SHARD
    assert first["input_ids"][:14] == [101, 1996, 9545, 1997, 4438, 103, 1010, 103, 22571, 10450, 2050, 103, 1012, 102]
    assert digest.hexdigest() == GOLDEN_ROWS_SHA256
