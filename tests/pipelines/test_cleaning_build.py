"""Builds from messy input: raw HTML pages, legacy encodings, quality filters, near-duplicates, removed/."""

import gzip
import json

from corpusgen import quality, stats
from corpusgen.clean import clean_text, content_key
from corpusgen.config import BuildConfig
from corpusgen.neardup import NearDupConfig
from corpusgen.quality import QualityConfig
from corpusgen.shards import read_shard
from corpusgen.validate import validate_build
from pipelines.build import run_build
from tests.conftest import FIXTURES


def instance_text(build_dir, wordpiece) -> str:
    """All instances' tokens (masks undone from the labels), joined: what the model would read."""
    m = json.loads((build_dir / "manifest.json").read_text())
    words = []
    for e in m["shards"]:
        for row in read_shard(build_dir / e["path"]).to_pylist():
            ids = list(row["input_ids"])
            for p, label in zip(row["masked_positions"], row["masked_labels"]):
                ids[p] = label
            words += wordpiece.decode_tokens(ids)
    return " ".join(words).replace(" ##", "")


def test_html_pages_become_visible_text_only(tmp_path, vocab_file, wordpiece):
    src = tmp_path / "pages"
    src.mkdir()
    page = (FIXTURES / "web" / "news_article.html").read_text(encoding="utf-8")
    (src / "news.html").write_text(page, encoding="utf-8")
    # the same page as a JSONL record (crawls often store raw HTML in a text field), in Windows-1252
    (src / "blog.html").write_bytes((FIXTURES / "web" / "blog_tables.html").read_text(encoding="utf-8").encode("utf-8"))
    out = tmp_path / "out"
    run_build(
        sorted(str(p) for p in src.iterdir()), str(out), BuildConfig(dupe_factor=1, heldout_fraction=0.0), vocab_file
    )
    m = json.loads((out / "manifest.json").read_text())
    assert m["stats"]["cleaning"]["html_documents"] == 2
    text = instance_text(out, wordpiece)
    assert "footbridge" in text
    for markup in ("<", ">", "script", "stylesheet", "cookie", "font - family", "& amp ;", "ld + json"):
        assert markup not in text, markup
    assert validate_build(out)["ok"]


def test_legacy_encoded_pages_are_decoded(tmp_path, vocab_file, wordpiece):
    body = (
        "<html><head><meta http-equiv='Content-Type' content='text/html; charset=windows-1251'></head><body>"
        "<p>Москва является столицей России. Это крупнейший город страны.</p>"
        "<p>Город расположен на реке Москве. Он основан в двенадцатом веке.</p></body></html>"
    )
    (tmp_path / "ru.html").write_bytes(body.encode("cp1251"))
    text = "Die Straße führt über die Brücke. Dort stehen schöne Häuser.\n\nÄrzte empfehlen Bewegung. Große Städte wachsen.\n"
    (tmp_path / "de.txt").write_bytes((text * 3).encode("latin-1"))
    out = tmp_path / "out"
    run_build(
        [str(tmp_path / "ru.html"), str(tmp_path / "de.txt")],
        str(out),
        BuildConfig(dupe_factor=1, heldout_fraction=0.0, dedup=False),
        vocab_file,
    )
    m = json.loads((out / "manifest.json").read_text())
    assert m["stats"]["cleaning"]["legacy_encoding_files"] == 2
    assert m["stats"]["drops"] == {}
    words = instance_text(out, wordpiece)
    # uncased BERT strips accents: the words must come back as the right letters, not mojibake
    # (accents are stripped, ß is not: "führt" reads "fuhrt", "Straße" stays "straße")
    for word in ("москва", "столицеи", "straße", "fuhrt", "brucke", "große", "stadte"):
        assert word in words, word
    assert "Ã" not in words and "Ð" not in words


def test_quality_near_dedup_and_removed_output(tmp_path, vocab_file, wordpiece):
    good = (
        "The river flows through the old town and past the mill. Fishermen gather on the banks at dawn "
        "to cast their lines into the slow water. In the afternoon, children from the school walk along "
        "the path and count the boats that pass under the stone bridge. The council has planned a new "
        "park on the eastern side of the river, with trees, benches and a small playground for families."
    )
    near = good.replace("small playground", "large playground")
    spam = "\n".join(["Click here for deals #### ... #### !!! ###"] * 12)
    short = "Too short. Not kept at all."
    docs = [good, near, spam, short]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    cfg = BuildConfig(
        dupe_factor=1,
        heldout_fraction=0.0,
        quality=QualityConfig(min_sentences=2),
        near_dedup=NearDupConfig(threshold=0.7),
        write_removed=True,
    )
    out = tmp_path / "out"
    run_build([str(src)], str(out), cfg, vocab_file)
    m = json.loads((out / "manifest.json").read_text())
    too_short = stats.QUALITY_PREFIX + quality.TOO_SHORT
    mean_word_length = stats.QUALITY_PREFIX + quality.MEAN_WORD_LENGTH
    assert m["stats"]["drops"] == {stats.NEAR_DUPLICATE_DOCUMENT: 1, too_short: 1, mean_word_length: 1}
    assert m["stats"]["documents"]["kept"] == 1
    # A near-duplicate cluster keeps its smallest content key (corpusgen.neardup), whatever the input order.
    kept, dropped = sorted((good, near), key=lambda d: content_key(clean_text(d)))
    removed = [json.loads(line) for f in sorted((out / "removed").glob("*.jsonl.gz")) for line in gzip.open(f, "rt")]
    assert {r["text"]: r["reason"] for r in removed} == {
        dropped: stats.NEAR_DUPLICATE_DOCUMENT,
        spam: mean_word_length,
        short: too_short,
    }
    assert len(removed) == 3
    words = {good: "small playground", near: "large playground"}
    text = instance_text(out, wordpiece)
    assert words[kept] in text and words[dropped] not in text
    assert validate_build(out)["ok"], "removed/ sits beside shards/ and is not a defect"
