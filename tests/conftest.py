"""Shared fixtures: the bundled vocabulary and corpus, and one build of the bundled corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpusgen.config import BuildConfig
from corpusgen.tokenizer import SubwordTokenizer, VocabFile

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "corpusgen" / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BPE_TOKENIZER = FIXTURES / "tokenizers" / "bpe-2000.json"  # trained by `corpusgen vocab --model bpe`
UNIGRAM_TOKENIZER = FIXTURES / "tokenizers" / "unigram-2000.json"


@pytest.fixture(scope="session")
def vocab_file() -> VocabFile:
    return VocabFile.read(DATA / "bert-base-uncased-vocab.txt")


@pytest.fixture(scope="session")
def wordpiece(vocab_file) -> SubwordTokenizer:
    return SubwordTokenizer(vocab_file)


@pytest.fixture(scope="session")
def enwiki_build(tmp_path_factory, vocab_file) -> Path:
    """The bundled 3,000-article Wikipedia sample built once at the defaults (dupe_factor 2)."""
    from pipelines.build import run_build

    out = tmp_path_factory.mktemp("enwiki_build")
    run_build([str(DATA / "enwiki_sample.jsonl.zst")], str(out), BuildConfig(dupe_factor=2), vocab_file)
    return out


@pytest.fixture(scope="session")
def enwiki_manifest(enwiki_build) -> dict:
    return json.loads((enwiki_build / "manifest.json").read_text())
