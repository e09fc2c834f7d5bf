"""Instance parts: a pool's copies made apart, stored by length bin, and each shard cut from its bin's
batch of every copy give exactly the shards one pass over every copy gives, in every layout."""

from collections import Counter
from dataclasses import fields

import numpy as np
import pytest

from corpusgen.config import BuildConfig
from corpusgen.instances import create_instances
from corpusgen.intermediate import decode_instance_batch, encode_instance_part
from corpusgen.masking import VocabTables
from corpusgen.shards import Instances, cut_into_shards, shard_of_bin, shards_in_bin
from tests.corpusgen.test_pairing_masking import make_pool


def _same(a: Instances, b: Instances) -> None:
    for f in fields(Instances):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert (x is None) == (y is None), f.name
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"mask_copies": 3},
        {"dynamic_masking": True, "mask_scheme": "whole-word"},
        {"next_sentence": "full-sentences"},
        {"next_sentence": "none", "max_seq_length": 64},
    ],
)
def test_copies_made_apart_and_merged_by_bin_cut_the_same_shards(wordpiece, options):
    cfg = BuildConfig(dupe_factor=3, rows_per_shard=70, **options)
    tables = VocabTables.from_tokenizer(wordpiece)
    pool = make_pool(5, 60, max_len=30)
    whole_counts, copy_counts = Counter(), Counter()
    whole = create_instances(pool, cfg, tables, whole_counts)
    by_bin: dict[int, list[Instances]] = {}
    for dupe in range(cfg.dupe_factor):
        inst = create_instances(pool, cfg, tables, copy_counts, dupes=[dupe])
        data, index = encode_instance_part(inst, cfg.bin_of(inst.lengths.astype(np.int64)))
        assert [b for b, _ in index] == sorted({b for b, _ in index}) and sum(n for _, n in index) == len(inst)
        for batch, (b, rows) in enumerate(index):
            part = decode_instance_batch(data, batch)
            assert len(part) == rows and set(cfg.bin_of(part.lengths.astype(np.int64)).tolist()) == {b}
            by_bin.setdefault(b, []).append(part)
    assert copy_counts == whole_counts
    expected = cut_into_shards(whole, "train", cfg, pool=1, pools=4)
    merged = [  # as the pipeline cuts them: one shard at a time from its bin's batches of every copy
        shard_of_bin(Instances.concat(by_bin[b]), "train", cfg, pool=1, pools=4, index=i)
        for b in sorted(by_bin)
        for i in range(shards_in_bin(sum(len(p) for p in by_bin[b]), cfg))
    ]
    assert len(expected) > len(by_bin) > 1  # several bins, and bins of several shards
    assert [s.path for s in merged] == [s.path for s in expected]
    for got, want in zip(merged, expected):
        _same(got.rows, want.rows)
