"""A manifest is data, never a path to anywhere: every reader refuses entries leading outside the build."""

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from corpusgen.cli import cli
from corpusgen.config import BuildConfig
from corpusgen.shards import Instances, ManifestError, load_manifest, resolve_entry, write_build
from corpusgen.validate import validate_build
from trainer.data import ShardDataset, load_build

TOKENIZER = {"type": "wordpiece", "vocab_size": 30522, "do_lower_case": True,
             "pad_id": 0, "unk_id": 100, "cls_id": 101, "sep_id": 102, "mask_id": 103}  # fmt: skip


@pytest.fixture
def build(tmp_path, vocab_file):
    """A valid 4-row build in tmp_path/build, with the bundled vocabulary."""
    ids = [[101, 2023, 103, 102, 2003, 102], [101, 7592, 102, 2088, 999, 103, 102]] * 2
    inst = Instances(
        input_ids=np.concatenate([np.array(r) for r in ids]).astype(np.uint16),
        lengths=np.array([len(r) for r in ids], dtype=np.int32),
        a_len=np.array([4, 3, 4, 3], dtype=np.uint16),
        masked_positions=np.array([2, 5, 2, 5], dtype=np.uint8),
        num_masked=np.ones(4, dtype=np.int32),
        masked_labels=np.array([2742, 1012, 2742, 1012], dtype=np.uint16),
        next_sentence_label=np.array([0, 1, 0, 1], dtype=np.int8),
        order_key=np.arange(4, dtype=np.uint64),
    )
    out = tmp_path / "build"
    m = write_build(out, {"train": inst}, BuildConfig(zstd_level=3), vocab_name="vocab.txt",
                    vocab_bytes=vocab_file.data, tokenizer=TOKENIZER)  # fmt: skip
    m.setdefault("counters", {"instances": 4, "instance_tokens": 26, "nsp_next": 2, "nsp_random": 2,
                              "masked_mask": 4, "length_6": 2, "length_7": 2})  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(m))
    return out


def edit(build, **changes):
    path = build / "manifest.json"
    m = json.loads(path.read_text())
    if "vocab" in changes:
        m["vocab"] = changes["vocab"]
    if "shard" in changes:
        m["shards"][0]["path"] = changes["shard"]
    path.write_text(json.dumps(m))


def readers(build):
    """Each reader's verdict on the build: the error message, or None if it accepted it."""
    results = {}
    for name, read in (("load_manifest", load_manifest), ("load_build", load_build), ("ShardDataset", ShardDataset)):
        try:
            read(build)
            results[name] = None
        except ManifestError as exc:
            results[name] = str(exc)
    report = validate_build(build)
    results["validate"] = None if report["ok"] else " | ".join(report["defects"])
    for command in ("validate", "inspect"):
        r = CliRunner().invoke(cli, [command, str(build)])
        results[f"cli {command}"] = None if r.exit_code == 0 else r.output.strip()
    return results


BAD = {
    "absolute": lambda build, outside: str(outside),
    "dotdot": lambda build, outside: "../foreign.arrow",
    "dotdot inside": lambda build, outside: "shards/../../foreign.arrow",
    "url": lambda build, outside: "file:///etc/passwd",
    "backslash": lambda build, outside: "..\\foreign.arrow",
    "empty": lambda build, outside: "",
    "not a string": lambda build, outside: 3,
}


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("entry", ["shard", "vocab"])
def test_every_reader_refuses_an_entry_outside_the_build(build, tmp_path, entry, kind):
    first = json.loads((build / "manifest.json").read_text())["shards"][0]["path"]
    outside = tmp_path / "foreign.arrow"  # a real copy of the file, so a reader following the entry would succeed
    shutil.copyfile(build / (first if entry == "shard" else "vocab.txt"), outside)
    value = BAD[kind](build, outside)
    edit(build, **{entry: value})
    what = "shards[0].path" if entry == "shard" else "vocab"
    results = readers(build)
    for reader, message in results.items():
        assert message is not None, f"{reader} accepted {entry} {value!r}"
        assert what in message and repr(value) in message, (reader, message)
        assert "Traceback" not in message
    assert "\n" not in results["load_build"]


@pytest.mark.parametrize("entry", ["shard", "vocab"])
def test_a_symlink_leading_outside_is_refused(build, tmp_path, entry):
    m = json.loads((build / "manifest.json").read_text())
    rel = m["shards"][0]["path"] if entry == "shard" else m["vocab"]
    outside = tmp_path / "elsewhere"
    shutil.move(build / rel, outside)
    os.symlink(outside, build / rel)  # same name, same bytes and sha256: only the location is wrong
    for reader, message in readers(build).items():
        assert message is not None, f"{reader} followed the symlink out of the build"
        assert "outside the build directory" in message and str(outside) in message, (reader, message)


def test_symlinks_inside_the_build_and_a_symlinked_build_are_fine(build, tmp_path):
    m = json.loads((build / "manifest.json").read_text())
    shutil.move(build / "vocab.txt", build / "vocab-real.txt")
    os.symlink("vocab-real.txt", build / "vocab.txt")
    os.symlink(build, tmp_path / "link")
    assert all(message is None for message in readers(tmp_path / "link").values())
    assert resolve_entry(tmp_path / "link", m["shards"][0]["path"]) == tmp_path / "link" / m["shards"][0]["path"]


def test_the_build_directory_itself_is_not_an_entry(build):
    for rel in (".", "shards/.."):
        with pytest.raises(ManifestError, match="outside the build directory|contains '..'"):
            resolve_entry(build, rel, what="vocab")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["tokenizer"].update(vocab_size="big"), "tokenizer.vocab_size must be a positive integer"),
        (lambda m: m["tokenizer"].update(pad_id=-1), "tokenizer.pad_id must be an id below vocab_size"),
        (lambda m: m.update(tokenizer="wordpiece"), "'tokenizer' must be an object, got str"),
        (lambda m: m.update(stats=None), "'stats' must be an object, got NoneType"),
        (lambda m: m["shards"][0].update(rows="4"), r"shards\[0\].rows must be a non-negative integer, got '4'"),
        (lambda m: m["shards"][0].update(bin=[1]), r"shards\[0\].bin must be \[low, high\] lengths"),
        (lambda m: m["shards"][0].pop("sha256"), r"shards\[0\].sha256 must be the shard's sha256 \(64 hex"),
        (lambda m: m["shards"][0].pop("rows"), r"shards\[0\].rows must be a non-negative integer, got None"),
        (lambda m: m["shards"][0].update(split="bogus"), r"shards\[0\].split must be one of train, validation"),
        (lambda m: m["shards"].append(dict(m["shards"][0])), r"shards\[1\] lists shards/.* again \(shards\[0\]"),
        (lambda m: m["config"].update(max_seq_length="128"), "config: max_seq_length = '128' should be an integer"),
    ],
)
def test_every_reader_refuses_a_manifest_of_the_wrong_types(build, edit, message):
    m = json.loads((build / "manifest.json").read_text())
    edit(m)
    (build / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match=message):
        load_manifest(build)
    with pytest.raises(ManifestError, match=message):
        load_build(build)
    report = validate_build(build)
    assert not report["ok"] and len(report["defects"]) == 1 and "rebuild the data" in report["defects"][0]


def test_a_tokenizer_entry_that_disagrees_with_the_vocabulary_is_a_defect(build):
    m = json.loads((build / "manifest.json").read_text())
    assert validate_build(build)["ok"]
    m["tokenizer"]["pad_id"] = 5  # a valid id, but not [PAD]'s: a trainer would pad with a word
    (build / "manifest.json").write_text(json.dumps(m))
    assert validate_build(build)["defects"] == [
        "manifest.json: tokenizer.pad_id is 5, the vocabulary vocab.txt gives 0"
    ]
    with pytest.raises(ManifestError, match="tokenizer.pad_id is 5, the vocabulary vocab.txt gives 0"):
        load_build(build)


def test_inspect_refuses_a_damaged_shard_or_vocabulary_in_one_line(build):
    run = CliRunner()
    assert run.invoke(cli, ["inspect", str(build)]).exit_code == 0
    m = json.loads((build / "manifest.json").read_text())
    shard = build / m["shards"][0]["path"]
    good = shard.read_bytes()
    shard.write_bytes(good[: len(good) // 2])
    r = run.invoke(cli, ["inspect", str(build)])
    assert r.exit_code == 1 and "sha256 differs from the manifest" in r.output and "corpusgen validate" in r.output
    shard.write_bytes(good)
    vocab = build / "vocab.txt"
    lines = vocab.read_text().split("\n")
    lines[2000], lines[2001] = lines[2001], lines[2000]  # the same tokens, two ids swapped
    vocab.write_text("\n".join(lines))
    r = run.invoke(cli, ["inspect", str(build)])
    assert r.exit_code == 1 and "vocab.txt: sha256 differs from the manifest's vocab_sha256" in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1


def test_a_manifest_nested_too_deep_is_a_manifest_error_and_no_build(tmp_path):
    from pipelines.inputs import resolve_inputs

    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ManifestError, match="nested too deep"):
        load_manifest(tmp_path)
    (tmp_path / "a.txt").write_text("One sentence. Two sentences.\n")
    assert str(tmp_path / "a.txt") in resolve_inputs([str(tmp_path)], BuildConfig(), {})  # read, not refused
