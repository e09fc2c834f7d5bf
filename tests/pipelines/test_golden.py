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

GOLDEN_ROWS_SHA256 = "07572a295cb5812114f0403d7cbef7ddab656b8dea95f74600abfa52636e44d3"
GOLDEN_FIRST_ROW_OF_LAST_SHARD = {
    "a_len": 60,
    "masked_positions": [1, 5, 12, 20, 30, 32, 33, 40, 42, 43, 55, 67, 69, 86, 96, 104, 118, 121],
    "masked_labels": [
        1010,
        2008,
        2084,
        2018,
        9232,
        1996,
        4223,
        5344,
        2354,
        2032,
        2735,
        3897,
        1997,
        1010,
        1010,
        2073,
        1996,
        1012,
    ],
    "next_sentence_label": 1,
}


def test_golden_sample_text_build(tmp_path, vocab_file):
    out = tmp_path / "golden"
    run_build([str(DATA / "sample_text.txt")], str(out), BuildConfig(dupe_factor=2, heldout_fraction=0.0), vocab_file)
    m = json.loads((out / "manifest.json").read_text())
    s = m["stats"]
    assert (s["documents"]["kept"], s["sentences"]["kept"], s["tokens"]["kept"]) == (3, 31, 1019)
    assert (s["instances"], s["nsp"]["next"], s["nsp"]["random"], s["masking"]["masked"]) == (25, 12, 13, 395)
    assert [e["bin"] for e in m["shards"]] == [[33, 48], [49, 64], [65, 80], [81, 96], [113, 128]]
    digest = hashlib.sha256()
    for e in m["shards"]:
        table = read_shard(out / e["path"])
        for column in table.column_names:
            digest.update(json.dumps(table.column(column).to_pylist()).encode())
    first = read_shard(out / m["shards"][-1]["path"]).slice(0, 1).to_pylist()[0]
    assert {k: first[k] for k in GOLDEN_FIRST_ROW_OF_LAST_SHARD} == GOLDEN_FIRST_ROW_OF_LAST_SHARD
    assert first["input_ids"][:14] == [101, 103, 13346, 14436, 1997, 103, 2307, 2542, 9917, 1010, 2062, 6659, 103, 2151]
    assert digest.hexdigest() == GOLDEN_ROWS_SHA256
