"""Builds over the larger real corpora in ../shared/data (skipped when it is absent)."""

import json

import pytest

from corpusgen.config import BuildConfig
from corpusgen.stats import binomial_halfwidth
from corpusgen.tokenizer import VocabFile
from corpusgen.validate import validate_build
from pipelines.build import run_build
from tests.conftest import SHARED_DATA

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not here")


@needs_shared
def test_chinese_wikipedia(tmp_path):
    vocab = VocabFile.read(SHARED_DATA / "vocab" / "bert-base-chinese-vocab.txt")
    out = tmp_path / "zh"
    run_build([str(SHARED_DATA / "zh" / "zhwiki_sample.jsonl")], str(out), BuildConfig(lang="zh", dupe_factor=1), vocab)
    m = json.loads((out / "manifest.json").read_text())
    s = m["stats"]
    assert s["documents"]["kept"] >= 60
    assert s["tokens"]["unk"] < 0.01 * s["tokens"]["kept"]
    assert s["sentences"]["kept"] > 3000
    assert abs(s["masking"]["masked_share"] - 0.15) < 0.005
    assert validate_build(out)["ok"]


@needs_shared
def test_wikitext_headings(tmp_path, vocab_file):
    out = tmp_path / "wt"
    cfg = BuildConfig(wikitext_headings=True, dupe_factor=1)
    run_build([str(SHARED_DATA / "wikitext-2" / "wiki.test.raw")], str(out), cfg, vocab_file)
    s = json.loads((out / "manifest.json").read_text())["stats"]
    assert s["documents"]["read"] == 62  # the test split's articles (62 top-level headings)
    assert s["other"]["wikitext_heading_lines"] > 500
    assert validate_build(out)["ok"]


@needs_shared
@pytest.mark.slow
def test_full_enwiki_extract(tmp_path, vocab_file):
    """61k documents (38k title-only stubs): rates, accounting and validation at scale, two workers."""
    out = tmp_path / "enwiki"
    src = SHARED_DATA / "enwiki" / "enwiki_wikiextractor_40files.jsonl.zst"
    run_build([str(src)], str(out), BuildConfig(dupe_factor=1), vocab_file, workers=2)
    s = json.loads((out / "manifest.json").read_text())["stats"]
    n = s["instances"]
    assert s["documents"]["read"] == 61_402
    assert abs(s["nsp"]["random_share"] - 0.5) <= binomial_halfwidth(n, 0.5)
    for kind, p in (("mask_share", 0.8), ("random_share", 0.1), ("kept_share", 0.1)):
        assert abs(s["masking"][kind] - p) <= binomial_halfwidth(s["masking"]["masked"], p)
    t = s["tokens"]
    assert t["covered"] + t["truncated_away"] == t["kept"]
    assert validate_build(out)["ok"]
