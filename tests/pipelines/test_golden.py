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

GOLDEN_ROWS_SHA256 = "eb9c3a6e072fb047c6b713f8b6c9d122c6b6cf6707d3caa9db56ddb6e89004ce"
GOLDEN_FIRST_ROW_OF_LAST_SHARD = {
    "a_len": 14,
    "masked_positions": [19, 20, 26, 27, 29, 34, 37, 47, 57, 76, 77, 80, 82, 86, 89, 100, 101, 117, 121],
    "masked_labels": [
        2008,
        2851,
        3193,
        2000,
        1012,
        6644,
        1011,
        5178,
        2012,
        2013,
        2010,
        4188,
        2785,
        2000,
        2793,
        1037,
        2062,
        2720,
        4625,
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
    assert first["input_ids"][:14] == [
        101,
        1996,
        9545,
        1997,
        4438,
        9866,
        1010,
        1044,
        22571,
        10450,
        2050,
        2841,
        1012,
        102,
    ]
    assert digest.hexdigest() == GOLDEN_ROWS_SHA256
