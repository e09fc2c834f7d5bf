"""Invariants of pairing and masking (hypothesis), and their rates on large seeded samples."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusgen.config import BuildConfig
from corpusgen.masking import VocabTables, mask_documents, mask_pairs
from corpusgen.pairing import (
    NEXT,
    RANDOM,
    Pair,
    TokenizedDocument,
    create_pairs,
    document_rng,
    document_seed,
    seeded_rng,
    truncation_counts,
)
from corpusgen.shards import instance_counters
from corpusgen.stats import KIND_KEPT, KIND_MASK, KIND_RANDOM, binomial_halfwidth

FIRST, LAST = 1996, 29611  # ordinary word pieces of bert-base-uncased


def make_doc(rng: np.random.Generator, key_int: int, n_sent: int, max_len: int = 40) -> TokenizedDocument:
    lens = rng.integers(1, max_len + 1, size=n_sent)
    ids = rng.integers(FIRST, LAST, size=int(lens.sum())).astype(np.uint16)
    return TokenizedDocument(f"{key_int:032x}", ids, np.concatenate(([0], np.cumsum(lens))).astype(np.int64))


def make_pool(seed: int, n_docs: int, min_sent: int = 2, max_sent: int = 30, max_len: int = 40):
    rng = np.random.default_rng(seed)
    docs = [
        make_doc(rng, int(rng.integers(1, 2**62)), int(rng.integers(min_sent, max_sent + 1)), max_len)
        for _ in range(n_docs)
    ]
    return sorted(docs, key=lambda d: d.key)


def find_slice(hay: np.ndarray, needle: np.ndarray) -> int:
    """Start of needle as a contiguous slice of hay, or -1."""
    n = len(needle)
    for s in np.flatnonzero(hay[: len(hay) - n + 1] == needle[0]):
        if np.array_equal(hay[s : s + n], needle):
            return int(s)
    return -1


@pytest.mark.parametrize(
    "la, lb, m, expected",
    [
        (10, 10, 25, (0, 0)),
        (10, 10, 16, (2, 2)),
        (10, 10, 15, (2, 3)),
        (30, 5, 20, (15, 0)),
        (5, 30, 20, (0, 15)),
        (12, 10, 19, (2, 1)),
    ],
)
def test_truncation_counts_match_the_reference_loop(la, lb, m, expected):
    a, b = la, lb
    cut_a = cut_b = 0
    while a + b > m:  # google-research/bert truncate_seq_pair, counting only
        if a > b:
            a, cut_a = a - 1, cut_a + 1
        else:
            b, cut_b = b - 1, cut_b + 1
    assert (cut_a, cut_b) == expected == truncation_counts(la, lb, m)


@given(st.integers(1, 300), st.integers(1, 300), st.integers(2, 300))
def test_truncation_counts_property(la, lb, m):
    ca, cb = truncation_counts(la, lb, m)
    assert ca >= 0 and cb >= 0
    assert la - ca + lb - cb == min(la + lb, m)
    if la + lb > m:
        assert la - ca >= 1 and lb - cb >= 1 and abs((la - ca) - (lb - cb)) <= max(1, abs(la - lb) - (la + lb - m))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(["nsp", "sop", "none"]),
    max_seq_length=st.integers(8, 160),
    short_seq_prob=st.sampled_from([0.0, 0.1, 0.9]),
)
def test_pairs_are_whole_well_formed_and_deterministic(seed, mode, max_seq_length, short_seq_prob):
    cfg = BuildConfig(
        next_sentence=mode, max_seq_length=max_seq_length, short_seq_prob=short_seq_prob, max_predictions_per_seq=3
    )
    pool = make_pool(seed, 6, max_len=2 * max_seq_length)
    for i, doc in enumerate(pool):
        counts = Counter()
        pairs = create_pairs(i, pool, cfg, document_rng(seed, doc.key, 0), counts)
        again = create_pairs(i, pool, cfg, document_rng(seed, doc.key, 0), Counter())
        assert len(pairs) == len(again) and all(np.array_equal(p.tokens_a, q.tokens_a) for p, q in zip(pairs, again))
        assert pairs, "every document yields at least one instance"
        assert counts["tokens_covered"] + counts["tokens_truncated_away"] == doc.n_tokens
        for p in pairs:
            n_b = 0 if p.tokens_b is None else len(p.tokens_b)
            assert len(p.tokens_a) >= 1 and len(p.tokens_a) + n_b <= cfg.max_num_tokens
            if mode == "none":
                assert p.tokens_b is None and p.label == -100
                assert find_slice(doc.ids, p.tokens_a) >= 0
                continue
            assert n_b >= 1 and p.label in (NEXT, RANDOM)
            first, second = (
                (p.tokens_b, p.tokens_a) if (mode == "sop" and p.label == RANDOM) else (p.tokens_a, p.tokens_b)
            )
            sa = find_slice(doc.ids, first)
            assert sa >= 0
            if p.label == NEXT or mode == "sop":
                assert find_slice(doc.ids[sa + len(first) :], second) >= 0, "B comes after A in the same document"
            else:
                others = [d for j, d in enumerate(pool) if j != i]
                assert any(find_slice(d.ids, second) >= 0 for d in others), "random B comes from another document"


def test_nsp_balance_and_short_share_on_a_large_sample():
    cfg = BuildConfig()
    pool = make_pool(7, 400, min_sent=2, max_sent=60)
    counts = Counter()
    labels, shorts = [], []
    for dupe in range(3):
        for i, doc in enumerate(pool):
            for p in create_pairs(i, pool, cfg, document_rng(99, doc.key, dupe), counts):
                labels.append(p.label)
                shorts.append(p.short)
    n = len(labels)
    assert n > 3000
    assert abs(np.mean(labels) - 0.5) <= binomial_halfwidth(n, 0.5)
    assert abs(np.mean(shorts) - 0.1) <= binomial_halfwidth(n, 0.1)


# --- masking -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tables(wordpiece):
    return VocabTables.from_tokenizer(wordpiece)


def masked_instances(tables, cfg, seed, n_docs=40, vocab_ids=None):
    pool = make_pool(seed, n_docs, max_len=30)
    if vocab_ids is not None:  # realistic word pieces, so whole-word masking has words to keep together
        for d in pool:
            d.ids = vocab_ids[np.random.default_rng(seed).integers(0, len(vocab_ids), size=len(d.ids))]
    counts = Counter()
    out = []
    for i, doc in enumerate(pool):
        doc_seed = document_seed(seed, doc.key, 0)
        pairs = create_pairs(i, pool, cfg, seeded_rng(doc_seed), counts)
        inst = mask_pairs(pairs, tables, cfg, doc_seed, counts)
        counts.update(instance_counters(inst, "train", tables.mask_id))
        out.append((pairs, inst))
    return out, counts


def words_of(row: np.ndarray, tables) -> list[np.ndarray]:
    """Positions of each whole word of a row: an ordinary token that is no "##" piece, or follows a
    special token, starts a word; the "##" pieces after it belong to it."""
    ordinary = ~tables.is_special[row]
    words: list[list[int]] = []
    for i in np.flatnonzero(ordinary):
        if tables.is_continuation[row[i]] and i > 0 and ordinary[i - 1]:
            words[-1].append(int(i))
        else:
            words.append([int(i)])
    return [np.array(w) for w in words]


def originals(pairs, tables):
    rows = []
    for p in pairs:
        parts = [[tables.cls_id], p.tokens_a, [tables.sep_id]] + (
            [p.tokens_b, [tables.sep_id]] if p.tokens_b is not None else []
        )
        rows.append(np.concatenate(parts).astype(np.int64))
    return rows


def rows_of(inst):
    off = np.concatenate(([0], np.cumsum(inst.lengths)))
    moff = np.concatenate(([0], np.cumsum(inst.num_masked)))
    for r in range(len(inst)):
        yield (
            inst.input_ids[off[r] : off[r + 1]].astype(np.int64),
            inst.masked_positions[moff[r] : moff[r + 1]].astype(np.int64),
            inst.masked_labels[moff[r] : moff[r + 1]].astype(np.int64),
        )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scheme=st.sampled_from(["token", "whole-word", "span"]),
    mode=st.sampled_from(["nsp", "none"]),
    prob=st.sampled_from([0.15, 0.4]),
)
def test_mask_invariants(tables, wordpiece, seed, scheme, mode, prob):
    cfg = BuildConfig(
        mask_scheme=scheme, next_sentence=mode, masked_lm_prob=prob, max_seq_length=64, max_predictions_per_seq=12
    )
    wwm = scheme != "token"
    vocab_ids = np.flatnonzero(~tables.is_special)[:3000] if wwm else None
    results, _ = masked_instances(tables, cfg, seed, n_docs=8, vocab_ids=vocab_ids)
    for pairs, inst in results:
        assert inst.input_ids.dtype == np.uint16 and inst.masked_positions.dtype == np.uint8
        for orig, (shown, pos, lab) in zip(originals(pairs, tables), rows_of(inst)):
            assert len(shown) == len(orig)
            assert np.all(np.diff(pos) > 0), "ascending, unique"
            assert not tables.is_special[orig[pos]].any(), "never on special tokens"
            assert np.array_equal(lab, orig[pos]), "labels are the original tokens"
            untouched = np.ones(len(orig), bool)
            untouched[pos] = False
            assert np.array_equal(shown[untouched], orig[untouched])
            random = (shown[pos] != tables.mask_id) & (shown[pos] != lab)
            assert not tables.is_special[shown[pos][random]].any(), "random replacements are ordinary tokens"
            n_cand = int((~tables.is_special[orig]).sum())
            k = min(cfg.max_predictions_per_seq, max(1, round(n_cand * prob))) if n_cand else 0
            if wwm:
                words = words_of(orig, tables)
                chosen = np.zeros(len(orig), bool)
                chosen[pos] = True
                assert all(chosen[w].all() or not chosen[w].any() for w in words), "words masked whole"
                # Words (or spans, clipped to the words that fit) are taken in random order while they
                # fit: the budget left over is smaller than the word that did not fit (or nothing is left).
                left = k - len(pos)
                assert left >= 0
                assert left == 0 or any(len(w) > left for w in words if not chosen[w].any())
            else:
                assert len(pos) == k


PLAY, ING, ED = 2377, 2075, 2098  # "play", "##ing", "##ed" in bert-base-uncased


@pytest.mark.parametrize(
    "word, words_a, words_b, prob, max_predictions, k, masked",
    [
        ([PLAY], 4, 6, 0.15, 20, 2, 2),  # 10 candidates: round(1.5) = 2
        ([PLAY, ING], 4, 6, 0.15, 20, 3, 2),  # 20: k = 3, one 2-piece word fits, the next does not
        ([PLAY, ING, ED], 4, 6, 0.15, 20, 4, 3),  # 30: round(4.5) = 4 (half to even), one word
        ([PLAY, ING, ED], 8, 12, 0.15, 20, 9, 9),  # 60: k = 9, exactly three words
        ([PLAY, ING, ED], 8, 12, 0.5, 20, 20, 18),  # 60: k capped at 20, six words
        ([PLAY, ING], 2, 3, 0.99, 20, 10, 10),  # round(9.9): everything
    ],
)
def test_whole_word_mask_takes_whole_words_up_to_the_budget(
    tables, word, words_a, words_b, prob, max_predictions, k, masked
):
    """Words of one size s: the rule masks floor(k / s) whole words, whatever order they are drawn in."""
    cfg = BuildConfig(do_whole_word_mask=True, masked_lm_prob=prob, max_predictions_per_seq=max_predictions)
    pair = Pair(np.array(word * words_a, np.int64), np.array(word * words_b, np.int64), NEXT, False)
    n_cand = len(word) * (words_a + words_b)
    assert k == min(max_predictions, max(1, int(np.rint(n_cand * prob))))  # the budget, as masking.py states it
    assert masked == (k // len(word)) * len(word)
    for seed in range(25):
        counts = Counter()
        inst = mask_pairs([pair, pair], tables, cfg, document_seed(seed, "doc", 0), counts)
        assert counts["mask_candidates"] == 2 * n_cand
        kinds = instance_counters(inst, "train", tables.mask_id)
        assert kinds[KIND_MASK] + kinds[KIND_RANDOM] + kinds[KIND_KEPT] == 2 * masked
        [orig, _] = originals([pair, pair], tables)
        for _, pos, lab in rows_of(inst):
            assert len(pos) == masked
            assert np.array_equal(lab, orig[pos])
            chosen = np.zeros(len(orig), bool)
            chosen[pos] = True
            words = words_of(orig, tables)
            assert len(words) == words_a + words_b and all(len(w) == len(word) for w in words)
            assert sum(chosen[w].all() for w in words) == masked // len(word)
            assert all(chosen[w].all() or not chosen[w].any() for w in words), "words masked whole"


def test_a_piece_after_a_special_token_starts_a_word(tables):
    # A truncated front can leave B starting with "##ing": it is a word of its own, not glued to [SEP].
    cfg = BuildConfig(do_whole_word_mask=True, masked_lm_prob=0.99)  # all 5 candidates
    pair = Pair(np.array([PLAY, ING], np.int64), np.array([ING, ED, PLAY], np.int64), NEXT, False)
    row = originals([pair], tables)[0]  # [CLS] play ##ing [SEP] ##ing ##ed play [SEP]
    assert [w.tolist() for w in words_of(row, tables)] == [[1, 2], [4, 5], [6]]
    inst = mask_pairs([pair], tables, cfg, document_seed(0, "doc", 0), Counter())
    [(_, pos, lab)] = rows_of(inst)
    assert pos.tolist() == [1, 2, 4, 5, 6] and lab.tolist() == [PLAY, ING, ING, ED, PLAY]


@pytest.mark.parametrize("wwm", [False, True])
def test_a_documents_masks_do_not_depend_on_its_batch_neighbours(tables, wordpiece, wwm):
    cfg = BuildConfig(do_whole_word_mask=wwm, max_seq_length=64, max_predictions_per_seq=12)
    pool = make_pool(3, 5, max_len=30)
    vocab_ids = np.flatnonzero(~tables.is_special)[:3000]  # with "##" pieces, so words have several pieces
    for d in pool:
        d.ids = vocab_ids[np.random.default_rng(len(d.ids)).integers(0, len(vocab_ids), size=len(d.ids))]

    def document(i):
        seed = document_seed(21, pool[i].key, 0)
        return create_pairs(i, pool, cfg, seeded_rng(seed), Counter()), seed

    alone_counts, batch_counts = Counter(), Counter()
    alone = [mask_documents([document(i)], tables, cfg, alone_counts) for i in range(len(pool))]
    batch = mask_documents([document(i) for i in range(len(pool))], tables, cfg, batch_counts)
    assert batch_counts == alone_counts
    batch_rows = list(rows_of(batch))
    first = 0
    for inst in alone:
        n = len(inst)
        assert n > 0
        for (x_ids, x_pos, x_lab), (y_ids, y_pos, y_lab) in zip(rows_of(inst), batch_rows[first : first + n]):
            assert np.array_equal(x_ids, y_ids) and np.array_equal(x_pos, y_pos) and np.array_equal(x_lab, y_lab)
        assert np.array_equal(inst.a_len, batch.a_len[first : first + n])
        assert np.array_equal(inst.next_sentence_label, batch.next_sentence_label[first : first + n])
        assert np.array_equal(inst.order_key, batch.order_key[first : first + n])
        first += n
    assert first == len(batch)


def test_masking_is_deterministic(tables):
    cfg = BuildConfig()
    a, _ = masked_instances(tables, cfg, 5)
    b, _ = masked_instances(tables, cfg, 5)
    for (_, x), (_, y) in zip(a, b):
        assert np.array_equal(x.input_ids, y.input_ids) and np.array_equal(x.order_key, y.order_key)
    c, _ = masked_instances(tables, cfg, 6)
    assert not all(np.array_equal(x.input_ids, y.input_ids) for (_, x), (_, y) in zip(a, c))


def test_mask_rates_on_a_large_sample(tables):
    _, counts = masked_instances(tables, BuildConfig(), 11, n_docs=600)
    masked = counts[KIND_MASK] + counts[KIND_RANDOM] + counts[KIND_KEPT]
    assert masked > 20_000
    assert abs(masked / counts["mask_candidates"] - 0.15) < 0.005  # round(n * p) per row
    for kind, p in ((KIND_MASK, 0.8), (KIND_RANDOM, 0.1), (KIND_KEPT, 0.1)):
        assert abs(counts[kind] / masked - p) <= binomial_halfwidth(masked, p), kind


# --- word starts from the tokenizer (BPE, Unigram): carried by documents and pairs, used by assemble ---


@pytest.mark.parametrize("mode", ["nsp", "sop", "none"])
def test_pairs_slice_word_starts_exactly_where_they_slice_ids(mode):
    # a flag that follows from the id, so any slice of a document can be checked against its ids
    cfg = BuildConfig(next_sentence=mode, max_seq_length=32)
    pool = make_pool(7, 12, max_len=40)
    for d in pool:
        d.word_starts = d.ids % 3 == 0
    counts, pairs = Counter(), []
    for i, doc in enumerate(pool):
        pairs += create_pairs(i, pool, cfg, document_rng(0, doc.key, 0), counts)
    assert counts["tokens_truncated_away"] > 0
    if mode != "none":
        assert any(p.label == RANDOM for p in pairs)
    for p in pairs:
        assert np.array_equal(p.starts_a, p.tokens_a % 3 == 0)
        if mode == "none":
            assert p.tokens_b is None and p.starts_b is None
        else:
            assert np.array_equal(p.starts_b, p.tokens_b % 3 == 0)


def test_assemble_takes_word_starts_from_the_pairs_and_from_the_id_table_otherwise(tables):
    from corpusgen.masking import assemble

    a, b = np.array([2000, 2001, 2002]), np.array([2003, 2004])
    # a truncated front (A's first piece continues a word): it still starts one after [CLS]
    pair = Pair(a, b, NEXT, False, starts_a=np.array([False, False, True]), starts_b=np.array([True, False]))
    seq = assemble([[pair]], tables)
    assert seq.word_start.tolist() == [False, True, False, True, False, True, False, False]
    # no flags (WordPiece): BERT's rule, a piece that is no "##" continuation or follows no candidate
    ids = np.array([2000, 2015, 2002, 102, 2003])  # to ##s he [SEP] is
    assert tables.is_continuation[2015] and not tables.is_continuation[[2000, 2002, 2003]].any()
    seq = assemble([[Pair(ids, None, -100, False)]], tables)
    assert seq.word_start.tolist() == [False, True, False, True, False, True, False]
    # pairs without flags beside pairs with them (None: derive from the id table)
    seq = assemble([[pair], [Pair(ids, None, -100, False)]], tables)
    assert seq.word_start.tolist() == [False, True, False, True, False, True, False, False] + [
        False, True, False, True, False, True, False,
    ]  # fmt: skip


def test_whole_word_masking_on_bpe_picks_whole_words_of_the_tokenizer():
    from corpusgen.masking import assemble
    from corpusgen.split import split_sentences
    from corpusgen.tokenizer import SubwordTokenizer, VocabFile, tokenize_documents
    from tests.conftest import BPE_TOKENIZER, DATA

    tok = SubwordTokenizer(VocabFile.read(BPE_TOKENIZER))
    tables = VocabTables.from_tokenizer(tok)
    texts = (DATA / "sample_text.txt").read_text().split("\n\n")
    sentences = [split_sentences(t, "en", "auto") for t in texts if t.strip()]
    cfg = BuildConfig(do_whole_word_mask=True, max_seq_length=64, masked_lm_prob=0.3)
    counts = Counter()
    pool = [
        TokenizedDocument(f"{i:032x}", ids, bounds, word_starts=starts)
        for i, (_, ids, bounds, starts) in enumerate(
            tokenize_documents([""] * len(sentences), sentences, tok, 61, counts)
        )
    ]
    multi_piece_words = 0
    for i, doc in enumerate(pool):
        pairs = create_pairs(i, pool, cfg, document_rng(1, doc.key, 0), counts)
        inst = mask_pairs(pairs, tables, cfg, document_seed(1, doc.key, 0), counts)
        seq = assemble([pairs], tables)
        cand = ~tables.is_special[seq.ids]
        for r, (_, pos, _) in enumerate(rows_of(inst)):
            lo, hi = seq.row_start[r], seq.row_start[r] + seq.lengths[r]
            word = np.cumsum(seq.word_start[lo:hi])  # word number of every position
            chosen = np.zeros(hi - lo, dtype=bool)
            chosen[pos] = True
            for w in np.unique(word[chosen]):
                in_word = (word == w) & cand[lo:hi]
                assert chosen[in_word].all(), "a chosen word is chosen whole"
                multi_piece_words += int(in_word.sum() > 1)
    assert multi_piece_words > 20


def test_document_rng_is_the_stream_of_philox_keyed_by_the_hash():
    """The cheap construction gives exactly ``Philox(key=...)``'s stream (golden builds depend on it)."""
    import hashlib

    digest = hashlib.blake2b(b"7:abc:3", digest_size=16).digest()
    reference = np.random.Generator(np.random.Philox(key=np.frombuffer(digest, dtype=np.uint64)))
    rng = document_rng(7, "abc", 3)
    assert np.array_equal(rng.random(9), reference.random(9))
    assert np.array_equal(rng.integers(0, 1000, 9), reference.integers(0, 1000, 9))
    assert rng.binomial(17, 0.5) == reference.binomial(17, 0.5)
    assert not np.array_equal(document_rng(7, "abc", 4).random(4), document_rng(7, "abc", 3).random(4))
