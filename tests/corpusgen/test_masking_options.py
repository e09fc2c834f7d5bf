"""Masking options: replacement split, span masking, budgets following the rate, dynamic masks and
mask copies, on large seeded samples (rates within binomial bounds) and exact invariants."""

from collections import Counter

import numpy as np
import pytest

from corpusgen.config import BuildConfig
from corpusgen.masking import (
    DocumentDraws,
    VocabTables,
    cut_spans,
    mask_budget,
    mask_documents,
    mask_rows,
    row_keys,
    row_sequences,
    shard_key,
)
from corpusgen.pairing import create_pairs, document_rng, document_seed, seeded_rng
from corpusgen.shards import instance_counters
from corpusgen.stats import KIND_KEPT, KIND_MASK, KIND_RANDOM, binomial_halfwidth, mask_kinds
from corpusgen.streams import MASKING, KeyedDraws, stream_keys
from tests.corpusgen.test_pairing_masking import make_pool

Z = 5.0  # standard errors: a correct sampler fails one check in ~2 million


@pytest.fixture(scope="module")
def tables(wordpiece):
    return VocabTables.from_tokenizer(wordpiece)


def random_rows(tables, n_rows: int, seed: int, min_len: int = 20, max_len: int = 128):
    """Flat rows ``[CLS] A [SEP] B [SEP]`` of real word pieces (about one in four a "##" piece)."""
    rng = np.random.default_rng(seed)
    ordinary = np.flatnonzero(~tables.is_special)
    pieces, words = ordinary[tables.is_continuation[ordinary]], ordinary[~tables.is_continuation[ordinary]]
    lengths = rng.integers(min_len, max_len + 1, size=n_rows)
    rows = []
    for n in lengths:
        body = np.where(rng.random(n - 3) < 0.25, rng.choice(pieces, n - 3), rng.choice(words, n - 3))
        a = int(rng.integers(1, n - 3))
        rows.append(np.concatenate(([tables.cls_id], body[:a], [tables.sep_id], body[a:], [tables.sep_id])))
    return np.concatenate(rows).astype(np.int64), lengths.astype(np.int64)


def draw(tables, cfg, ids, lengths, epoch=0, shard=7):
    keys = row_keys(cfg.random_seed, epoch, shard, np.arange(len(lengths)))
    return mask_rows(ids, lengths, None, cfg, tables, keys)


@pytest.mark.parametrize(
    "scheme, prob, mask_p, random_p",
    [
        ("token", 0.15, 0.8, 0.1),
        ("token", 0.3, 0.8, 0.1),
        ("token", 0.15, 0.5, 0.25),
        ("whole-word", 0.15, 0.8, 0.1),
        ("span", 0.15, 0.8, 0.1),
        ("span", 0.3, 0.5, 0.25),
    ],
)
def test_dynamic_mask_rate_and_split_within_binomial_bounds(tables, scheme, prob, mask_p, random_p):
    cfg = BuildConfig(mask_scheme=scheme, masked_lm_prob=prob, mask_replace_prob=mask_p, random_replace_prob=random_p)
    ids, lengths = random_rows(tables, 3000, seed=1)
    seq, m = draw(tables, cfg, ids, lengths)
    cand = ~tables.is_special[ids]
    n_cand, k = mask_budget(seq, cand, cfg)
    assert np.all(m.n_masked <= k), "never above the row's budget"
    masked, cands = int(m.n_masked.sum()), int(n_cand.sum())
    assert masked > 30_000
    gap = np.abs(k - n_cand * prob).sum() / cands  # rounding to whole positions, at least 1
    share = masked / cands
    if scheme == "token":
        assert np.array_equal(m.n_masked, k)
        assert abs(share - prob) <= binomial_halfwidth(cands, prob, Z) + gap
    else:  # stops short of the budget by less than one word per row
        assert prob - 0.03 <= share <= prob + binomial_halfwidth(cands, prob, Z) + gap
    kinds = mask_kinds(m.shown, m.labels, tables.mask_id)
    for kind, p in ((KIND_MASK, mask_p), (KIND_RANDOM, random_p), (KIND_KEPT, 1 - mask_p - random_p)):
        assert abs(kinds[kind] / masked - p) <= binomial_halfwidth(masked, p, Z), kind
    assert np.all(np.diff(m.chosen) > 0) and not tables.is_special[ids[m.chosen]].any()
    assert np.array_equal(m.labels, ids[m.chosen])


@pytest.mark.parametrize("prob, mask_p, random_p", [(0.15, 0.8, 0.1), (0.3, 0.8, 0.1), (0.15, 0.5, 0.25)])
def test_static_mask_rate_and_split_within_binomial_bounds(tables, prob, mask_p, random_p):
    cfg = BuildConfig(masked_lm_prob=prob, mask_replace_prob=mask_p, random_replace_prob=random_p)
    pool = make_pool(11, 800, max_len=30)
    counts = Counter()
    batch = []
    for i, doc in enumerate(pool):
        seed = document_seed(11, doc.key, 0)
        batch.append((create_pairs(i, pool, cfg, seeded_rng(seed), counts), seed))
    counts.update(instance_counters(mask_documents(batch, tables, cfg, counts), "train", tables.mask_id))
    masked = counts[KIND_MASK] + counts[KIND_RANDOM] + counts[KIND_KEPT]
    assert masked > 30_000
    assert abs(masked / counts["mask_candidates"] - prob) <= binomial_halfwidth(counts["mask_candidates"], prob, Z)
    for kind, p in ((KIND_MASK, mask_p), (KIND_RANDOM, random_p), (KIND_KEPT, 1 - mask_p - random_p)):
        assert abs(counts[kind] / masked - p) <= binomial_halfwidth(masked, p, Z), kind


def words(row_ids, tables):
    """[start, end) of each word of one row (the vocabulary's rule)."""
    ordinary = ~tables.is_special[row_ids]
    out = []
    for i in np.flatnonzero(ordinary):
        if tables.is_continuation[row_ids[i]] and i > 0 and ordinary[i - 1]:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


def test_spans_are_whole_words_within_the_budget(tables):
    cfg = BuildConfig(mask_scheme="span", masked_lm_prob=0.3)
    ids, lengths = random_rows(tables, 400, seed=2)
    seq, m = draw(tables, cfg, ids, lengths)
    _, k = mask_budget(seq, ~tables.is_special[ids], cfg)
    starts = np.concatenate(([0], np.cumsum(lengths)))
    for r in range(len(lengths)):
        row = ids[starts[r] : starts[r + 1]]
        chosen = np.zeros(len(row), bool)
        chosen[m.chosen[(m.chosen >= starts[r]) & (m.chosen < starts[r + 1])] - starts[r]] = True
        ws = words(row, tables)
        assert all(chosen[a:b].all() or not chosen[a:b].any() for a, b in ws), "whole words"
        left = k[r] - chosen.sum()
        assert 0 <= left < max(b - a for a, b in ws), "short of the budget by less than a word"


def test_span_lengths_follow_the_clipped_geometric(tables):
    """Spans tile each stretch of words; the first span of a stretch longer than span_max_words words
    is never cut by its end, so its length is min(Geometric(p), max) exactly."""
    p, top = 0.2, 10
    cfg = BuildConfig(mask_scheme="span", span_p=p, span_max_words=top)
    ids, lengths = random_rows(tables, 4000, seed=3, min_len=60, max_len=128)
    seq = row_sequences(ids, lengths, None, tables)
    cand = ~tables.is_special[ids]
    w, span_of = cut_spans(seq, cand, cfg, KeyedDraws(row_keys(1, 0, 2, np.arange(len(lengths)))))
    # spans: consecutive words of one stretch (never across [SEP]), at most `top` words
    size = np.bincount(span_of)
    assert size.max() == top
    opens = np.flatnonzero(np.diff(np.concatenate(([-1], span_of))) > 0)
    inside = np.flatnonzero(np.diff(span_of) == 0) + 1  # words that continue the span of the word before
    assert not w.after_gap[inside].any(), "a span never crosses a special token"
    stretch = np.cumsum(w.after_gap) - 1
    stretch_words = np.bincount(stretch)
    first = opens[w.after_gap[opens] & (stretch_words[stretch[opens]] > top)]
    lens = size[span_of[first]]
    assert len(lens) > 5000
    dist = np.array([(1 - p) ** (n - 1) * p for n in range(1, top)] + [(1 - p) ** (top - 1)])
    values = np.arange(1, top + 1)
    mean, var = (dist * values).sum(), (dist * values**2).sum() - (dist * values).sum() ** 2
    assert abs(mean - (1 - (1 - p) ** top) / p) < 1e-12  # 4.46 at p = 0.2, 10 words
    assert abs(lens.mean() - mean) <= Z * np.sqrt(var / len(lens))
    assert abs((lens == 1).mean() - p) <= binomial_halfwidth(len(lens), p, Z)
    assert abs((lens == top).mean() - dist[-1]) <= binomial_halfwidth(len(lens), dist[-1], Z)


def test_dynamic_masks_depend_on_the_key_alone(tables):
    cfg = BuildConfig()
    ids, lengths = random_rows(tables, 200, seed=4)
    _, a = draw(tables, cfg, ids, lengths, epoch=0)
    _, again = draw(tables, cfg, ids, lengths, epoch=0)
    _, later = draw(tables, cfg, ids, lengths, epoch=1)
    _, other_shard = draw(tables, cfg, ids, lengths, epoch=0, shard=8)
    assert np.array_equal(a.chosen, again.chosen) and np.array_equal(a.shown, again.shown)
    starts = np.concatenate(([0], np.cumsum(lengths)))

    def per_row(m):
        return [tuple(m.chosen[(m.chosen >= starts[r]) & (m.chosen < starts[r + 1])]) for r in range(len(lengths))]

    rows_a = per_row(a)
    assert sum(x != y for x, y in zip(rows_a, per_row(later))) >= 190, "another epoch, other masks"
    assert sum(x != y for x, y in zip(rows_a, per_row(other_shard))) >= 190
    # a row's masks do not depend on the rows masked with it
    keys = row_keys(cfg.random_seed, 0, 7, np.arange(len(lengths)))
    for r in (0, 57, 199):
        _, alone = mask_rows(ids[starts[r] : starts[r + 1]], lengths[r : r + 1], None, cfg, tables, keys[r : r + 1])
        assert tuple(alone.chosen + starts[r]) == rows_a[r]


def test_row_draws_are_uniform_and_independent_of_neighbours():
    keys = row_keys(3, 0, shard_key("shards/train/x.arrow"), np.arange(1000))
    u = KeyedDraws(keys).random(np.full(1000, 100))
    assert abs(u.mean() - 0.5) <= Z * np.sqrt(1 / 12 / len(u)) and 0 <= u.min() and u.max() < 1
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) <= Z / np.sqrt(len(u))
    per_row = np.arange(1000) % 7
    x = KeyedDraws(keys).random(per_row)
    y = KeyedDraws(keys[5:6]).random(per_row[5:6])
    assert np.array_equal(x[per_row[:5].sum() : per_row[:6].sum()], y)
    ints = KeyedDraws(keys).integers(10, np.full(1000, 50))
    assert ints.min() == 0 and ints.max() == 9


def test_mask_copies_hold_n_sets_of_one_unmasked_row(tables):
    cfg = BuildConfig(mask_copies=3)
    pool = make_pool(12, 20, max_len=30)
    counts, single_counts = Counter(), Counter()
    batch = [(create_pairs(i, pool, cfg, document_rng(1, d.key, 0), Counter()), document_seed(1, d.key, 0)) for i, d in enumerate(pool)]  # fmt: skip
    inst = mask_documents(batch, tables, cfg, counts)
    batch1 = [(create_pairs(i, pool, cfg, document_rng(1, d.key, 0), Counter()), document_seed(1, d.key, 0)) for i, d in enumerate(pool)]  # fmt: skip
    single = mask_documents(batch1, tables, cfg.replace(mask_copies=1), single_counts)
    assert inst.set_sizes.shape == (len(inst), 3) and np.array_equal(inst.set_sizes.sum(1), inst.num_masked)
    assert counts["mask_candidates"] == 3 * single_counts["mask_candidates"]
    assert not (inst.input_ids == tables.mask_id).any(), "rows stay unmasked"
    # set 0 is the single-set build's masks; the other sets differ
    moff = np.concatenate(([0], np.cumsum(inst.num_masked)))
    soff = np.concatenate(([0], np.cumsum(single.num_masked)))
    off = np.concatenate(([0], np.cumsum(inst.lengths)))
    differ = 0
    for r in range(len(inst)):
        n0, n1 = inst.set_sizes[r, 0], inst.set_sizes[r, 1]
        pos = inst.masked_positions[moff[r] : moff[r + 1]]
        assert np.array_equal(pos[:n0], single.masked_positions[soff[r] : soff[r + 1]])
        row = inst.input_ids[off[r] : off[r + 1]].copy()
        row[pos[:n0].astype(np.int64)] = inst.masked_inputs[moff[r] : moff[r] + n0]
        assert np.array_equal(row, single.input_ids[off[r] : off[r + 1]])
        differ += not np.array_equal(pos[:n0], pos[n0 : n0 + n1])
        assert np.array_equal(inst.masked_labels[moff[r] : moff[r + 1]], inst.input_ids[off[r] + pos.astype(np.int64)])
    assert differ >= 0.9 * len(inst)


def test_dynamic_builds_keep_rows_unmasked_with_word_starts(tables):
    cfg = BuildConfig(dynamic_masking=True, mask_scheme="whole-word")
    pool = make_pool(13, 10, max_len=30)
    counts = Counter()
    batch = [(create_pairs(i, pool, cfg, document_rng(1, d.key, 0), Counter()), document_seed(1, d.key, 0)) for i, d in enumerate(pool)]  # fmt: skip
    inst = mask_documents(batch, tables, cfg, counts)
    assert not (inst.input_ids == tables.mask_id).any() and inst.num_masked.sum() == 0
    assert len(inst.word_starts) == len(inst.input_ids) and counts["mask_candidates"] == 0
    assert mask_documents(batch[:1], tables, cfg.replace(mask_scheme="token"), Counter()).word_starts is None


def test_document_draws_are_each_documents_own_stream():
    """A document's numbers are those of its stream alone, whatever shares the batch, call after call."""
    seeds = np.stack([document_seed(1, key, 0) for key in "abc"])
    draws = DocumentDraws(seeds, np.array([2, 1, 2]))
    x, y = draws.random(np.array([1, 2, 3, 0, 4])), draws.integers(5, np.array([0, 1, 1, 1, 2]))
    keys = stream_keys(seeds, MASKING)
    want_x = [KeyedDraws(keys[d : d + 1]).random(np.array([n])) for d, n in enumerate([3, 3, 4])]
    assert np.array_equal(x, np.concatenate(want_x))
    alone = [KeyedDraws(keys[d : d + 1]) for d in range(3)]
    for r, n in zip(alone, [3, 3, 4]):
        r.random(np.array([n]))
    assert np.array_equal(y, np.concatenate([r.integers(5, np.array([n])) for r, n in zip(alone, [1, 1, 3])]))
    again = DocumentDraws(seeds[1:2], np.array([1])).random(np.array([3]))
    assert np.array_equal(again, x[3:6]) and not np.array_equal(x[:3], x[3:6])


class _FixedDraws:
    """Draws whose floats are given: the order groups are tried in is then known."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=float)

    def random(self, per_row):
        assert int(np.sum(per_row)) == len(self.values)
        return self.values


def _greedy(sizes, budget):
    """google-research/bert's rule, one word at a time: skip a word that would overflow, go on."""
    taken, left = [], budget
    for s in sizes:
        taken.append(s if s <= left else 0)
        left -= taken[-1]
    return taken


def test_whole_words_skip_a_word_that_would_overflow_and_try_the_next_ones():
    from corpusgen.masking import _take_in_random_order

    rng = np.random.default_rng(3)
    for _ in range(200):
        n_rows = int(rng.integers(1, 6))
        per_row = rng.integers(0, 12, size=n_rows)
        row = np.repeat(np.arange(n_rows), per_row)
        size = rng.integers(1, 5, size=len(row))
        k = rng.integers(0, 15, size=n_rows)
        keys = rng.random(len(row))
        taken = _take_in_random_order(size, row, k, n_rows, _FixedDraws(keys), clip=False)
        for r in range(n_rows):
            mine = np.flatnonzero(row == r)
            order = mine[np.argsort(keys[mine], kind="stable")]
            assert taken[order].tolist() == _greedy(size[order].tolist(), int(k[r]))
