import random
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusgen.neardup import (
    NearDupConfig,
    candidate_probability,
    estimate_jaccard,
    lsh_band_keys,
    lsh_params,
    minhash_signature,
    near_duplicates_to_drop,
    shingle_hashes,
)

FOX = "The quick brown fox jumps over the lazy dog near the river bank."

ARTICLE = (
    "Residents of Millbrook will be able to borrow tools as well as books from next month, after the town "
    "library secured funding for what it calls a library of things. The scheme, which opens on the first of "
    "June, will lend out drills, ladders, pressure washers and sewing machines for up to a week at a time. "
    "Members pay nothing to join, although a small deposit is taken for the most expensive items. Librarian "
    "Grace Holloway said the idea came from readers themselves, who kept buying tools they used only once. "
    "The council has agreed to review the project after a year, and it hopes that other branches will follow "
    "if demand is strong enough. Volunteers will check every item when it comes back and repair what they can."
)


def test_golden_signature_is_stable_across_versions_and_machines():
    # If this changes, every stored signature and every near-dup decision of past builds changes too.
    sig = minhash_signature(FOX, num_perm=8, ngram=3, seed=0)
    assert sig.dtype == np.uint32
    assert sig.tolist() == [139442155, 422589222, 484574288, 302185437, 763259603, 27887600, 484212367, 1226798049]
    assert lsh_band_keys(sig, 2, 4) == [b"\x00\x00\x99\x84{aB\x9f\x97v", b"\x00\x01\x91\xd0\xac\xce\xfd\xa3\xd6<"]


def test_signature_shape_seed_and_determinism():
    a = minhash_signature(ARTICLE)
    assert a.shape == (128,) and a.dtype == np.uint32
    assert np.array_equal(a, minhash_signature(ARTICLE))
    assert not np.array_equal(a, minhash_signature(ARTICLE, seed=1))
    assert minhash_signature(ARTICLE, num_perm=64).shape == (64,)


def test_case_and_punctuation_do_not_matter_but_word_order_does():
    assert np.array_equal(minhash_signature("Hello, World! How are you?"), minhash_signature("hello world how are you"))
    assert (
        estimate_jaccard(
            minhash_signature("one two three four five six"), minhash_signature("six five four three two one")
        )
        == 0.0
    )


def test_short_and_empty_texts():
    assert len(shingle_hashes("just three words", ngram=5)) == 1
    assert len(shingle_hashes("", ngram=5)) == 0
    assert minhash_signature("  ...  ").tolist() == [0xFFFFFFFF] * 128


def test_cjk_characters_are_words():
    assert len(shingle_hashes("图书馆借工具", ngram=2)) == 5


def test_small_edit_is_a_near_duplicate_and_a_different_text_is_not():
    edited = ARTICLE.replace("next month", "next week").replace("Volunteers", "Staff")
    other = (
        "The river Wend burst its banks on Tuesday night, flooding twelve houses on Ferry Row and closing the "
        "station road for most of Wednesday while pumps cleared the water from the underpass."
    )
    assert estimate_jaccard(minhash_signature(ARTICLE), minhash_signature(edited)) >= 0.8
    assert estimate_jaccard(minhash_signature(ARTICLE), minhash_signature(other)) < 0.1


def _true_jaccard(a: str, b: str, ngram: int = 5) -> float:
    sa, sb = set(shingle_hashes(a, ngram).tolist()), set(shingle_hashes(b, ngram).tolist())
    return len(sa & sb) / len(sa | sb)


def test_estimate_tracks_true_jaccard_within_sampling_error():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(5000)]
    errors = []
    for _ in range(40):
        base = [rng.choice(vocab) for _ in range(300)]
        other = list(base)
        for i in rng.sample(range(300), rng.randint(0, 120)):
            other[i] = rng.choice(vocab)
        a, b = " ".join(base), " ".join(other)
        errors.append(estimate_jaccard(minhash_signature(a), minhash_signature(b)) - _true_jaccard(a, b))
    errors = np.array(errors)
    # Standard error of a 128-permutation estimate is at most 0.5/sqrt(128) = 0.044.
    assert np.abs(errors).max() < 4 * 0.045
    assert abs(errors.mean()) < 0.03  # unbiased


def test_band_keys():
    sig = minhash_signature(ARTICLE)
    keys = lsh_band_keys(sig, 16, 8)
    assert len(keys) == 16 and len(set(keys)) == 16
    assert all(len(k) == 10 and int.from_bytes(k[:2], "big") == i for i, k in enumerate(keys))
    edited = minhash_signature(ARTICLE.replace("Volunteers", "Staff"))
    assert set(keys) & set(lsh_band_keys(edited, 16, 8))
    with pytest.raises(ValueError, match="exceeds the signature length"):
        lsh_band_keys(sig, 17, 8)


def _sig(values):
    return np.array(values, dtype=np.uint32)


def test_drop_keeps_smallest_key_of_each_cluster():
    a = _sig([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    a_near = _sig([1, 2, 3, 4, 5, 6, 7, 8, 9, 99])  # 0.9 similar to a
    b = _sig([50, 51, 52, 53, 54, 55, 56, 57, 58, 59])
    b_same = b.copy()
    group = [("doc-c", a_near), ("doc-a", a), ("doc-z", b), ("doc-b", b_same), ("doc-a", a)]
    assert near_duplicates_to_drop(group, threshold=0.8) == ["doc-c", "doc-z"]
    assert near_duplicates_to_drop(group, threshold=0.95) == ["doc-z"]
    assert near_duplicates_to_drop([("only", a)]) == []
    assert near_duplicates_to_drop([]) == []


def test_clusters_are_connected_components():
    # x~y and y~z but not x~z: one cluster, x kept.
    x = _sig([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    y = _sig([1, 2, 3, 4, 5, 6, 7, 8, 0, 0])
    z = _sig([1, 2, 3, 4, 5, 6, 0, 0, 0, 0])
    assert estimate_jaccard(x, z) < 0.8
    assert near_duplicates_to_drop([("z", z), ("y", y), ("x", x)], threshold=0.8) == ["y", "z"]


@settings(max_examples=50, deadline=None)
@given(st.randoms(use_true_random=False))
def test_drop_set_does_not_depend_on_input_order(rnd):
    base = np.arange(32, dtype=np.uint32)
    group = []
    for i in range(12):
        sig = base.copy()
        changed = rnd.sample(range(32), rnd.randint(0, 12))
        sig[changed] += 1000 + i
        group.append((f"doc{i:02d}", sig))
    expected = near_duplicates_to_drop(group, threshold=0.75)
    rnd.shuffle(group)
    assert near_duplicates_to_drop(group, threshold=0.75) == expected


def test_band_grouping_union_equals_global_clusters():
    """Simulate the Beam step (group by band key, decide per group, union the drops) and compare with
    connected components over all pairs computed at once."""
    rng = random.Random(11)
    vocab = [f"w{i}" for i in range(3000)]
    texts = {}
    for family in range(8):
        base = [rng.choice(vocab) for _ in range(1000)]
        for member in range(rng.randint(1, 4)):
            words = list(base)
            for i in rng.sample(range(1000), rng.choice([0, 2, 5, 300])):
                words[i] = rng.choice(vocab)
            texts[f"f{family}-m{member}-{rng.random():.6f}"] = " ".join(words)
    cfg = NearDupConfig()
    sigs = {k: minhash_signature(t, cfg.num_perm, cfg.ngram, cfg.seed) for k, t in texts.items()}
    groups = defaultdict(list)
    for key, sig in sigs.items():
        for band_key in lsh_band_keys(sig, cfg.bands, cfg.rows):
            groups[band_key].append((key, sig))
    dropped = set()
    for members in groups.values():
        if len(members) > 1:
            dropped.update(near_duplicates_to_drop(members, cfg.threshold))
    assert dropped == set(near_duplicates_to_drop(list(sigs.items()), cfg.threshold))
    assert dropped  # the families with small edits do collapse


def test_s_curve_and_parameter_choice():
    assert candidate_probability(0.8, 16, 8) > 0.94
    assert candidate_probability(0.5, 16, 8) < 0.07
    probs = [candidate_probability(s / 10, 16, 8) for s in range(11)]
    assert probs == sorted(probs)
    bands, rows = lsh_params(0.8, 64)
    assert bands * rows <= 64
    assert candidate_probability(0.8, bands, rows) > candidate_probability(0.6, bands, rows)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bands": 20, "rows": 8}, "exceeds num_perm=128"),
        ({"threshold": 0.0}, "threshold"),
        ({"ngram": 0}, "ngram"),
        ({"num_perm": 0}, "positive"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NearDupConfig(**kwargs)
