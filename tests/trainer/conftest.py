"""Synthetic but valid builds (shard format v1) for the trainer tests.

The rows have structure a tiny BERT can learn quickly: tokens follow a Zipf law (so MLM loss
falls towards the unigram entropy) and each instance has a topic that shifts its tokens, with B
from the same topic when it follows A (label 0) and from another topic when random (label 1),
so NSP is learnable from the tokens alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corpusgen.config import BuildConfig
from corpusgen.shards import Instances, write_build

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
FIRST_WORD = 5
TOPICS = 8


def make_instances(
    n: int, *, vocab_size: int, max_seq_length: int, max_predictions: int, seed: int, nsp: bool = True
) -> Instances:
    rng = np.random.default_rng(seed)
    words = vocab_size - FIRST_WORD
    zipf = 1.0 / np.arange(1, words + 1)
    zipf /= zipf.sum()
    ids, lengths, a_lens, pos, nmask, labels, nsp_labels = [], [], [], [], [], [], []
    for _ in range(n):
        total = int(rng.integers(12, max_seq_length + 1)) if rng.random() < 0.5 else max_seq_length
        a = int(rng.integers(2, total - 4))
        b = total - 3 - a
        topic = int(rng.integers(TOPICS))
        label = int(rng.integers(2)) if nsp else -100
        topic_b = topic if label != 1 else (topic + int(rng.integers(1, TOPICS))) % TOPICS
        seg_a = FIRST_WORD + (rng.choice(words, a, p=zipf) + topic * words // TOPICS) % words
        seg_b = FIRST_WORD + (rng.choice(words, b, p=zipf) + topic_b * words // TOPICS) % words
        row = np.concatenate([[CLS], seg_a, [SEP], seg_b, [SEP]]).astype(np.int64)
        candidates = np.flatnonzero(row >= FIRST_WORD)
        k = min(max_predictions, max(1, round(0.15 * len(candidates))))
        chosen = np.sort(rng.choice(candidates, k, replace=False))
        original = row[chosen].copy()
        kind = rng.random(k)
        row[chosen[kind < 0.8]] = MASK
        rand = (kind >= 0.8) & (kind < 0.9)
        row[chosen[rand]] = rng.integers(FIRST_WORD, vocab_size, rand.sum())
        ids.append(row)
        lengths.append(len(row))
        a_lens.append(a + 2)
        pos.append(chosen)
        nmask.append(k)
        labels.append(original)
        nsp_labels.append(label)
    return Instances(
        input_ids=np.concatenate(ids).astype(np.uint16),
        lengths=np.array(lengths, dtype=np.int64),
        a_len=np.array(a_lens, dtype=np.uint16),
        masked_positions=np.concatenate(pos).astype(np.uint8 if max_seq_length <= 256 else np.uint16),
        num_masked=np.array(nmask, dtype=np.int64),
        masked_labels=np.concatenate(labels).astype(np.uint16),
        next_sentence_label=np.array(nsp_labels, dtype=np.int8),
        order_key=rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64),
    )


def make_build(
    out: Path,
    *,
    rows: int = 2000,
    heldout_rows: int = 256,
    vocab_size: int = 512,
    max_seq_length: int = 64,
    max_predictions: int = 10,
    rows_per_shard: int = 400,
    rows_per_batch: int = 100,
    bin_width: int = 16,
    seed: int = 1,
    next_sentence: str = "nsp",
) -> Path:
    """Write a build directory like `corpusgen build -o out` would and return it."""
    out = Path(out)
    cfg = BuildConfig(
        max_seq_length=max_seq_length,
        max_predictions_per_seq=max_predictions,
        rows_per_shard=rows_per_shard,
        rows_per_batch=rows_per_batch,
        length_bin_width=bin_width,
        next_sentence=next_sentence,
        zstd_level=3,
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(vocab_size - FIRST_WORD)]
    splits = {}
    for split, n, s in (("train", rows, seed), ("validation", heldout_rows, seed + 1000)):
        if n:
            splits[split] = make_instances(
                n,
                vocab_size=vocab_size,
                max_seq_length=max_seq_length,
                max_predictions=max_predictions,
                seed=s,
                nsp=next_sentence != "none",
            )
    write_build(
        out,
        splits,
        cfg,
        vocab_name="vocab.txt",
        vocab_bytes=("\n".join(vocab) + "\n").encode("utf-8"),
        tokenizer={
            "type": "wordpiece",
            "vocab_size": vocab_size,
            "do_lower_case": True,
            "pad_id": PAD,
            "unk_id": UNK,
            "cls_id": CLS,
            "sep_id": SEP,
            "mask_id": MASK,
        },  # fmt: skip
        created="2026-01-01T00:00:00Z",
    )
    return out


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    """2000 train rows over several bins and shards (100-row record batches), 256 held out."""
    return make_build(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="session")
def small_build_dir(tmp_path_factory) -> Path:
    """One shard of one record batch: fewer units than consumers, so units get cut into row ranges."""
    return make_build(
        tmp_path_factory.mktemp("small"),
        rows=300,
        heldout_rows=0,
        rows_per_shard=10_000,
        rows_per_batch=10_000,
        bin_width=64,
    )
