import json
import re

import pytest

from corpusgen.config import BuildConfig


def test_defaults_follow_google_bert():
    cfg = BuildConfig()
    assert (cfg.max_seq_length, cfg.max_predictions_per_seq, cfg.masked_lm_prob, cfg.short_seq_prob) == (
        128,
        20,
        0.15,
        0.1,
    )
    assert cfg.max_num_tokens == 125
    assert BuildConfig(next_sentence="none").max_num_tokens == 126


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"masked_lm_prob": 0.0}, "masked_lm_prob"),
        ({"masked_lm_prob": 1.5}, "masked_lm_prob"),
        ({"max_seq_length": 4}, "max_seq_length"),
        ({"max_predictions_per_seq": 200}, "max_predictions_per_seq"),
        ({"dupe_factor": 0}, "dupe_factor"),
        ({"next_sentence": "xyz"}, "next_sentence"),
        ({"doc_per_file": True, "wikitext_headings": True}, "exclude each other"),
        ({"short_seq_prob": -0.1}, "short_seq_prob"),
        ({"zstd_level": 30}, "zstd_level"),
        ({"heldout_fraction": 1.0}, "heldout_fraction"),
    ],
)
def test_bad_values_raise_before_work(changes, message):
    with pytest.raises(ValueError, match=message):
        BuildConfig(**changes)


def test_round_trip_and_files(tmp_path):
    cfg = BuildConfig(max_seq_length=256, dupe_factor=3, next_sentence="sop")
    assert BuildConfig.from_dict(cfg.to_dict()) == cfg
    (tmp_path / "c.json").write_text(json.dumps({"max_seq_length": 64}))
    assert BuildConfig.from_file(tmp_path / "c.json").max_seq_length == 64
    (tmp_path / "c.toml").write_text("[build]\ndupe_factor = 7\nnext_sentence = 'none'\n")
    assert BuildConfig.from_file(tmp_path / "c.toml").dupe_factor == 7


def test_unknown_and_unreadable_config_name_the_file(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"max_seq_len": 64}))
    with pytest.raises(ValueError, match=r"c.json: unknown option\(s\) max_seq_len \(did you mean max_seq_length\?\)"):
        BuildConfig.from_file(tmp_path / "c.json")
    (tmp_path / "q.toml").write_text("[build]\nwibble = 1\n[build.quality]\nmin_wrods = 5\n")
    with pytest.raises(ValueError, match=r"unknown option\(s\) wibble; known: "):  # nothing close: no guess
        BuildConfig.from_file(tmp_path / "q.toml")
    (tmp_path / "q.toml").write_text("[build.quality]\nmin_wrods = 5\n")
    with pytest.raises(ValueError, match=r"q.toml: unknown quality option\(s\) min_wrods \(did you mean min_words\?\)"):
        BuildConfig.from_file(tmp_path / "q.toml")
    with pytest.raises(ValueError, match="cannot read config"):
        BuildConfig.from_file(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("x = = 1")
    with pytest.raises(ValueError, match="not valid TOML"):
        BuildConfig.from_file(tmp_path / "bad.toml")


def test_a_config_nested_too_deep_or_with_a_json_key_twice_is_refused_in_one_line(tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep.json: not a config \(JSON nested too deep to read\)"):
        BuildConfig.from_file(tmp_path / "deep.json")
    (tmp_path / "twice.json").write_text('{"masked_lm_prob": 0.15, "masked_lm_prob": 0.5}')
    with pytest.raises(ValueError, match="twice.json: 'masked_lm_prob' is given twice"):  # JSON kept the last
        BuildConfig.from_file(tmp_path / "twice.json")


@pytest.mark.parametrize("value, what", [("1979-05-27T07:32:00Z", "datetime"), ("nan", "NaN or infinity")])
def test_extra_values_must_be_json_as_the_manifest_records_them(tmp_path, value, what):
    (tmp_path / "e.toml").write_text(f"[build.extra]\nnote = 'fine'\nd = {value}\n")
    with pytest.raises(ValueError, match=rf"e.toml: extra: .* must be JSON .*, not {what}"):
        BuildConfig.from_file(tmp_path / "e.toml")
    assert BuildConfig(extra={"note": "fine", "n": [1, 2]}).extra["n"] == [1, 2]


def test_length_bins():
    cfg = BuildConfig(length_bin_width=16)
    assert [cfg.bin_of(n) for n in (1, 16, 17, 128)] == [0, 0, 1, 7]
    assert cfg.bin_range(7) == (113, 128)


def test_mask_scheme_and_its_short_form_agree():
    assert BuildConfig().mask_scheme == "token" and not BuildConfig().do_whole_word_mask
    wwm = BuildConfig(do_whole_word_mask=True)
    assert wwm.mask_scheme == "whole-word"
    assert BuildConfig(mask_scheme="whole-word").do_whole_word_mask is True
    assert wwm.replace(do_whole_word_mask=False).mask_scheme == "token"
    assert BuildConfig().replace(do_whole_word_mask=True).mask_scheme == "whole-word"
    assert BuildConfig.from_dict(wwm.to_dict()) == wwm
    with pytest.raises(ValueError, match="mask_scheme must be one of"):
        BuildConfig(mask_scheme="spans")


def test_lang_is_checked_against_the_splitters_languages():
    from corpusgen.split import LANGUAGES

    with pytest.raises(ValueError, match=r"lang 'xx' is not supported; choose one of auto, bs, cs, da, de, en"):
        BuildConfig(lang="xx")
    for lang in LANGUAGES:
        assert BuildConfig(lang=lang).lang == lang
    assert BuildConfig(lang="en_US").lang == "en_US"  # regional variants use the language's rules
    assert {"en", "de", "zh", "ja", "ko", "ru", "auto"} <= set(LANGUAGES)


def test_warnings_for_long_sequences_and_capped_masking():
    assert BuildConfig().warnings() == [] and not BuildConfig().masking_capped
    # google-research/bert's settings for 512: 76 predictions (0.15 × 509 = 76.35 rounds to 76).
    assert BuildConfig(max_seq_length=512, max_predictions_per_seq=76).warnings() == []
    # max_predictions_per_seq follows the rate unless given: ceil(512 × 0.15) = 77, no cap
    assert BuildConfig(max_seq_length=512).max_predictions_per_seq == 77
    assert BuildConfig(max_seq_length=512).warnings() == []
    cfg = BuildConfig(max_seq_length=512, max_predictions_per_seq=20)
    assert cfg.masking_cap_tokens == 137  # round(137 × 0.15) = 21 > 20; round(136 × 0.15) = 20
    assert cfg.warnings() == [
        "max_predictions_per_seq 20 caps masking below masked_lm_prob 0.15 in instances of 137 tokens or more: "
        "a full one gets 20 of the 76 masks it asks for (3.9% of its tokens); "
        "--max-predictions-per-seq 76 masks at the full rate"
    ]
    long = BuildConfig(max_seq_length=1024, max_predictions_per_seq=160)
    assert long.warnings() == [
        "max_seq_length 1024 exceeds the 512 positions of standard BERT models: "
        "only a model with at least 1024 position embeddings can train on this build"
    ]


def test_max_predictions_follow_the_rate_unless_given():
    assert BuildConfig().max_predictions_per_seq == 20  # BERT's 20 at 128 / 0.15: ceil(19.2)
    assert BuildConfig(masked_lm_prob=0.3).max_predictions_per_seq == 39  # ceil(38.4)
    assert BuildConfig(max_seq_length=100, masked_lm_prob=0.2).max_predictions_per_seq == 20  # not 21 (0.2 * 100)
    assert BuildConfig(masked_lm_prob=0.99).max_predictions_per_seq == 126  # at most max_seq_length - 2
    assert BuildConfig(masked_lm_prob=0.3, max_predictions_per_seq=20).max_predictions_per_seq == 20
    # a number that followed the rate keeps following it; one given stays
    assert BuildConfig().replace(masked_lm_prob=0.3).max_predictions_per_seq == 39
    assert BuildConfig(max_predictions_per_seq=30).replace(masked_lm_prob=0.3).max_predictions_per_seq == 30
    assert BuildConfig(masked_lm_prob=0.3).warnings() == []
    # the manifest records the number: reading it back gives the same config
    cfg = BuildConfig(masked_lm_prob=0.4, max_seq_length=256)
    assert BuildConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["max_predictions_per_seq"] == 103


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mask_replace_prob": 1.2}, "mask_replace_prob must be in"),
        ({"random_replace_prob": -0.1}, "random_replace_prob must be in"),
        ({"mask_replace_prob": 0.7, "random_replace_prob": 0.4}, "at most 1"),
        ({"mask_copies": 0}, "mask_copies must be at least 1"),
        ({"mask_copies": 2, "dynamic_masking": True}, "exclude each other"),
        ({"span_p": 0.0}, "span_p must be in"),
        ({"span_max_words": 0}, "span_max_words must be at least 1"),
    ],
)
def test_masking_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        BuildConfig(**options)
    assert BuildConfig(mask_replace_prob=0.5, random_replace_prob=0.5).mask_replace_prob == 0.5
    assert BuildConfig(mask_scheme="span").mask_scheme == "span"


@pytest.mark.parametrize(
    "text, message",
    [
        ('dedup = "false"', "dedup = 'false' should be true or false"),  # a string is not false: it would dedup
        ("max_seq_length = 64.7", "max_seq_length = 64.7 should be an integer"),
        ("dupe_factor = true", "dupe_factor = True should be an integer"),
        ('masked_lm_prob = "0.2"', "masked_lm_prob = '0.2' should be a number"),
        ('quality = "yes"', "quality = 'yes' should be a table of options or true/false or none"),
        ("extra = 5", "extra = 5 should be a table"),
        ('[near_dedup]\nthreshold = "high"', "near_dedup: threshold = 'high' should be a number"),
    ],
)
def test_config_file_values_of_the_wrong_type_are_refused_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        BuildConfig.from_file(path)


def test_config_file_values_of_the_right_type_pass(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('dedup = false\nshort_seq_prob = 1\nlang = "de"\nquality = true\n[near_dedup]\nthreshold = 0.8\n')
    cfg = BuildConfig.from_file(path)  # an integer is a fine number; a table or true makes the nested options
    assert cfg.dedup is False and cfg.short_seq_prob == 1 and cfg.quality is not None
    assert cfg.near_dedup.threshold == 0.8
    assert BuildConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # a manifest's config reads back


def test_a_config_file_value_out_of_range_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("zstd_level = 40\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: zstd_level must be in [1, 22]")):
        BuildConfig.from_file(path)
    with pytest.raises(ValueError, match=r"^zstd_level must be in \[1, 22\]"):  # not from a file: no name
        BuildConfig.from_dict({"zstd_level": 40})
