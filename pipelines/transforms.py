"""The build's steps as composite PTransforms, each wiring plain functions of ``corpusgen``.

Every DoFn counts what it reads, keeps and drops (``CountingDoFn``): the counts go to
Beam Metrics and, as data, to a ``stats`` side output that the manifest is made from.
Stats travel as data because a retried bundle's outputs are discarded with it, so
the manifest's counts are exact on every runner.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from corpusgen import readers, stats
from corpusgen.clean import clean_document, content_key
from corpusgen.config import BuildConfig
from corpusgen.masking import VocabTables, mask_documents
from corpusgen.pairing import TokenizedDocument, create_pairs, document_rng
from corpusgen.shards import Instances, serialize_shard, shard_path, shard_schema
from corpusgen.tokenizer import VocabFile, WordPiece, tokenize_documents
from pipelines.inputs import open_raw

STATS = "stats"
REMOVED = "removed"  # dropped documents with their reason, when cfg.write_removed
log = logging.getLogger("corpusgen")


def seeded_hash(seed: int, *parts: str) -> int:
    """A stable 64-bit hash of ``parts`` under ``seed`` (same on every worker and run)."""
    h = hashlib.blake2b((f"{seed}\x1f" + "\x1f".join(parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "little")


class CountingDoFn(beam.DoFn):
    """A DoFn whose ``self.counts`` are published per bundle as Metrics and as a ``stats`` output."""

    def start_bundle(self) -> None:
        self.counts: Counter = Counter()

    def finish_bundle(self) -> Iterator:
        if not self.counts:
            return
        for name, value in self.counts.items():
            Metrics.counter("corpusgen", name).inc(value)
        yield TaggedOutput(STATS, WindowedValue(dict(self.counts), MIN_TIMESTAMP, [GlobalWindow()]))
        self.counts = Counter()

    def drop(self, reason: str, text: str | None, cfg: BuildConfig):
        """Count a dropped document; with ``write_removed``, also emit it (yield from this)."""
        self.counts[reason] += 1
        if cfg.write_removed and text is not None:
            yield TaggedOutput(REMOVED, json.dumps({"reason": reason, "text": text}, ensure_ascii=False))


class MergeCounts(beam.CombineFn):
    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, acc: Counter, item: dict) -> Counter:
        acc.update(item)
        return acc

    def merge_accumulators(self, accs: Iterable[Counter]) -> Counter:
        out = Counter()
        for a in accs:
            out.update(a)
        return out

    def extract_output(self, acc: Counter) -> dict:
        return dict(acc)


# --- read ------------------------------------------------------------------------------


class _ParseFile(CountingDoFn):
    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg = cfg

    def process(self, path: str) -> Iterator[str]:
        yield from readers.read_documents(path, self.cfg, self.counts, opener=open_raw)


class ReadDocuments(beam.PTransform):
    """File paths → document texts (every skipped file, line or record counted by reason)."""

    def __init__(self, cfg: BuildConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def expand(self, paths):
        return (
            paths
            | "Distribute" >> beam.Reshuffle()
            | "Parse" >> beam.ParDo(_ParseFile(self.cfg)).with_outputs(STATS, main="docs")
        )


# --- clean + dedup -----------------------------------------------------------------------


class _Clean(CountingDoFn):
    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg = cfg

    def process(self, text: str) -> Iterator[tuple[str, str]]:
        cleaned, reason = clean_document(text, self.cfg, self.counts)
        if reason is not None:
            yield from self.drop(reason, text, self.cfg)
            return
        yield content_key(cleaned), cleaned


class _KeepOne(CountingDoFn):
    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg = cfg
        self.dedup = cfg.dedup

    def process(self, group: tuple[str, Iterable[str]]) -> Iterator[tuple[str, str]]:
        key, texts = group
        texts = sorted(texts)  # group order differs between runners; the choice must not
        if self.dedup:
            for dup in texts[1:]:
                yield from self.drop(stats.DUPLICATE_DOCUMENT, dup, self.cfg)
            self.counts["documents_unique"] += 1
            yield key, texts[0]
            return
        for i, text in enumerate(texts):
            self.counts["documents_unique"] += 1
            yield (key if i == 0 else hashlib.blake2b(f"{key}:{i}".encode(), digest_size=16).hexdigest()), text


class CleanDocuments(beam.PTransform):
    """Texts → (content key, cleaned text), exact duplicates removed."""

    def __init__(self, cfg: BuildConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def expand(self, docs):
        cleaned = docs | "Normalize" >> beam.ParDo(_Clean(self.cfg)).with_outputs(STATS, REMOVED, main="docs")
        unique = (
            cleaned.docs
            | "GroupByContent" >> beam.GroupByKey()
            | "KeepOne" >> beam.ParDo(_KeepOne(self.cfg)).with_outputs(STATS, REMOVED, main="docs")
        )
        stats_ = (cleaned[STATS], unique[STATS]) | "FlattenStats" >> beam.Flatten()
        removed = (cleaned[REMOVED], unique[REMOVED]) | "FlattenRemoved" >> beam.Flatten()
        return unique.docs, stats_, removed


class _Signature(beam.DoFn):
    def __init__(self, cfg: BuildConfig) -> None:
        self.nd = cfg.near_dedup

    def process(self, kv: tuple[str, str]):
        from corpusgen.neardup import lsh_band_keys, minhash_signature

        key, text = kv
        nd = self.nd
        sig = minhash_signature(text, num_perm=nd.num_perm, ngram=nd.ngram, seed=nd.seed)
        for band in lsh_band_keys(sig, nd.bands, nd.rows):
            yield band, (key, sig)


class _DropInBucket(beam.DoFn):
    def __init__(self, cfg: BuildConfig) -> None:
        self.threshold = cfg.near_dedup.threshold

    def process(self, group):
        from corpusgen.neardup import near_duplicates_to_drop

        _, members = group
        members = sorted(members, key=lambda m: m[0])
        if len(members) > 1:
            for key in near_duplicates_to_drop(members, self.threshold):
                yield key, True


class _KeepUnmarked(CountingDoFn):
    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg = cfg

    def process(self, joined):
        key, grouped = joined
        texts, marks = list(grouped["docs"]), list(grouped["drop"])
        for text in texts:
            if marks:
                yield from self.drop(stats.NEAR_DUPLICATE_DOCUMENT, text, self.cfg)
            else:
                yield key, text


class DropNearDuplicates(beam.PTransform):
    """(key, text) → (key, text) without near-duplicates: MinHash, LSH bands, verified pairs.

    Documents sharing a band are candidates; a candidate pair whose signatures agree on at
    least ``threshold`` of their values is a near-duplicate, and of each cluster the smallest
    content key is kept. Nothing is held globally: buckets and the join are keyed shuffles.
    """

    def __init__(self, cfg: BuildConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def expand(self, docs):
        marks = (
            docs
            | "Signature" >> beam.ParDo(_Signature(self.cfg))
            | "GroupBands" >> beam.GroupByKey()
            | "FindDuplicates" >> beam.ParDo(_DropInBucket(self.cfg))
            | "OncePerKey" >> beam.CombinePerKey(lambda values: True)
        )
        out = (
            {"docs": docs, "drop": marks}
            | "Join" >> beam.CoGroupByKey()
            | "Keep" >> beam.ParDo(_KeepUnmarked(self.cfg)).with_outputs(STATS, REMOVED, main="docs")
        )
        return out.docs, out[STATS], out[REMOVED]


# --- split + tokenize ---------------------------------------------------------------------


class _SplitTokenize(CountingDoFn):
    def __init__(self, cfg: BuildConfig, vocab: VocabFile) -> None:
        self.cfg = cfg
        self.vocab = vocab

    def setup(self) -> None:
        from corpusgen.split import split_sentences

        self.split = split_sentences
        self.wp = WordPiece(self.vocab, self.cfg.do_lower_case)
        self.last_log = time.monotonic()
        self.seen_docs = 0

    def process(self, batch: list[tuple[str, str]]) -> Iterator[tuple[str, TokenizedDocument]]:
        cfg = self.cfg
        if cfg.quality is not None:
            from corpusgen.quality import check_document
        kept = []
        for key, text in batch:
            try:  # one document's failure is its drop, never the build's
                sentences = self.split(text, cfg.lang, cfg.line_breaks)
                reason = None if cfg.quality is None else check_document(text, sentences, cfg.quality)
            except Exception as exc:
                yield from self._document_error(key, text, "splitting", exc)
                continue
            self.counts["sentences_read"] += len(sentences)
            if reason is None:
                kept.append((key, text, sentences))
            else:
                yield from self.drop(f"{stats.QUALITY_PREFIX}{reason}", text, cfg)
        texts = {k: t for k, t, _ in kept} if cfg.write_removed else {}
        min_sentences = 1 if cfg.next_sentence == "none" else 2
        try:
            tokenized = self._tokenize(kept)
        except Exception:  # find the failing document(s): tokenize each alone
            tokenized = []
            for doc in kept:
                try:
                    tokenized += self._tokenize([doc])
                except Exception as exc:
                    yield from self._document_error(doc[0], doc[1], "tokenizing", exc)
        for key, ids, bounds in tokenized:
            n_tokens, n_sent = int(bounds[-1]), len(bounds) - 1
            self.counts["tokens_read"] += n_tokens
            if n_tokens == 0:
                yield from self.drop(stats.EMPTY_AFTER_TOKENIZATION, texts.get(key), cfg)
                continue
            if n_sent < min_sentences:
                yield from self.drop(stats.SINGLE_SENTENCE, texts.get(key), cfg)
                self.counts["tokens_in_dropped_documents"] += n_tokens
                continue
            heldout = seeded_hash(cfg.random_seed, key, "heldout") < cfg.heldout_fraction * 2.0**64
            split = "heldout" if heldout else "train"
            self.counts["documents_kept"] += 1
            self.counts["documents_heldout"] += heldout
            self.counts["sentences_kept"] += n_sent
            self.counts["tokens_kept"] += n_tokens
            yield split, TokenizedDocument(key, ids, bounds)
        self.seen_docs += len(batch)
        if time.monotonic() - self.last_log > 30:
            log.info("split and tokenized %d documents in this worker", self.seen_docs)
            self.last_log = time.monotonic()

    def _tokenize(self, docs: list[tuple[str, str, list[str]]]):
        counts: Counter = Counter()  # counted only when the whole call succeeds
        out = tokenize_documents([d[0] for d in docs], [d[2] for d in docs], self.wp, self.cfg.max_num_tokens, counts)
        self.counts.update(counts)
        return out

    def _document_error(self, key: str, text: str, step: str, exc: Exception):
        log.warning("document %s: %s failed (%s: %s); dropped it", key, step, type(exc).__name__, exc, exc_info=True)
        yield from self.drop(stats.DOCUMENT_ERROR, text, self.cfg)


class SplitAndTokenize(beam.PTransform):
    """(key, text) → (split, TokenizedDocument): sentences, WordPiece ids, held-out assignment."""

    def __init__(self, cfg: BuildConfig, vocab: VocabFile) -> None:
        super().__init__()
        self.cfg, self.vocab = cfg, vocab

    def expand(self, docs):
        return (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=16, max_batch_size=256)
            | "SplitTokenize"
            >> beam.ParDo(_SplitTokenize(self.cfg, self.vocab)).with_outputs(STATS, REMOVED, main="docs")
        )


# --- pair + mask ------------------------------------------------------------------------------


def num_pools(tokens: int, cfg: BuildConfig) -> int:
    return max(1, math.ceil(tokens / cfg.nsp_pool_tokens))


class _CreateInstances(CountingDoFn):
    def __init__(self, cfg: BuildConfig, tables: VocabTables) -> None:
        self.cfg, self.tables = cfg, tables

    def process(self, group: tuple[tuple[str, int], Iterable[TokenizedDocument]]):
        (split, _), docs = group
        cfg = self.cfg
        pool = sorted(docs, key=lambda d: d.key)  # the grouping's order varies; the result must not
        self.counts["pools"] += 1
        self.counts["pool_documents"] += len(pool)
        parts = []
        batch_docs = 512  # masked together; bounds the arrays of one call
        for dupe in range(cfg.dupe_factor):
            for lo in range(0, len(pool), batch_docs):
                batch = []
                for i in range(lo, min(lo + batch_docs, len(pool))):
                    rng = document_rng(cfg.random_seed, pool[i].key, dupe)
                    pairs = create_pairs(i, pool, cfg, rng, self.counts)
                    self.counts["short_target_instances"] += sum(p.short for p in pairs)
                    batch.append((pairs, rng))
                parts.append(mask_documents(batch, self.tables, cfg, self.counts))
        if not parts:
            return
        inst = Instances.concat(parts)
        log.info("pool %s/%d: %d documents → %d instances", split, group[0][1], len(pool), len(inst))
        self.counts[f"instances_{split}"] += len(inst)
        labels = inst.next_sentence_label
        self.counts["nsp_next"] += int((labels == 0).sum())
        self.counts["nsp_random"] += int((labels == 1).sum())
        for length, n in enumerate(np.bincount(inst.lengths)):
            if n:
                self.counts[stats.length_counter(length)] += int(n)
        bins = (inst.lengths.astype(np.int64) - 1) // cfg.length_bin_width
        for b in np.unique(bins):
            yield (split, int(b)), inst.take(np.flatnonzero(bins == b))


class CreateInstances(beam.PTransform):
    """(split, TokenizedDocument) → ((split, bin), Instances): NSP/SOP pairs, masks, length bins.

    Documents are grouped into pools by a seeded hash; a random B comes from another
    document of the same pool. ceil(tokens / nsp_pool_tokens) pools per split.
    """

    def __init__(self, cfg: BuildConfig, tables: VocabTables) -> None:
        super().__init__()
        self.cfg, self.tables = cfg, tables

    def expand(self, docs):
        cfg = self.cfg
        tokens = (
            docs | "Tokens" >> beam.Map(lambda kv: (kv[0], kv[1].n_tokens)) | "SumTokens" >> beam.CombinePerKey(sum)
        )

        def to_pool(kv, totals):
            split, doc = kv
            pools = num_pools(totals.get(split, 0), cfg)
            return (split, seeded_hash(cfg.random_seed, doc.key, "pool") % pools), doc

        return (
            docs
            | "AssignPool" >> beam.Map(to_pool, totals=beam.pvalue.AsDict(tokens))
            | "GroupPools" >> beam.GroupByKey()
            | "PairAndMask" >> beam.ParDo(_CreateInstances(cfg, self.tables)).with_outputs(STATS, main="instances")
        )


# --- shard + write ------------------------------------------------------------------------------


class _WriteShard(beam.DoFn):
    """Sort, serialise and write shards; several at once on a thread pool.

    zstd at the levels that reach ~1.5 bytes per token is the costliest step after
    tokenization, and Arrow's compression releases the GIL: shards of a bundle compress in
    parallel on the worker's cores. At most 2 x cores shards are in flight, which bounds memory.
    """

    def __init__(self, output_dir: str, cfg: BuildConfig, vocab_size: int) -> None:
        self.output_dir, self.cfg, self.vocab_size = output_dir, cfg, vocab_size

    def setup(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.threads = max(1, os.cpu_count() or 1)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="write-shard")

    def teardown(self) -> None:
        self.pool.shutdown(wait=True)

    def start_bundle(self) -> None:
        self.pending: list = []

    def process(self, group):
        self.pending.append(self.pool.submit(self._write, *group))
        while len(self.pending) > 2 * self.threads:
            yield self.pending.pop(0).result()

    def finish_bundle(self):
        for future in self.pending:
            yield WindowedValue(future.result(), MIN_TIMESTAMP, [GlobalWindow()])
        self.pending = []

    def _write(self, key, parts) -> dict:
        split, b, index, count = key
        cfg = self.cfg
        inst = Instances.concat(list(parts))
        # Sorting by the seeded per-instance key shuffles the shard, identically on every run.
        inst = inst.take(np.argsort(inst.order_key, kind="stable"))
        lo, hi = cfg.bin_range(b)
        rel = shard_path(split, lo, hi, index, count)
        data = serialize_shard(
            inst,
            shard_schema(self.vocab_size, cfg.max_seq_length),
            zstd_level=cfg.zstd_level,
            rows_per_batch=cfg.rows_per_batch,
        )
        final = FileSystems.join(self.output_dir, rel)
        tmp = FileSystems.join(self.output_dir, f"{rel}.tmp-{hashlib.sha1(data).hexdigest()[:12]}")
        _write_atomic(tmp, final, data)
        log.info("wrote %s (%d rows, %.1f MB)", rel, len(inst), len(data) / 1e6)
        return {
            "path": rel,
            "rows": len(inst),
            "tokens": inst.num_tokens,
            "bin": [lo, hi],
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "split": split,
        }


def _write_atomic(tmp: str, final: str, data: bytes) -> None:
    """Write to a temporary name, then rename: readers never see a partial file."""
    with FileSystems.create(tmp) as f:  # creates missing local folders
        f.write(data)
    FileSystems.rename([tmp], [final])


class WriteShards(beam.PTransform):
    """((split, bin), Instances) → shard entries: rows spread over shards by their seeded key."""

    def __init__(self, output_dir: str, cfg: BuildConfig, vocab_size: int) -> None:
        super().__init__()
        self.output_dir, self.cfg, self.vocab_size = output_dir, cfg, vocab_size

    def expand(self, chunks):
        cfg = self.cfg
        rows = chunks | "Rows" >> beam.Map(lambda kv: (kv[0], len(kv[1]))) | "SumRows" >> beam.CombinePerKey(sum)

        def to_shards(kv, totals):
            (split, b), inst = kv
            count = max(1, math.ceil(totals[(split, b)] / cfg.rows_per_shard))
            shard = inst.order_key % np.uint64(count)
            for s in np.unique(shard):
                yield (split, b, int(s), count), inst.take(np.flatnonzero(shard == s))

        return (
            chunks
            | "AssignShard" >> beam.FlatMap(to_shards, totals=beam.pvalue.AsDict(rows))
            | "GroupShards" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteShard(self.output_dir, cfg, self.vocab_size))
        )
