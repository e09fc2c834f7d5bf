"""corpusgen.tokenizer: vocabularies that cannot be used, cased/uncased detection, long-sentence cutting,
special tokens written in the text."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import numpy as np
import pytest

from corpusgen.tokenizer import (
    SPECIAL_TOKENS,
    SubwordTokenizer,
    VocabError,
    VocabFile,
    shared_tokenizer,
    split_long_sentence,
    tokenize_documents,
)
from tests.conftest import BPE_TOKENIZER, DATA, UNIGRAM_TOKENIZER

# ids 0-4 are the specials, in SPECIAL_TOKENS order
ORDINARY = ["a", "##b", "the", "cat", "sat", "##s"]
A, B, THE, CAT, SAT, S_ = range(5, 11)


def vocab_txt(tokens, name="vocab.txt") -> VocabFile:
    return VocabFile(name, ("\n".join(tokens) + "\n").encode("utf-8"))


def small() -> SubwordTokenizer:
    return SubwordTokenizer(vocab_txt([*SPECIAL_TOKENS, *ORDINARY]))


def tokenizer_json(tmp_path, lowercase: bool = True) -> VocabFile:
    """bert-base-uncased as a saved Hugging Face tokenizer (its special tokens are added tokens)."""
    from tokenizers import BertWordPieceTokenizer

    path = tmp_path / f"tokenizer-{lowercase}.json"
    BertWordPieceTokenizer(str(DATA / "bert-base-uncased-vocab.txt"), lowercase=lowercase).save(str(path))
    return VocabFile.read(path)


# --- vocabularies that cannot be used: one line naming the file and the fix ---------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "vocab.txt"
    with pytest.raises(VocabError) as err:
        VocabFile.read(path)
    assert str(err.value) == (
        f"{path}: cannot read vocabulary (No such file or directory); "
        "pass --vocab vocab.txt|tokenizer.json or train one with `corpusgen vocab`"
    )


def test_a_directory_is_not_a_vocabulary(tmp_path):
    with pytest.raises(VocabError) as err:
        VocabFile.read(tmp_path)
    assert str(err.value).startswith(f"{tmp_path}: cannot read vocabulary (Is a directory); pass --vocab")


def test_empty_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"")
    with pytest.raises(VocabError) as err:
        VocabFile.read(path)
    assert str(err.value) == f"{path}: only 0 tokens; pass a WordPiece vocab.txt (one token per line)"


@pytest.mark.parametrize(
    "data",
    [
        gzip.compress("\n".join([*SPECIAL_TOKENS, *ORDINARY]).encode()),  # a vocab.txt.gz given as vocab.txt
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncafé\n".encode("latin-1"),
    ],
    ids=["gzip", "png", "latin-1"],
)
def test_binary_or_non_utf8_file(tmp_path, data):
    path = tmp_path / "vocab.txt"
    path.write_bytes(data)
    with pytest.raises(VocabError) as err:
        VocabFile.read(path)
    assert str(err.value) == (f"{path}: vocabulary is not UTF-8 text; pass a WordPiece vocab.txt (one token per line)")


@pytest.mark.parametrize(
    "dropped, named",
    [
        (("[CLS]", "[SEP]", "[MASK]"), "[CLS], [SEP], [MASK]"),
        (("[MASK]",), "[MASK]"),
        (("[SEP]",), "[SEP]"),
    ],
)
def test_vocabulary_without_bert_specials(tmp_path, dropped, named):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(t for t in [*SPECIAL_TOKENS, *ORDINARY] if t not in dropped) + "\n")
    with pytest.raises(VocabError) as err:
        VocabFile.read(path)
    assert str(err.value) == (
        f"{path}: missing special token(s) {named}; a BERT vocabulary needs [PAD], [UNK], [CLS], [SEP], [MASK]"
    )


def test_too_few_tokens_and_duplicates_and_no_ordinary_tokens():
    with pytest.raises(VocabError, match=r"^vocab\.txt: only 5 tokens; pass a WordPiece vocab\.txt"):
        SubwordTokenizer(vocab_txt(SPECIAL_TOKENS))
    with pytest.raises(VocabError) as err:
        SubwordTokenizer(vocab_txt([*SPECIAL_TOKENS, "cat", "the", "cat"]))
    assert str(err.value) == "vocab.txt: token 'cat' appears twice; a vocab.txt must list each token once"
    with pytest.raises(VocabError) as err:
        SubwordTokenizer(vocab_txt([*SPECIAL_TOKENS, "[unused0]", "cat"]))
    assert str(err.value) == "vocab.txt: fewer than 2 ordinary tokens; nothing to draw random replacements from"


def test_bad_tokenizer_json():
    with pytest.raises(VocabError, match=r"^tokenizer\.json: not a valid tokenizer\.json \(.*\); save one with"):
        SubwordTokenizer(VocabFile("tokenizer.json", b'{"model": '))
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    word_level = Tokenizer(WordLevel(vocab={"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    with pytest.raises(VocabError) as err:
        SubwordTokenizer(VocabFile("tokenizer.json", word_level.to_str().encode()))
    assert (
        str(err.value)
        == "tokenizer.json: model type 'WordLevel', corpusgen needs a WordPiece, BPE or Unigram tokenizer"
    )


def test_a_tokenizer_json_whose_ids_leave_the_vocabulary_is_refused(tmp_path):
    spec = json.loads(tokenizer_json(tmp_path).data)
    spec["model"]["vocab"]["[MASK]"] = 99_999_999  # a 30,522-token vocabulary claiming 100 M ids
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] != "[MASK]"]
    with pytest.raises(VocabError, match=r"^big\.json: ids run up to 99999999 for 30522 tokens; .* 0\.\.30521"):
        SubwordTokenizer(VocabFile("big.json", json.dumps(spec).encode()))


def test_a_tokenizer_json_whose_added_token_takes_a_model_tokens_id_is_refused(tmp_path):
    spec = json.loads(tokenizer_json(tmp_path).data)
    del spec["model"]["vocab"]["[MASK]"]  # left among the added tokens only: tokenizers gives it a taken id
    with pytest.raises(VocabError, match=r"^m\.json: tokens .* and '\[MASK\]' share id \d+; each token needs an id"):
        SubwordTokenizer(VocabFile("m.json", json.dumps(spec).encode()))


def test_tokenizer_json_lowercase_must_agree_with_the_option(tmp_path):
    vf = tokenizer_json(tmp_path, lowercase=True)
    with pytest.raises(VocabError) as err:
        SubwordTokenizer(vf, do_lower_case=False)
    assert str(err.value) == (
        "tokenizer.json: its normalizer has lowercase=True, the build asked for do_lower_case=False; "
        "drop the option or fix the tokenizer"
    )
    assert SubwordTokenizer(vf, do_lower_case=True).do_lower_case is True
    assert SubwordTokenizer(vf).do_lower_case is True
    assert SubwordTokenizer(tokenizer_json(tmp_path, lowercase=False)).do_lower_case is False


def test_a_good_vocab_reads_with_its_tables(tmp_path):
    path = tmp_path / "my.vocab"
    # CRLF line ends are tolerated; U+2028 is a token of its own, not a line break
    path.write_bytes("\r\n".join([*SPECIAL_TOKENS, "[unused0]", *ORDINARY, "\u2028"]).encode() + b"\r\n")
    vf = VocabFile.read(path)
    assert vf.name == "vocab.txt" and vf.kind == "txt"
    wp = SubwordTokenizer(vf)
    assert wp.tokens == [*SPECIAL_TOKENS, "[unused0]", *ORDINARY, "\u2028"]
    assert (wp.pad_id, wp.unk_id, wp.cls_id, wp.sep_id, wp.mask_id) == (0, 1, 2, 3, 4)
    assert wp.is_special.tolist() == [True] * 6 + [False] * 7
    assert wp.is_continuation.tolist() == [False] * 7 + [True, False, False, False, True, False]
    assert wp.replacement_ids.tolist() == list(range(6, 13))
    assert wp.replacement_rank.tolist() == [-1] * 6 + list(range(7))


def test_the_tables_pickle_small_and_whole():
    import pickle

    wp = SubwordTokenizer(VocabFile.read(DATA / "bert-base-uncased-vocab.txt"))
    data = pickle.dumps(wp.tables)
    assert len(data) < 10_000  # two bit sets, not four arrays of 30,522 (540 KB)
    back = pickle.loads(data)
    assert (back.cls_id, back.sep_id, back.mask_id, back.vocab_size) == (101, 102, 103, 30522)
    for name in ("is_special", "is_continuation", "replacement_ids", "replacement_rank"):
        a, b = getattr(wp.tables, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name


def test_a_shared_tokenizer_is_built_once_per_vocabulary_and_case():
    txt = vocab_txt([*SPECIAL_TOKENS, *ORDINARY, "Cat"])  # 1 upper-case piece of 12: guessed cased
    guessed = shared_tokenizer(txt)
    assert guessed.do_lower_case is False
    assert shared_tokenizer(txt) is guessed and shared_tokenizer(txt, False) is guessed
    lowered = shared_tokenizer(txt, True)  # asked for: another tokenizer, and the guess still the guess's
    assert lowered is not guessed and lowered.do_lower_case is True
    assert shared_tokenizer(txt, True) is lowered and shared_tokenizer(txt) is guessed
    other = vocab_txt([*SPECIAL_TOKENS, *ORDINARY, "dog"])
    assert shared_tokenizer(other) is not guessed and shared_tokenizer(other).tokens[-1] == "dog"
    assert shared_tokenizer(txt) is guessed  # two vocabularies kept
    shared_tokenizer(vocab_txt([*SPECIAL_TOKENS, *ORDINARY, "cow"]))
    assert shared_tokenizer(other) is not shared_tokenizer(txt) and shared_tokenizer(txt) is not guessed  # then rebuilt


# --- cased or uncased, read from the vocabulary ----------------------------------------------------


def test_bundled_uncased_vocabulary_lowercases():
    wp = SubwordTokenizer(VocabFile.read(DATA / "bert-base-uncased-vocab.txt"))
    assert wp.do_lower_case is True
    assert wp.decode_tokens(wp.encode(["Hello World"])[0]) == ["hello", "world"]


def test_case_is_detected_at_one_percent_upper_case_pieces():
    # 99 lower-case pieces and one upper-case one: exactly 1% of 100 tokens -> cased (the rule is "< 1%").
    base = [*SPECIAL_TOKENS, "[FOO]", *(f"w{i}" for i in range(93))]  # bracketed tokens never count
    cased = SubwordTokenizer(vocab_txt([*base, "Cat"]))
    assert len(cased.tokens) == 100 and cased.do_lower_case is False
    assert cased.decode_tokens(cased.encode(["Cat cat"])[0]) == ["Cat", "[UNK]"]
    uncased = SubwordTokenizer(vocab_txt([*base, "Cat", "cat"]))  # 1 of 101: below 1% -> uncased
    assert uncased.do_lower_case is True
    assert uncased.decode_tokens(uncased.encode(["Cat cat"])[0]) == ["cat", "cat"]
    assert SubwordTokenizer(vocab_txt([*base, "Cat", "cat"]), do_lower_case=False).do_lower_case is False


# --- tokenizing documents ---------------------------------------------------------------------------


def test_encode_many_texts_at_once():
    wp = small()
    ids, lengths = wp.encode(["The cat sat", "cats", "dog"])
    assert ids.tolist() == [THE, CAT, SAT, CAT, S_, 1] and lengths.tolist() == [3, 2, 1]
    ids, lengths = wp.encode([])
    assert ids.dtype == np.int64 and ids.tolist() == [] and lengths.tolist() == []


@pytest.mark.parametrize(
    "length, limit, word_starts, ends",
    [
        (20, 8, [0, 3, 7, 12, 15, 18], [7, 15, 20]),  # slack 2: the cut moves back to the word start at 7
        (20, 8, [0], [8, 16, 20]),  # one long word: no start in reach, cut at the limit
        (25, 12, [0, 5, 10, 15, 20], [10, 20, 25]),  # slack 3: 12 -> 10, then 22 -> 20
        (12, 12, [0], [12]),  # fits: no cut
        (13, 12, [0, 12], [12, 13]),  # a start exactly at the limit is the cut
        (10, 4, [0, 3, 6, 9], [4, 8, 10]),  # slack 1: a cut never moves
    ],
)
def test_split_long_sentence_cuts_at_word_starts_within_a_quarter(length, limit, word_starts, ends):
    is_word_start = np.zeros(length, dtype=bool)
    is_word_start[word_starts] = True
    assert split_long_sentence(length, limit, is_word_start) == ends


def test_long_sentences_are_cut_at_word_starts_and_nothing_is_lost():
    wp = small()
    counts = Counter()
    word = "abbbb"  # a ##b ##b ##b ##b: 5 tokens
    out = tokenize_documents(
        ["doc1", "doc2"],
        [[word, " ".join([word] * 5), "  "], ["a" + "b" * 19]],
        wp,
        12,
        counts,
    )
    (k1, ids1, bounds1, starts1), (k2, ids2, bounds2, starts2) = out
    assert (k1, k2) == ("doc1", "doc2")
    assert ids1.dtype == np.uint16 and bounds1.dtype == np.int64
    assert starts1 is None and starts2 is None  # WordPiece: the "##" table tells
    assert ids1.tolist() == [A, B, B, B, B] * 6
    # the 25-token sentence becomes 10 + 10 + 5 tokens, each piece starting a word; the blank one is gone
    assert bounds1.tolist() == [0, 5, 15, 25, 30]
    # one 20-token word has no word start within reach of the limit: cut at the limit
    assert ids2.tolist() == [A] + [B] * 19 and bounds2.tolist() == [0, 12, 20]
    assert counts == {"long_sentences_cut": 2, "sentences_without_tokens": 1}


def test_special_tokens_in_text_are_ordinary_text(tmp_path):
    text = "[CLS] Hello [SEP] world [MASK] x [PAD] [UNK]"
    # A vocab.txt tokenizer knows no added tokens: the brackets are punctuation.
    wp = SubwordTokenizer(VocabFile.read(DATA / "bert-base-uncased-vocab.txt"))
    counts = Counter()
    [(_, ids, _, _)] = tokenize_documents(["k"], [[text]], wp, 100, counts)
    assert wp.decode_tokens(ids)[:4] == ["[", "cl", "##s", "]"]
    assert not np.isin(ids, [wp.cls_id, wp.sep_id, wp.mask_id, wp.pad_id, wp.unk_id]).any()
    assert counts == {}
    # A saved tokenizer matches them: they become [UNK] and are counted, so [CLS] A [SEP] B [SEP] stays intact.
    wj = SubwordTokenizer(tokenizer_json(tmp_path))
    counts = Counter()
    [(_, ids, bounds, _)] = tokenize_documents(["k"], [[text]], wj, 100, counts)
    assert wj.decode_tokens(ids) == ["[UNK]", "hello", "[UNK]", "world", "[UNK]", "x", "[UNK]", "[UNK]"]
    assert bounds.tolist() == [0, 8]
    assert counts == {"special_tokens_in_text": 4, "unk_tokens": 5}


def test_added_special_tokens_in_text_are_unknown_like_the_roles(tmp_path):
    from tokenizers import Tokenizer

    path = tmp_path / "added.json"
    tk = Tokenizer.from_str(tokenizer_json(tmp_path).data.decode())
    tk.add_special_tokens(["<|endoftext|>", "<ent>"])
    tk.save(str(path))
    wj = SubwordTokenizer(VocabFile.read(path))
    counts = Counter()
    [(_, ids, _, _)] = tokenize_documents(["k"], [["hello <ent> world <|endoftext|> [SEP] x"]], wj, 100, counts)
    assert wj.decode_tokens(ids) == ["hello", "[UNK]", "world", "[UNK]", "[UNK]", "x"]
    assert counts == {"special_tokens_in_text": 3, "unk_tokens": 3}


def _roberta_style(path, prefix_space: bool):
    """A byte-level BPE as RoBERTa saves one (``add_prefix_space`` False: "ĠThe" only after a space)."""
    from tokenizers import ByteLevelBPETokenizer

    tk = ByteLevelBPETokenizer(add_prefix_space=prefix_space)
    text = (DATA / "sample_text.txt").read_text(encoding="utf-8").splitlines()
    tk.train_from_iterator(
        text, vocab_size=600, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tk.save(str(path))
    return SubwordTokenizer(VocabFile.read(path))


def test_a_tokenizer_that_reads_the_space_before_a_word_sees_it_before_each_later_sentence(tmp_path):
    wp = _roberta_style(tmp_path / "roberta.json", prefix_space=False)
    assert wp.space_before_sentences
    sentences = ["The cat sat on the mat.", "The dog ran.", "Then it slept."]
    [(_, ids, bounds, _)] = tokenize_documents(["k"], [sentences], wp, 100, Counter())
    whole = wp.tokenizer.encode(" ".join(sentences), add_special_tokens=False).ids
    assert ids.tolist() == whole  # each sentence as in its running text: "ĠThe", not "T" "he"
    alone = wp.tokenizer.encode("The dog ran.", add_special_tokens=False).ids
    assert ids[bounds[1] : bounds[2]].tolist() != alone  # what the sentence alone would have been
    # no space where the text had none: Chinese sentences follow each other directly
    zh = ["我们今天去公园。", "天气很好。"]
    [(_, ids, _, _)] = tokenize_documents(["k"], [zh], wp, 100, Counter())
    assert ids.tolist() == wp.tokenizer.encode("".join(zh), add_special_tokens=False).ids
    # tokenizers that add a prefix space, and WordPiece, need nothing
    assert not _roberta_style(tmp_path / "prefixed.json", prefix_space=True).space_before_sentences
    assert not SubwordTokenizer(VocabFile.read(DATA / "bert-base-uncased-vocab.txt")).space_before_sentences
    assert not SubwordTokenizer(VocabFile.read(UNIGRAM_TOKENIZER)).space_before_sentences


def test_describe_is_the_manifest_entry(tmp_path):
    wj = SubwordTokenizer(tokenizer_json(tmp_path))
    assert wj.describe() == {
        "type": "wordpiece",
        "vocab_size": 30522,
        "do_lower_case": True,
        "pad_id": 0,
        "unk_id": 100,
        "cls_id": 101,
        "sep_id": 102,
        "mask_id": 103,
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }
    assert json.loads(wj.vocab.data)["model"]["type"] == "WordPiece"


def test_a_byte_order_mark_is_not_part_of_the_first_token(tmp_path):
    plain = (DATA / "bert-base-uncased-vocab.txt").read_bytes()
    path = tmp_path / "bom-vocab.txt"
    path.write_bytes(b"\xef\xbb\xbf" + plain)
    wp = SubwordTokenizer(VocabFile.read(path))
    assert wp.pad_id == 0 and wp.vocab_size == 30522


# --- BPE and Unigram: special tokens by role, word starts from word_ids -------------------------------

SENTENCE_PIECE_ROLES = {
    "pad_id": 1,
    "unk_id": 3,
    "cls_id": 0,
    "sep_id": 2,
    "mask_id": 4,
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "cls_token": "<s>",
    "sep_token": "</s>",
    "mask_token": "<mask>",
}


@pytest.mark.parametrize("path, kind", [(BPE_TOKENIZER, "bpe"), (UNIGRAM_TOKENIZER, "unigram")])
def test_bpe_and_unigram_special_tokens_come_from_the_tokenizer(path, kind):
    tok = SubwordTokenizer(VocabFile.read(path))
    assert tok.describe() == {"type": kind, "vocab_size": 2000, "do_lower_case": False, **SENTENCE_PIECE_ROLES}
    assert np.flatnonzero(tok.is_special).tolist() == [0, 1, 2, 3, 4]  # only the added special tokens
    assert tok.replacement_ids.tolist() == list(range(5, 2000))
    assert not tok.is_continuation.any()  # their word starts come from word_ids, not from the pieces


def _bpe(added: list[str], post_processor=None, unk: str | None = None) -> VocabFile:
    """A byte-level BPE over a few words with the given special tokens (in that id order)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=added, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(["the cat sat on the mat, unbelievably"] * 20, trainer)
    if post_processor is not None:
        tok.post_processor = post_processor(tok)
    return VocabFile("tokenizer.json", tok.to_str().encode())


def test_roles_from_roberta_processing_and_from_a_template_in_any_id_order():
    from tokenizers import processors

    roberta = _bpe(
        ["<mask>", "</s>", "<unk>", "<s>", "<pad>"],
        lambda t: processors.RobertaProcessing(("</s>", t.token_to_id("</s>")), ("<s>", t.token_to_id("<s>"))),
    )
    tok = SubwordTokenizer(roberta)
    assert (tok.mask_id, tok.sep_id, tok.unk_id, tok.cls_id, tok.pad_id) == (0, 1, 2, 3, 4)

    # ModernBERT-style names on a BPE: the template says which is cls and which sep; of <|padding|>
    # and [PAD], the pad token is [PAD]
    def template(t):
        return processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[(x, t.token_to_id(x)) for x in ("[CLS]", "[SEP]")]
        )

    modern = _bpe(["<|padding|>", "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "<|endoftext|>"], template)
    tok = SubwordTokenizer(modern)
    assert (tok.unk_id, tok.cls_id, tok.sep_id, tok.pad_id, tok.mask_id) == (1, 2, 3, 4, 5)
    assert np.flatnonzero(tok.is_special).tolist() == [0, 1, 2, 3, 4, 5, 6]  # <|endoftext|> is special too


def test_roles_of_an_albert_style_unigram():
    """ALBERT/DeBERTa-v3 mix the conventions: <pad> <unk> with [CLS] [SEP] [MASK]; Unigram names unk by id."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.UnigramTrainer(vocab_size=60, special_tokens=specials, unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(["the cat sat on the mat, unbelievably"] * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    spec = json.loads(tok.to_str())
    assert spec["model"]["unk_id"] == 1 and "unk_token" not in spec["model"]
    sub = SubwordTokenizer(VocabFile("tokenizer.json", tok.to_str().encode()))
    assert sub.kind == "unigram"
    assert sub.special_tokens == {"pad": "<pad>", "unk": "<unk>", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
    assert (sub.pad_id, sub.unk_id, sub.cls_id, sub.sep_id, sub.mask_id) == (0, 1, 2, 3, 4)


def test_a_tokenizer_without_a_mask_token_is_refused_in_one_line():
    spec = json.loads(BPE_TOKENIZER.read_bytes())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] != "<mask>"]
    with pytest.raises(VocabError) as err:
        SubwordTokenizer(VocabFile("tokenizer.json", json.dumps(spec).encode()), source="no-mask.json")
    assert str(err.value) == (
        "no-mask.json: no mask token found (post-processor, model, padding, added special tokens); "
        "add one as a special token (e.g. <mask>) and save the tokenizer again"
    )
    same = _bpe(["<s>", "</s>", "<unk>", "<pad>", "<mask>"], unk="<unk>")  # no post-processor: found by name
    assert SubwordTokenizer(same).cls_id == 0
    shared = _bpe(["<s>", "<pad>", "<unk>", "<mask>"])
    with pytest.raises(VocabError, match=r"^tokenizer\.json: no sep token found .*; give it a post-processor"):
        SubwordTokenizer(shared)


def test_bpe_lower_casing_is_the_normalizers():
    tok = SubwordTokenizer(VocabFile.read(BPE_TOKENIZER), do_lower_case=False)
    assert tok.do_lower_case is False
    with pytest.raises(VocabError) as err:
        SubwordTokenizer(VocabFile.read(BPE_TOKENIZER), do_lower_case=True)
    assert str(err.value) == (
        "tokenizer.json: its normalizer has lowercase=False, the build asked for do_lower_case=True; "
        "drop the option or fix the tokenizer"
    )


def test_bpe_word_starts_come_from_word_ids_where_piece_rules_are_wrong():
    tok = SubwordTokenizer(VocabFile.read(BPE_TOKENIZER))
    ids, lengths, starts = tok.encode_words(["Hello, unbelievable world!", "The cat's toy."])
    assert tok.decode_tokens(ids) == [
        "ĠH", "ell", "o", ",", "Ġun", "b", "el", "ie", "v", "able", "Ġworld", "!",
        "ĠThe", "Ġc", "at", "'s", "Ġto", "y", ".",
    ]  # fmt: skip
    assert lengths.tolist() == [12, 7]
    assert starts.astype(int).tolist() == [1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1]
    # "##" rules would make every piece a word; a "Ġ" rule would glue ",", "!", "'s" and "." to their word
    assert (~tok.is_continuation[ids]).all()
    g_rule = np.array([t.startswith("Ġ") for t in tok.decode_tokens(ids)])
    assert np.flatnonzero(g_rule != starts).tolist() == [3, 11, 15, 18]


def test_unigram_word_starts_and_documents_carry_them():
    tok = SubwordTokenizer(VocabFile.read(UNIGRAM_TOKENIZER))
    counts = Counter()
    [(key, ids, bounds, starts)] = tokenize_documents(
        ["k"], [["Hello, unbelievable world!", "<s> The cat </s>"]], tok, 100, counts
    )
    pieces = tok.decode_tokens(ids)
    assert pieces[:11] == ["▁He", "l", "lo", ",", "▁un", "be", "li", "ev", "able", "▁world", "!"]
    assert starts[:11].astype(int).tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]  # Metaspace: "Hello," one word
    assert len(starts) == len(ids) and starts[bounds[1]]  # each sentence starts a word
    # special tokens written in the text are ordinary text: <unk>, counted
    assert pieces[bounds[1] :].count("<unk>") == 2 and counts["special_tokens_in_text"] == 2


def test_long_bpe_sentences_are_cut_at_the_tokenizers_word_starts():
    tok = SubwordTokenizer(VocabFile.read(BPE_TOKENIZER))
    counts = Counter()
    text = " ".join(["unbelievable"] * 6)  # 6 pieces a word
    [(_, ids, bounds, starts)] = tokenize_documents(["k"], [[text]], tok, 14, counts)
    assert len(ids) == 36 and bounds.tolist() == [0, 12, 24, 36]  # cut where a word starts, not at 14
    assert starts[bounds[:-1]].all() and counts["long_sentences_cut"] == 1


# --- the memo of whitespace-separated pieces: the tokenizer's own ids, each piece tokenized once ---


def _direct(wp: SubwordTokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in wp.tokenizer.encode_batch(texts, add_special_tokens=False)]


def _memoised(wp: SubwordTokenizer, texts: list[str]) -> list[list[int]]:
    ids, lengths = wp.encode(texts)
    return [a.tolist() for a in np.split(ids, np.cumsum(lengths)[:-1])] if len(texts) else []


def _tricky_texts(n: int, seed: int) -> list[str]:
    """Random texts over the characters where splitting or normalising could differ."""
    rng = np.random.default_rng(seed)
    alphabet = list(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000")
    alphabet += list("\x00\x01\x7f\u200b\u200d\ufeff\ufffd\u0301\u0308\u20dd")  # controls, format, combining
    alphabet += list("aZéÉΣσςİıßﬁ中文字日本語한국!?.,;:-'\"()[]#$%&*+/<=>@\\^_`{|}~0123456789")
    alphabet += ["[CLS]", "[MASK]", "##", "x" * 101, "the", "The"]
    return ["".join(rng.choice(alphabet, size=rng.integers(0, 40))) for _ in range(n)]


def test_the_piece_memo_gives_the_tokenizers_ids_for_every_character(tmp_path):
    # each code point alone, between letters and doubled: where whitespace, controls and case meet words
    chars = [chr(c) for c in range(0x3100)] + [chr(c) for c in range(0x3100, 0x110000, 13) if not 0xD800 <= c < 0xE000]
    texts = [f"ab{c}cd x{c}{c} {c}y Σ" for c in chars]
    for vocab in (VocabFile.read(DATA / "bert-base-uncased-vocab.txt"), tokenizer_json(tmp_path, lowercase=False)):
        wp = SubwordTokenizer(vocab)
        assert wp._piece_ids is not None
        assert _memoised(wp, texts) == _direct(wp, texts)


def test_the_piece_memo_gives_the_tokenizers_ids_on_mixed_and_real_text(tmp_path):
    texts = _tricky_texts(3000, seed=7)
    import zstandard

    raw = zstandard.ZstdDecompressor().stream_reader((DATA / "enwiki_sample.jsonl.zst").open("rb")).read()
    texts += [json.loads(line)["text"] for line in raw.decode("utf-8").splitlines()[:300]]
    wp = SubwordTokenizer(VocabFile.read(DATA / "bert-base-uncased-vocab.txt"))
    assert _memoised(wp, texts) == _direct(wp, texts)
    assert _memoised(wp, texts[::-1]) == _direct(wp, texts[::-1])  # from a warm memo
    assert wp.encode([""])[1].tolist() == [0] and wp.encode([" \n "])[1].tolist() == [0]


def test_the_piece_memo_is_bounded_and_starts_over():
    wp = SubwordTokenizer(VocabFile.read(DATA / "bert-base-uncased-vocab.txt"))
    wp._piece_ids.capacity = 40
    texts = _tricky_texts(200, seed=3)
    for lo in range(0, 200, 10):
        batch = texts[lo : lo + 10]
        assert _memoised(wp, batch) == _direct(wp, batch)
        assert len(wp._piece_ids.row) <= max(40, len(set(" ".join(batch).split())))


def test_the_piece_memo_is_used_only_where_pieces_tokenize_alone(tmp_path):
    from tokenizers import AddedToken, normalizers

    assert SubwordTokenizer(VocabFile.read(BPE_TOKENIZER))._piece_ids is None
    assert SubwordTokenizer(VocabFile.read(UNIGRAM_TOKENIZER))._piece_ids is None
    wp = SubwordTokenizer(tokenizer_json(tmp_path))
    assert wp._piece_ids is not None
    tok = wp.tokenizer
    tok.add_tokens([AddedToken("new york", single_word=False)])  # an added token across a space
    path = tmp_path / "spaced.json"
    tok.save(str(path))
    spaced = SubwordTokenizer(VocabFile.read(path))
    assert spaced._piece_ids is None
    assert spaced.encode(["new york"])[0].tolist() == _direct(spaced, ["new york"])[0]
    tok = SubwordTokenizer(tokenizer_json(tmp_path)).tokenizer
    tok.normalizer = normalizers.BertNormalizer(clean_text=False, lowercase=True)
    path = tmp_path / "unclean.json"
    tok.save(str(path))
    assert SubwordTokenizer(VocabFile.read(path))._piece_ids is None
