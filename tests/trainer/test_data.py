import json
import multiprocessing
import shutil
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import trainer.data as data_mod
from corpusgen.shards import ManifestError, read_shard
from trainer.data import ShardDataset, ShardLoader, load_build

from .conftest import make_build

KEYS = {
    "input_ids": torch.int64,
    "token_type_ids": torch.int64,
    "attention_mask": torch.bool,
    "masked_positions": torch.int64,
    "masked_labels": torch.int64,
    "masked_valid": torch.bool,
    "next_sentence_label": torch.int64,
}


def row_keys(batch):
    """One hashable identity per row: its tokens, masks and label."""
    out = []
    for i in range(len(batch["input_ids"])):
        n = int(batch["attention_mask"][i].sum())
        valid = batch["masked_valid"][i]
        out.append(
            (
                tuple(batch["input_ids"][i, :n].tolist()),
                int((batch["token_type_ids"][i, :n] == 0).sum()),
                tuple(batch["masked_positions"][i][valid].tolist()),
                tuple(batch["masked_labels"][i][valid].tolist()),
                int(batch["next_sentence_label"][i]),
            )
        )
    return out


def shard_rows(build, split="train"):
    manifest = json.loads((build / "manifest.json").read_text())
    rows = []
    for e in manifest["shards"]:
        if e["split"] != split:
            continue
        for r in read_shard(build / e["path"]).to_pylist():
            rows.append(
                (
                    tuple(r["input_ids"]),
                    r["a_len"],
                    tuple(r["masked_positions"]),
                    tuple(r["masked_labels"]),
                    r["next_sentence_label"],
                )
            )
    return Counter(rows)


def consumer_rows(build, monkeypatch, *, world, workers, seed, batch_size=32, epochs=1):
    """Every row each (rank, worker) consumer yields, workers simulated in-process."""
    per_consumer = []
    for rank in range(world):
        for w in range(workers):
            monkeypatch.setattr(data_mod, "get_worker_info", lambda w=w: SimpleNamespace(id=w, num_workers=workers))
            ds = ShardDataset(
                build,
                batch_size=batch_size,
                seed=seed,
                rank=rank,
                world_size=world,
                epochs=epochs,
                drop_last=False,
                shuffle_buffer=300,
            )
            rows = []
            for b in ds:
                rows += row_keys(b)
            per_consumer.append(rows)
    return per_consumer


def test_batch_keys_shapes_dtypes(build_dir):
    ds = ShardDataset(build_dir, batch_size=32, seed=0)
    for i, b in enumerate(ds):
        assert {k: v.dtype for k, v in b.items()} == KEYS
        B, T = b["input_ids"].shape
        P = b["masked_positions"].shape[1]
        assert B == 32 and T % 8 == 0 and P % 8 == 0
        lengths = b["attention_mask"].sum(1)
        assert T - 8 < lengths.max() <= T  # padded to the batch's longest row, rounded up to 8
        assert b["token_type_ids"].shape == (B, T) and b["masked_labels"].shape == (B, P)
        assert torch.all(b["input_ids"][~b["attention_mask"]] == 0)
        assert torch.all(b["token_type_ids"][~b["attention_mask"]] == 0)
        assert torch.all(b["masked_labels"][~b["masked_valid"]] == -100)
        assert torch.all(b["masked_positions"][~b["masked_valid"]] == 0)
        assert torch.all(b["masked_labels"][b["masked_valid"]] >= 0)
        # one length bin (width 16) per batch
        assert (lengths.max() - 1) // 16 == (lengths.min() - 1) // 16
        if i == 40:
            break


def test_one_epoch_yields_every_row_once(build_dir):
    ds = ShardDataset(build_dir, batch_size=32, seed=3, epochs=1, drop_last=False)
    got = Counter(r for b in ds for r in row_keys(b))
    assert got == shard_rows(build_dir)


@pytest.mark.parametrize("world,workers", [(1, 1), (2, 1), (1, 3), (2, 2), (3, 2), (4, 4)])
@pytest.mark.parametrize("fixture", ["build_dir", "small_build_dir"])
def test_ranks_and_workers_split_without_overlap_or_loss(fixture, world, workers, monkeypatch, request):
    build = request.getfixturevalue(fixture)
    expected = shard_rows(build)
    for seed in range(4):
        per_consumer = consumer_rows(build, monkeypatch, world=world, workers=workers, seed=seed)
        assert all(per_consumer), "every consumer gets work, even with fewer units than consumers"
        assert Counter(r for rows in per_consumer for r in rows) == expected


def test_real_worker_processes_split_the_epoch(build_dir):
    ds = ShardDataset(build_dir, batch_size=32, seed=1, epochs=1, drop_last=False)
    got = Counter(r for b in ShardLoader(ds, num_workers=2) for r in row_keys(b))
    assert got == shard_rows(build_dir)


def take(loader, n):
    out = []
    for b in loader:
        out.append(b)
        if len(out) == n:
            break
    return out


def test_same_seed_same_stream_and_epochs_differ(build_dir):
    a = take(ShardDataset(build_dir, batch_size=32, seed=5), 130)
    b = take(ShardDataset(build_dir, batch_size=32, seed=5), 130)
    c = take(ShardDataset(build_dir, batch_size=32, seed=6), 130)
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, b, strict=True))
    assert not all(
        x["input_ids"].shape == y["input_ids"].shape and torch.equal(x["input_ids"], y["input_ids"])
        for x, y in zip(a, c, strict=True)
    )
    per_epoch = 2000 // 32
    first = [r for x in a[:per_epoch] for r in row_keys(x)]
    second = [r for x in a[per_epoch : 2 * per_epoch] for r in row_keys(x)]
    assert first != second  # a new epoch, a new order


def test_training_stream_has_full_batches_across_epochs(build_dir):
    batches = take(ShardDataset(build_dir, batch_size=48, seed=0), 200)  # ~5 epochs of 2000 rows
    assert all(len(b["input_ids"]) == 48 for b in batches)
    counts = Counter(r for b in batches for r in row_keys(b))
    # 9600 rows drawn from 2000 (4.8 each on average): every row comes back, none is starved
    assert len(counts) == 2000 and min(counts.values()) >= 2 and max(counts.values()) <= 8


@pytest.mark.parametrize("workers,k", [(0, 1), (0, 37), (0, 100), (2, 45)])
def test_resume_mid_stream_is_exact(build_dir, workers, k):
    full = take(ShardLoader(ShardDataset(build_dir, batch_size=32, seed=2), num_workers=workers), k + 20)
    first = ShardLoader(ShardDataset(build_dir, batch_size=32, seed=2), num_workers=workers)
    take(first, k)
    state = first.state_dict()
    assert state["batches"] == k
    resumed = ShardLoader(ShardDataset(build_dir, batch_size=32, seed=2), num_workers=workers)
    resumed.load_state_dict(json.loads(json.dumps(state)))  # the state is plain JSON
    rest = take(resumed, 20)
    for x, y in zip(full[k:], rest, strict=True):
        assert x.keys() == y.keys() and all(torch.equal(x[key], y[key]) for key in x)


def test_resume_refuses_a_changed_setup(build_dir):
    first = ShardLoader(ShardDataset(build_dir, batch_size=32, seed=2))
    take(first, 3)
    state = first.state_dict()
    with pytest.raises(ValueError, match="batch_size"):
        ShardLoader(ShardDataset(build_dir, batch_size=16, seed=2)).load_state_dict(state)
    with pytest.raises(ValueError, match="num_workers"):
        ShardLoader(ShardDataset(build_dir, batch_size=32, seed=2), num_workers=2).load_state_dict(state)


def test_padding_is_small(build_dir):
    real = slots = 0
    for b in take(ShardDataset(build_dir, batch_size=32, seed=0), 60):
        real += int(b["attention_mask"].sum())
        slots += b["attention_mask"].numel()
    assert 1 - real / slots < 0.15  # bins of 16 with lengths uniform inside: ~7% + rounding to 8


def test_heldout_split_and_no_nsp_build(tmp_path, build_dir):
    held = ShardDataset(build_dir, split="validation", batch_size=64, shuffle=False, epochs=1, drop_last=False)
    assert Counter(r for b in held for r in row_keys(b)) == shard_rows(build_dir, "validation")
    none = make_build(tmp_path / "none", rows=200, heldout_rows=0, next_sentence="none")
    b = next(iter(ShardDataset(none, batch_size=16)))
    assert torch.all(b["next_sentence_label"] == -100)


def copy_build(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_refuses_other_format_version(tmp_path, build_dir):
    d = copy_build(build_dir, tmp_path / "b")
    m = json.loads((d / "manifest.json").read_text())
    m["format_version"] = 2
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="format version 2") as exc:
        ShardDataset(d)
    assert "\n" not in str(exc.value)


def test_refuses_a_changed_vocab(tmp_path, build_dir):
    d = copy_build(build_dir, tmp_path / "b")
    with open(d / "vocab.txt", "a") as f:
        f.write("extra\n")
    with pytest.raises(ManifestError, match="sha256 .* does not match") as exc:
        load_build(d)
    assert "\n" not in str(exc.value)


def test_refuses_a_vocab_other_than_the_checkpoints(build_dir):
    with pytest.raises(ManifestError, match="checkpoint"):
        load_build(build_dir, expect_vocab_sha256="0" * 64)


def test_refuses_missing_or_truncated_shards(tmp_path, build_dir):
    d = copy_build(build_dir, tmp_path / "b")
    m = json.loads((d / "manifest.json").read_text())
    shard = d / m["shards"][0]["path"]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ManifestError, match="damaged"):
        load_build(d)
    shard.unlink()
    with pytest.raises(ManifestError, match="missing"):
        load_build(d)
    with pytest.raises(ManifestError, match="no manifest"):
        load_build(tmp_path)


def test_dense_conversion_of_sliced_lists():
    import pyarrow as pa

    arr = pa.array([[1, 2, 3], [4], [], [5, 6]], type=pa.list_(pa.uint16())).slice(1, 3)
    dense, lengths = data_mod._dense_list(arr, 8, "tokens")
    assert lengths.tolist() == [1, 0, 2]
    assert dense[:, :2].tolist() == [[4, 0], [0, 0], [5, 6]]
    assert np.all(dense[:, 2:] == 0)


def first_batches(ds, n):
    it = iter(ShardLoader(ds))
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize("damage", ["flipped byte", "wrong sha256 in the manifest"])
def test_a_shard_that_fails_its_sha256_stops_the_loader_naming_it(tmp_path, build_dir, damage):
    d = copy_build(build_dir, tmp_path / "b")
    m = json.loads((d / "manifest.json").read_text())
    shard = d / m["shards"][0]["path"]
    if damage == "flipped byte":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0x01  # same size: load_build's size check passes
        shard.write_bytes(bytes(data))
    else:
        m["shards"][0]["sha256"] = "0" * 64
        (d / "manifest.json").write_text(json.dumps(m))
    load_build(d)  # cheap checks only: contents are verified by the loader
    ds = ShardDataset(d, batch_size=8, seed=0, epochs=1, drop_last=False, shuffle=False)
    with pytest.raises(ManifestError, match="differs from the manifest's") as exc:
        first_batches(ds, len(ds))
    assert str(exc.value).startswith(f"{shard}: sha256 ") and "\n" not in str(exc.value)


def test_a_damaged_shard_read_by_worker_processes_stops_in_one_line_and_leaves_no_worker(tmp_path, build_dir):
    """torch re-raises a worker's error with the worker's traceback in its message; and the workers, which
    ignore SIGTERM, would outlive the error and hang the process's exit (multiprocessing joins them)."""
    d = copy_build(build_dir, tmp_path / "b")
    m = json.loads((d / "manifest.json").read_text())
    for e in m["shards"]:
        shard = d / e["path"]
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0x01
        shard.write_bytes(bytes(data))
    ds = ShardDataset(d, batch_size=8, seed=0)
    with pytest.raises(ManifestError, match="differs from the manifest's") as exc:
        next(iter(ShardLoader(ds, num_workers=2)))
    assert str(exc.value).startswith(str(d / "shards")) and "\n" not in str(exc.value)
    assert multiprocessing.active_children() == []


def test_each_shard_is_hashed_once_per_process_before_its_rows_are_read(build_dir, monkeypatch):
    hashed, opened = [], []
    real_sha, real_open = data_mod.sha256_file, data_mod.open_shard
    monkeypatch.setattr(data_mod, "sha256_file", lambda p: hashed.append(str(p)) or real_sha(p))
    monkeypatch.setattr(data_mod, "open_shard", lambda p: opened.append((str(p), len(hashed))) or real_open(p))
    ds = ShardDataset(build_dir, batch_size=16, seed=0, epochs=3, drop_last=False)
    opened.clear()  # the constructor reads only shard footers (record batch counts)
    hashed.clear()  # and the vocabulary's sha256
    batches = sum(1 for _ in ShardLoader(ds))
    for _ in ShardLoader(ds):  # a second pass in the same process: nothing hashed again
        pass
    train_shards = sorted(str(build_dir / e["path"]) for e in ds.manifest["shards"] if e["split"] == "train")
    assert batches > 3 * len(train_shards) and sorted(hashed) == train_shards
    for path, hashed_before in opened:
        assert path in hashed[:hashed_before], f"{path} was opened before its sha256 was checked"


def test_a_row_wider_than_the_manifest_says_is_refused_naming_its_shard(tmp_path, build_dir):
    d = copy_build(build_dir, tmp_path / "b")
    m = json.loads((d / "manifest.json").read_text())
    m["config"]["max_seq_length"] = 16  # the shards hold rows of up to 64 tokens
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match=r"shards/.*\.arrow: a row has \d+ tokens, more than the build's limit 16"):
        next(iter(ShardDataset(d, batch_size=8, seed=0)))


def test_a_hand_edited_row_count_stops_the_loader_naming_the_shard(tmp_path, build_dir):
    """The shard is the build's (its sha256 matches), but its entry's rows were changed by less than
    a record batch: the count of batches still agrees, the rows of the last one do not."""
    d = copy_build(build_dir, tmp_path / "b")
    m = json.loads((d / "manifest.json").read_text())
    entry = next(e for e in m["shards"] if e["split"] == "train" and e["rows"] % 100 > 1)
    entry["rows"] -= 1
    (d / "manifest.json").write_text(json.dumps(m))
    ds = ShardDataset(d, batch_size=8, seed=0, epochs=1, drop_last=False, shuffle=False)
    with pytest.raises(ManifestError, match="the manifest was edited") as exc:
        first_batches(ds, len(ds))
    assert str(exc.value).startswith(f"{d / entry['path']}: record batch ") and "\n" not in str(exc.value)


def test_a_static_shard_whose_rows_hold_no_masks_is_read(tmp_path):
    """Span or whole-word masking can leave a short row with no mask, and a shard of such rows alone
    is valid: the loader must not take it for a dynamic build's (only the manifest's stats can say that)."""
    import hashlib

    import pyarrow as pa

    from corpusgen.shards import open_shard

    d = make_build(tmp_path / "b", rows=40, heldout_rows=0, rows_per_shard=400, bin_width=64)
    m = json.loads((d / "manifest.json").read_text())
    entry = m["shards"][0]
    path = d / entry["path"]
    table = open_shard(path).read_all()
    for name in ("masked_positions", "masked_labels"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array([[]] * len(table), table.schema.field(i).type))
    with pa.ipc.new_file(path, table.schema) as w:
        w.write_table(table, max_chunksize=m["config"]["rows_per_batch"])
    data = path.read_bytes()
    entry["sha256"], entry["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (d / "manifest.json").write_text(json.dumps(m))
    ds = ShardDataset(d, batch_size=8, seed=0, epochs=1, drop_last=False, shuffle=False)
    batches = first_batches(ds, len(ds))
    assert sum(len(b["input_ids"]) for b in batches) == 40
    assert not any(b["masked_valid"].any() for b in batches)
