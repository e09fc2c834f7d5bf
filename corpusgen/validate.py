"""Verify a build directory: files, checksums, schema, every row's structure, and the statistics.

``validate_build`` re-reads every shard and recomputes what the manifest claims
(rows, tokens, NSP labels, mask kinds, length histogram). Any difference or broken
row is a defect; the CLI exits non-zero when there is one.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from corpusgen.config import PACKED_MODES
from corpusgen.masking import VocabTables
from corpusgen.packing import PACKED_ROWS, PACKED_ROWS_FULL, PACKED_SEGMENTS
from corpusgen.shards import (
    MANIFEST_NAME,
    NSP_IGNORE,
    ManifestError,
    layout_schema,
    load_manifest,
    open_shard,
    resolve_entry,
    sha256_file,
    shard_pool,
)
from corpusgen.stats import (
    KIND_KEPT,
    KIND_MASK,
    KIND_RANDOM,
    LENGTH_PREFIX,
    binomial_halfwidth,
    length_counter,
    padding_share_bound,
)
from corpusgen.tokenizer import SubwordTokenizer, VocabError, VocabFile

MAX_EXAMPLES = 5  # defects of one kind listed before the rest are only counted
RATE_Z = 5.0  # standard errors a measured mask share may stray from the configured one
CANDIDATES, BUDGET_GAP = "_candidates", "_budget_gap"  # rate figures of check_table, not manifest counters


def _flat(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of a list column."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False)
    return values[offsets[0] : offsets[-1]], offsets - offsets[0]


def _flat_sets(col: pa.ChunkedArray, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, offsets per set, sets per row) of a mask column: one set per row, or a list of sets."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_list(arr.type.value_type):
        values, off = _flat(arr)
        return values, off, np.ones(n_rows, np.int64)
    outer = arr.offsets.to_numpy().astype(np.int64)
    values, off = _flat(arr.values.slice(outer[0], outer[-1] - outer[0]))
    return values, off, np.diff(outer)


def check_table(
    table: pa.Table, manifest: dict, bin_range: tuple[int, int] | None, *, tables=None, path: str | None = None
) -> tuple[list[str], Counter]:
    """Defects of one shard's rows and the statistics they imply.

    ``tables`` (``masking.VocabTables`` of the build's vocabulary) enables what needs the
    vocabulary: each row's mask budget recomputed from its candidates, the rate figures, and for
    dynamic builds the masks of epoch 0 drawn again (``path``: the shard's manifest path).
    """
    tok = manifest["tokenizer"]
    cfg = manifest["config"]
    copies = int(cfg.get("mask_copies", 1))
    dynamic = bool(cfg.get("dynamic_masking", False))
    defects: list[str] = []
    counts: Counter = Counter()
    n = table.num_rows
    if n == 0:
        return defects, counts
    ids, off = _flat(table.column("input_ids"))
    ids = ids.astype(np.int64)
    lengths = np.diff(off)
    a_len = table.column("a_len").to_numpy().astype(np.int64)
    pos, poff, sets_per_row = _flat_sets(table.column("masked_positions"), n)
    labels, loff, _ = _flat_sets(table.column("masked_labels"), n)
    labels = labels.astype(np.int64)
    nsp = table.column("next_sentence_label").to_numpy()
    set_size = np.diff(poff)  # positions of each mask set (one set per row unless mask copies)
    set_row = np.repeat(np.arange(n), sets_per_row)
    n_masked = np.bincount(set_row, weights=set_size, minlength=n).astype(np.int64)
    row_start = off[:-1]

    def defect(mask: np.ndarray, what: str) -> None:
        bad = np.flatnonzero(mask)
        if len(bad):
            defects.append(f"{what}: {len(bad)} row(s), e.g. row {int(bad[0])}")

    defect(lengths > cfg["max_seq_length"], "longer than max_seq_length")
    if bin_range is not None:
        defect((lengths < bin_range[0]) | (lengths > bin_range[1]), f"length outside the shard's bin {bin_range}")
    pairs = cfg["next_sentence"] in ("nsp", "sop")
    packed = cfg["next_sentence"] in PACKED_MODES
    defect(lengths < (5 if pairs else 3), "too short to hold [CLS] A [SEP] B [SEP]" if pairs else "too short")
    ok_len = lengths >= (5 if pairs else 3)
    if len(loff) != len(poff) or np.any(np.diff(loff) != set_size):
        defects.append("masked_labels and masked_positions differ in length")
    defect(sets_per_row != (copies if copies > 1 else 1), f"not {copies} mask set(s) per row")
    if dynamic:
        defect(n_masked > 0, "masked positions stored in a dynamic-masking build (the loader draws them)")
    if "word_starts" in table.column_names:
        ws, wsoff = _flat(table.column("word_starts"))
        defect(np.diff(wsoff) != lengths, "word_starts and input_ids differ in length")
    shown_col = None
    if copies > 1 and not defects:
        shown_col, soff, _ = _flat_sets(table.column("masked_inputs"), n)
        if len(soff) != len(poff) or np.any(np.diff(soff) != set_size):
            defects.append("masked_inputs and masked_positions differ in length")
    if defects:
        return defects, counts
    a_bad = (a_len < 3) | (a_len > lengths - (2 if pairs else 0)) if pairs else a_len != lengths
    defect(a_bad & ok_len, "a_len out of range")
    if defects:
        return defects, counts

    cls_id, sep_id, mask_id = tok["cls_id"], tok["sep_id"], tok["mask_id"]
    is_cls, is_sep = ids == cls_id, ids == sep_id
    expected_cls = np.zeros(len(ids), bool)
    expected_cls[row_start] = True
    expected_sep = np.zeros(len(ids), bool)
    expected_sep[row_start + a_len - 1] = True
    expected_sep[off[1:] - 1] = True
    row_of = np.repeat(np.arange(n), lengths)
    if packed:
        seg_ok = check_doc_starts(table, cfg, lengths, defect, counts)
        if not seg_ok:
            return defects, counts
        starts, soff = _flat(table.column("doc_starts"))
        srow = np.repeat(np.arange(n), np.diff(soff))
        inner = starts.astype(np.int64) > 0
        expected_sep[row_start[srow[inner]] + starts[inner].astype(np.int64) - 1] = True  # each piece ends with [SEP]
    defect(np.bincount(row_of[is_cls != expected_cls], minlength=n) > 0, "[CLS] not exactly at position 0")
    defect(
        np.bincount(row_of[is_sep != expected_sep], minlength=n) > 0,
        "[SEP] not exactly at each document piece's end" if packed else "[SEP] not exactly after A and at the end",
    )

    pset = np.repeat(np.arange(len(set_size)), set_size)  # the mask set of every position
    prow = set_row[pset]
    pos = pos.astype(np.int64)
    defect(
        np.bincount(set_row[set_size > cfg["max_predictions_per_seq"]], minlength=n) > 0,
        "more masked positions than max_predictions_per_seq",
    )
    same_row_next = pset[1:] == pset[:-1]
    defect(
        np.bincount(prow[1:][same_row_next & (pos[1:] <= pos[:-1])], minlength=n) > 0,
        "masked positions not strictly ascending",
    )
    in_range = pos < lengths[prow]
    defect(np.bincount(prow[~in_range], minlength=n) > 0, "masked position beyond the sequence")
    flat_pos = row_start[prow] + np.where(in_range, pos, 0)
    at_special = expected_cls[flat_pos] | expected_sep[flat_pos]
    defect(np.bincount(prow[at_special & in_range], minlength=n) > 0, "masked position on [CLS]/[SEP]")
    special_label = np.isin(labels, [cls_id, sep_id, mask_id, tok["pad_id"], tok["unk_id"]])
    defect(np.bincount(prow[special_label], minlength=n) > 0, "masked label is a special token")
    defect(labels >= tok["vocab_size"], "masked label outside the vocabulary")
    defect(ids >= tok["vocab_size"], "token id outside the vocabulary")
    if pairs:
        defect(~np.isin(nsp, [0, 1]), "next_sentence_label not 0 or 1")
    else:
        defect(nsp != NSP_IGNORE, f"next_sentence_label not {NSP_IGNORE} in a build without pairs")

    if copies > 1 or dynamic:
        defect(np.bincount(row_of[ids == mask_id], minlength=n) > 0, "[MASK] in the stored (unmasked) input_ids")
    shown = ids[flat_pos] if shown_col is None else shown_col.astype(np.int64)
    if shown_col is not None:
        shown_special = np.isin(shown, [cls_id, sep_id, tok["pad_id"], tok["unk_id"]])
        defect(
            np.bincount(prow[shown_special], minlength=n) > 0, "masked_inputs shows a special token other than [MASK]"
        )
    if tables is not None and not defects:
        from corpusgen.config import BuildConfig
        from corpusgen.masking import mask_budget, row_sequences, shard_mask_counters

        build_cfg = BuildConfig.from_dict(cfg)
        if dynamic:
            ws = ws.astype(bool) if "word_starts" in table.column_names else None
            drawn = shard_mask_counters(ids, lengths, ws, path or "", build_cfg, tables)
            for kind in (KIND_MASK, KIND_KEPT, KIND_RANDOM):
                counts[kind] += drawn[kind]
            counts[CANDIDATES] += drawn["mask_candidates"]
        else:
            original = ids.copy()
            original[flat_pos] = labels  # the rows before masking (every set holds the same originals)
            seq = row_sequences(original, lengths, None, tables)
            cand = ~tables.is_special[original]
            n_cand, k = mask_budget(seq, cand, build_cfg)
            over = set_size > k[set_row]
            defect(np.bincount(set_row[over], minlength=n) > 0, "more masked positions than the row's budget")
            if build_cfg.mask_scheme == "token":
                defect(
                    np.bincount(set_row[set_size != k[set_row]], minlength=n) > 0,
                    "masked count differs from the row's budget",
                )
            counts[CANDIDATES] += int(n_cand.sum()) * len(set_size) // max(n, 1)
            counts[BUDGET_GAP] += float(np.abs(k - n_cand * build_cfg.masked_lm_prob).sum()) * len(set_size) / max(n, 1)
    counts["instances"] += n
    counts["instance_tokens"] += int(lengths.sum())
    if not dynamic:
        kind_mask, kind_kept = shown == mask_id, shown == labels
        counts[KIND_MASK] += int(kind_mask.sum())
        counts[KIND_KEPT] += int(kind_kept.sum())
        counts[KIND_RANDOM] += int((~kind_mask & ~kind_kept).sum())
    counts["nsp_next"] += int((nsp == 0).sum())
    counts["nsp_random"] += int((nsp == 1).sum())
    for length, c in enumerate(np.bincount(lengths)):
        if c:
            counts[length_counter(length)] += int(c)
    return defects, counts


def check_doc_starts(table: pa.Table, cfg: dict, lengths: np.ndarray, defect, counts: Counter) -> bool:
    """Packed rows: ``doc_starts`` begin at 0, ascend with pieces of a token and a [SEP] at least
    (the first also holds [CLS]) inside the row, one piece a row in doc-sentences. Counts the rows,
    full rows (max_seq_length, or one short) and pieces, as ``corpusgen.packing`` does."""
    n = len(lengths)
    starts, soff = _flat(table.column("doc_starts"))
    starts = starts.astype(np.int64)
    nseg = np.diff(soff)
    defect(nseg == 0, "no doc_starts")
    if (nseg == 0).any():
        return False
    srow = np.repeat(np.arange(n), nseg)
    first = soff[:-1]
    defect(starts[first] != 0, "doc_starts do not begin at 0")
    ends = np.append(starts[1:], 0)
    last = np.zeros(len(starts), bool)
    last[soff[1:] - 1] = True
    ends[last] = lengths
    size = ends - starts
    need = np.where(starts == 0, 3, 2)
    defect(np.bincount(srow[size < need], minlength=n) > 0, "doc_starts not ascending with room for a token and [SEP]")
    if cfg["next_sentence"] == "doc-sentences":
        defect(nseg != 1, "more than one document in a doc-sentences row")
    counts[PACKED_ROWS] += n
    counts[PACKED_ROWS_FULL] += int((lengths >= cfg["max_seq_length"] - 1).sum())
    counts[PACKED_SEGMENTS] += int(nseg.sum())
    return not ((starts[first] != 0).any() or (size < need).any())


def rate_defects(cfg: dict, masked: int, total: Counter, rate: dict) -> list[str]:
    """The measured mask rate and replacement split against the config, within binomial bounds.

    The split: the shares of [MASK] and of random tokens among the masked positions, each within
    ``RATE_Z`` standard errors of ``mask_replace_prob`` / ``random_replace_prob``. The rate: masked
    positions over candidates within ``RATE_Z`` standard errors of ``masked_lm_prob``, widened by
    how far the rows' budgets themselves lie from it (rounding, at least 1, the cap): exact for the
    token scheme; for word schemes, whose rows stop short of the budget by less than a word, only
    the upper bound is checked (each row's count never exceeds its budget, checked row by row).
    """
    out = []
    for kind, name in ((KIND_MASK, "mask_replace_prob"), (KIND_RANDOM, "random_replace_prob")):
        p = float(cfg.get(name, {"mask_replace_prob": 0.8, "random_replace_prob": 0.1}[name]))
        share = total[kind] / masked
        if abs(share - p) > binomial_halfwidth(masked, p, RATE_Z):
            out.append(
                f"{MANIFEST_NAME}: {kind} share {share:.4f} of {masked} masked positions is outside "
                f"{RATE_Z:g} standard errors of {name} {p}"
            )
    cands = rate.get(CANDIDATES, 0)
    if cands:
        p = float(cfg["masked_lm_prob"])
        share = masked / cands
        bound = binomial_halfwidth(cands, p, RATE_Z) + rate.get(BUDGET_GAP, 0.0) / cands
        low = share < p - bound and cfg.get("mask_scheme", "token") == "token"
        if low or share > p + bound:
            out.append(
                f"{MANIFEST_NAME}: masked share {share:.4f} of {cands} candidates is outside "
                f"{RATE_Z:g} standard errors of masked_lm_prob {p}"
            )
    return out


def validate_build(build_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A report: ``ok``, ``defects`` (strings naming file and problem), ``checked`` figures."""
    build_dir = Path(build_dir)
    defects: list[str] = []
    try:
        manifest = load_manifest(build_dir)
    except ManifestError as exc:
        return {"ok": False, "defects": [str(exc)], "checked": {}}

    # load_manifest has refused any entry that leads outside the build; resolve_entry gives the path
    vocab = resolve_entry(build_dir, manifest["vocab"], what="vocab")
    if not vocab.is_file():
        defects.append(f"{vocab}: vocabulary file missing")
    elif sha256_file(vocab) != manifest["vocab_sha256"]:
        defects.append(f"{vocab}: sha256 differs from the manifest's vocab_sha256")

    tables = None  # the masking tables of the vocabulary, when it can be read
    if not defects:
        try:
            wp = SubwordTokenizer(VocabFile(vocab.name, vocab.read_bytes()), manifest["config"].get("do_lower_case"))
        except (OSError, VocabError) as exc:
            # static rows stand without it (their budgets and rates then go unchecked); dynamic rows do not
            if manifest["config"].get("dynamic_masking"):
                defects.append(f"{vocab}: vocabulary unreadable ({exc}); the dynamic masks cannot be drawn")
        else:
            defects += [f"{MANIFEST_NAME}: {p}" for p in wp.entry_problems(manifest["tokenizer"])]
            tables = VocabTables.from_tokenizer(wp) if not defects else None
    cfg = manifest["config"]
    packed = cfg.get("next_sentence") in PACKED_MODES
    expected_schema = layout_schema(cfg, manifest["tokenizer"]["vocab_size"])
    short_rows: Counter = Counter()  # full-sentences: rows shorter than full, by (split, pool)
    total: Counter = Counter()
    listed = set()
    rows_checked = 0
    for i, entry in enumerate(manifest["shards"]):
        path = resolve_entry(build_dir, entry["path"], what=f"shards[{i}].path")
        listed.add(path.resolve())
        where = entry["path"]
        if not path.is_file():
            defects.append(
                f"{where}: {'a folder, not a shard file' if path.is_dir() else 'listed in the manifest but missing'}"
            )
            continue
        size = path.stat().st_size
        if size != entry["bytes"]:
            defects.append(f"{where}: {size} bytes, manifest says {entry['bytes']}")
        if sha256_file(path) != entry["sha256"]:
            defects.append(f"{where}: sha256 differs from the manifest (corrupt or replaced)")
            continue
        try:
            table = open_shard(path).read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            defects.append(f"{where}: unreadable Arrow IPC file ({exc})")
            continue
        if not table.schema.equals(expected_schema):
            defects.append(f"{where}: schema {table.schema} differs from format v1's {expected_schema}")
            continue
        if table.num_rows != entry["rows"]:
            defects.append(f"{where}: {table.num_rows} rows, manifest says {entry['rows']}")
        bin_range = tuple(entry["bin"]) if entry.get("bin") else None
        shard_defects, counts = check_table(table, manifest, bin_range, tables=tables, path=entry["path"])
        defects += [f"{where}: {d}" for d in shard_defects]
        if counts["instance_tokens"] != entry["tokens"] and not shard_defects:
            defects.append(f"{where}: {counts['instance_tokens']} tokens, manifest says {entry['tokens']}")
        total.update(counts)
        rows_checked += table.num_rows
        if cfg.get("next_sentence") == "full-sentences" and not shard_defects:
            lengths = np.diff(table.column("input_ids").combine_chunks().offsets.to_numpy())
            short_rows[(entry.get("split"), shard_pool(entry["path"]))] += int(
                (lengths < cfg["max_seq_length"] - 1).sum()
            )

    shards_dir = build_dir / "shards"
    if shards_dir.is_dir():
        for extra in sorted(p for p in shards_dir.rglob("*") if p.is_file() and p.resolve() not in listed):
            defects.append(
                f"{extra.relative_to(build_dir)}: file in shards/ not listed in {MANIFEST_NAME} (stale or partial)"
            )

    for (split, pool), short in sorted(short_rows.items(), key=str):
        if short > cfg["dupe_factor"]:
            defects.append(
                f"{split} pool {pool}: {short} full-sentences rows shorter than max_seq_length - 1; "
                f"only the last row of each of the {cfg['dupe_factor']} copies may be"
            )

    rate = {k: total.pop(k) for k in (CANDIDATES, BUDGET_GAP) if k in total}
    claimed = manifest.get("counters", {})
    if "mask_candidates" in claimed and tables is not None:  # builds made by the pipeline count them
        total["mask_candidates"] = int(rate.get(CANDIDATES, 0))
    for key in sorted(
        set(total)
        | {k for k in claimed if k.startswith(LENGTH_PREFIX)}
        | {"instances", "nsp_next", "nsp_random", KIND_MASK, KIND_RANDOM, KIND_KEPT, "instance_tokens"}
        | ({PACKED_ROWS, PACKED_ROWS_FULL, PACKED_SEGMENTS} if packed else set())
    ):
        if int(claimed.get(key, 0)) != int(total.get(key, 0)):
            defects.append(
                f"{MANIFEST_NAME}: statistic {key} is {claimed.get(key, 0)}, the shards give {total.get(key, 0)}"
            )

    if not total["instances"] and not defects:
        drops = ", ".join(f"{k} {v}" for k, v in manifest.get("stats", {}).get("drops", {}).items()) or "none recorded"
        defects.append(f"{MANIFEST_NAME}: the build holds no instances (drops: {drops}); nothing can be trained on it")

    masked = total[KIND_MASK] + total[KIND_RANDOM] + total[KIND_KEPT]
    if tables is not None and masked and not defects:
        defects += rate_defects(cfg, masked, total, rate)
    nsp = total["nsp_next"] + total["nsp_random"]
    return {
        "ok": not defects,
        "defects": defects,
        "checked": {
            "shards": len(manifest["shards"]),
            "rows": rows_checked,
            "tokens": total["instance_tokens"],
            "nsp_random_share": round(total["nsp_random"] / nsp, 6) if nsp else None,
            "mask_share": round(total[KIND_MASK] / masked, 6) if masked else None,
            "random_share": round(total[KIND_RANDOM] / masked, 6) if masked else None,
            "kept_share": round(total[KIND_KEPT] / masked, 6) if masked else None,
            "padding_share_at_most": padding_share_bound(
                {int(k[len(LENGTH_PREFIX) :]): v for k, v in total.items() if k.startswith(LENGTH_PREFIX)},
                cfg["length_bin_width"],
                cfg["max_seq_length"],
            ),
            "masked_share": round(masked / rate[CANDIDATES], 6) if rate.get(CANDIDATES) else None,
            "bytes_per_token": round(sum(e["bytes"] for e in manifest["shards"]) / total["instance_tokens"], 4)
            if total["instance_tokens"]
            else None,
        },
    }
