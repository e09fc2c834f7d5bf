"""corpusgen vocab learns from exactly the text a build tokenizes, and needs no Beam."""

import subprocess
import sys
from collections import Counter

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from corpusgen import stats
from corpusgen.clean import content_key
from corpusgen.config import BuildConfig
from corpusgen.intermediate import decode_pool_documents
from corpusgen.tokenizer import VocabFile
from corpusgen.vocab import iter_documents, train_vocab
from pipelines.transforms import MAIN, ReadDocuments, StagedVocab, TokenizeChunks, read_file
from tests.conftest import DATA, ROOT


def vocab_file():
    return VocabFile.read(DATA / "bert-base-uncased-vocab.txt")


PAGE = (
    "<html><head><meta charset='utf-8'><style>.menu{color:red}</style></head><body>"
    "<div class='menu'><a href='/'>Home</a></div>"
    "<p>Caf\u00c3\u00a9 culture grew in the city.</p><p>People met there daily.</p></body></html>"
)


def inputs(tmp_path):
    (tmp_path / "page.html").write_text(PAGE)
    (tmp_path / "a.jsonl").write_text('{"text": "Decomposed cafe\\u0301 text. It has two sentences."}\n{"text": 5}\n')
    (tmp_path / "b.txt").write_text("Plain  text\u00a0here. A second one.\n\nSecond document. Also two.\n")
    return sorted(str(p) for p in tmp_path.iterdir())


def test_vocab_reads_and_cleans_as_build_does(tmp_path):
    (tmp_path / "in").mkdir()
    files = inputs(tmp_path / "in")
    cfg = BuildConfig(heldout_fraction=0.0)
    counts = Counter()
    docs = list(iter_documents(files, cfg, counts))
    assert sorted(docs) == [
        "Café culture grew in the city.\n\nPeople met there daily.",
        "Decomposed café text. It has two sentences.",
        "Plain text here. A second one.",
        "Second document. Also two.",
    ]
    assert counts[stats.NON_STRING_TEXT] == 1 and counts[stats.HTML_DOCUMENTS] == 1
    # The build keys each document by its cleaned text: the keys it tokenized are vocab's texts.
    work = tmp_path / "work"
    with BeamTestPipeline(runner="FnApiRunner", blocking=True) as p:
        read = p | beam.Create(list(enumerate(files))) | ReadDocuments(cfg, str(work))
        tokenized = read[MAIN] | TokenizeChunks(cfg, StagedVocab.written(vocab_file(), str(work)), str(work))
        keys = tokenized[MAIN] | beam.FlatMap(
            lambda tf: [d.doc.key for d in decode_pool_documents(read_file(tf["path"]), [0], 0, 2**64)]
        )
        assert_that(keys, equal_to([content_key(d) for d in docs]))


def test_vocab_drops_exact_duplicates_as_build_does(tmp_path):
    text = "The same article, copied. It appears three times."
    (tmp_path / "a.txt").write_text(f"{text}\n\nAnother article here. It is there once.\n")
    (tmp_path / "b.txt").write_text(f"{text.upper()}\n\n{text.replace(' ', '   ')}\n")  # case and spacing ignored
    files = sorted(str(p) for p in tmp_path.iterdir())
    counts = Counter()
    assert list(iter_documents(files, BuildConfig(), counts)) == [text, "Another article here. It is there once."]
    assert counts[stats.DUPLICATE_DOCUMENT] == 2
    assert len(list(iter_documents(files, BuildConfig(dedup=False), Counter()))) == 4


def test_vocab_from_html_has_no_markup(tmp_path):
    (tmp_path / "page.html").write_text(PAGE)
    out = tmp_path / "vocab.txt"
    result = train_vocab([str(tmp_path / "page.html")], str(out), BuildConfig(), vocab_size=120, min_frequency=1)
    tokens = set(out.read_text().split())
    assert result["documents"] == 1
    assert {"cafe", "culture", "daily"} <= tokens  # mojibake repaired, then lower-cased (BERT strips accents)
    assert not {"div", "href", "style", "menu", "home", "<", "ã"} & tokens


def test_vocab_imports_no_beam():
    code = "import sys, corpusgen.vocab; sys.exit('apache_beam' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT)}).returncode == 0


def test_a_trained_wordpiece_tokenizer_json_adds_bert_special_tokens(tmp_path):
    from tokenizers import Tokenizer

    (tmp_path / "in").mkdir()
    files = inputs(tmp_path / "in")
    out = tmp_path / "tokenizer.json"
    train_vocab(files, str(out), BuildConfig(), vocab_size=200, min_frequency=1)
    tok = Tokenizer.from_file(str(out))
    enc = tok.encode("plain text", "second")
    assert enc.tokens[0] == "[CLS]" and enc.tokens.count("[SEP]") == 2 and enc.tokens[-1] == "[SEP]"
    assert enc.type_ids == [0] * (enc.tokens.index("[SEP]") + 1) + [1] * (
        len(enc.tokens) - enc.tokens.index("[SEP]") - 1
    )


def test_a_unigram_vocabulary_too_small_for_the_characters_is_one_line_with_the_size(tmp_path):
    import pytest

    src = tmp_path / "zh.txt"
    chars = [chr(0x4E00 + i) for i in range(400)]  # 400 distinct Han characters
    src.write_text("\n\n".join("".join(chars[i : i + 40]) + "。" for i in range(0, 400, 40)) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"zh.txt: --vocab-size 100 cannot hold the input's 40\d distinct") as exc:
        train_vocab([str(src)], str(tmp_path / "u.json"), BuildConfig(), vocab_size=100, model="unigram")
    need = int(str(exc.value).rsplit(" ", 1)[-1])
    result = train_vocab([str(src)], str(tmp_path / "u.json"), BuildConfig(), vocab_size=need, model="unigram")
    assert result["vocab_size"] >= 400


def test_a_wordpiece_vocabulary_larger_than_asked_says_why(tmp_path):
    src = tmp_path / "zh.txt"
    src.write_text("".join(chr(0x4E00 + i) for i in range(300)) + "。\n", encoding="utf-8")
    result = train_vocab([str(src)], str(tmp_path / "v.txt"), BuildConfig(), vocab_size=100, min_frequency=1)
    assert result["vocab_size"] > 100
    (warning,) = result["warnings"]
    assert f"{result['vocab_size']} tokens, more than --vocab-size 100" in warning and "--limit-alphabet" in warning
