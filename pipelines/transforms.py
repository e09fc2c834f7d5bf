"""The build's steps as composite PTransforms, each wiring plain functions of ``corpusgen``.

What crosses the runner's shuffles is small: file names, keys, counts. The corpus itself goes
through intermediate files (``corpusgen.intermediate``) that one worker writes and another reads:

    files ─► ReadDocuments ─► document chunks ─► TokenizeChunks ─► token files ─► CreateShards ─► shards
             (per input file)                    (per chunk: clean,  (sorted by      (per NSP pool: dedup,
                                                  split, tokenize)    pool hash)      pair, mask, write)

so no step holds more than a chunk, a pool or a shard, on any runner, and the costly steps run
in parallel even when the input is one large file.

Every DoFn counts what it reads, keeps and drops (``CountingDoFn``): the counts go to Beam
Metrics and, as data, to a ``stats`` side output that the manifest is made from. Stats travel
as data because a retried bundle's outputs are discarded with it, so the manifest's counts are
exact on every runner.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from corpusgen import intermediate, readers, stats
from corpusgen.clean import clean_document, content_key
from corpusgen.config import BuildConfig
from corpusgen.documents import drop, prepare_documents
from corpusgen.instances import create_instances, unique_documents
from corpusgen.intermediate import WORK_DIR
from corpusgen.masking import VocabTables, shard_mask_counters
from corpusgen.partition import SPLITS, num_pools, pool_hash, pool_of, pool_range, split_of
from corpusgen.shards import (
    Instances,
    atomic_write_bytes,
    cut_into_shards,
    instance_counters,
    sha256_bytes,
    shard_of_bin,
    shards_in_bin,
    token_dtype,
)
from corpusgen.timing import METRIC_PREFIX, StageTimer
from corpusgen.tokenizer import VocabFile, shared_tokenizer
from pipelines.inputs import open_raw

STATS = "stats"
REMOVED = "removed"  # dropped documents with their reason, when cfg.write_removed
SIGNATURES = "signatures"  # MinHash LSH band keys, when cfg.near_dedup
WRITTEN = "written"  # shard entries of a pool written by its pairing task (many pools)
DOCS_PER_TOKENIZE_BATCH = 256  # documents per tokenizer call: bounds its memory
log = logging.getLogger("corpusgen")


def write_file(path: str, data: bytes) -> None:
    """Write a file so readers see all of it or nothing: durable where local, renamed into place."""
    if "://" not in path:
        atomic_write_bytes(path, data)
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    with FileSystems.create(tmp) as f:
        f.write(data)
    FileSystems.rename([tmp], [path])


def read_file(path: str) -> bytes:
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return f.read()


@dataclass(frozen=True)
class StagedVocab:
    """The build's vocabulary as the steps that need it carry it: name, checksum and the path of the
    copy ``written`` puts in the work directory before the run, never its bytes. Beam pickles every
    step with bz2 twice while building the graph and unpickles it in every worker; with the bytes
    inside, BERT's 230 KB vocab.txt cost ~0.1 s a step, a 17 MB multilingual tokenizer.json seconds.
    """

    name: str
    sha256: str
    path: str

    @classmethod
    def of(cls, vocab: VocabFile, work_dir: str) -> StagedVocab:
        return cls(
            vocab.name, vocab.sha256, FileSystems.join(work_dir, "vocabulary", f"{vocab.sha256[:16]}-{vocab.name}")
        )

    @classmethod
    def written(cls, vocab: VocabFile, work_dir: str) -> StagedVocab:
        """``of``, with the copy written (before the run: a dry run builds the graph and writes nothing)."""
        staged = cls.of(vocab, work_dir)
        write_file(staged.path, vocab.data)
        return staged

    def load(self) -> VocabFile:
        try:
            vocab = VocabFile(self.name, read_file(self.path))
        except Exception as exc:  # FileSystems raises BeamIOError, a local file OSError
            raise RuntimeError(
                f"{self.path}: the build's copy of its vocabulary cannot be read ({exc}); was the output's "
                f"{WORK_DIR} folder removed while the build ran? Rerun the build"
            ) from None
        if vocab.sha256 != self.sha256:
            raise RuntimeError(f"{self.path}: the build's copy of its vocabulary changed while it ran; rerun the build")
        return vocab


# A step's *marker* records what a finished unit of work (an input file, a chunk, a pool) produced:
# its outputs and counts. A rerun of a killed build finds it and re-emits them instead of redoing
# the work; the outputs are deterministic, so the build's bytes are the same either way.


def read_marker(path: str) -> dict | None:
    try:
        if not FileSystems.exists(path):
            return None
        return json.loads(read_file(path))
    except (OSError, ValueError):  # a torn or unreadable marker: redo the work
        return None


def write_marker(path: str, record: dict) -> None:
    write_file(path, json.dumps(record).encode("utf-8"))


LAUNCHER_PID = "CORPUSGEN_LAUNCHER_PID"  # set by a local run for its worker processes
BEAM_WORKER_MAIN = "apache_beam.runners.worker.sdk_worker_main"  # what the FnApiRunner's worker processes run
_local_worker_set_up = False


def set_up_local_worker() -> None:
    """In a local run's worker process, once: tie its end to the launcher's, and let it end at once.

    Beam's local worker processes outlive a killed launcher by minutes (until their gRPC
    channels time out), working on and holding its terminal's pipes; a thread here ends them
    within a second. And a worker process the FnApiRunner is done with spends ~0.2 s tearing
    down gRPC and Beam before it exits, while the runner stops its workers one after another
    (0.4 s of a 2-worker build, 3 s with 16): ``_exit_when_done`` skips that teardown. Does
    nothing in the launcher itself or where no local run set the variable.
    """
    global _local_worker_set_up
    pid = int(os.environ.get(LAUNCHER_PID, "0") or 0)
    if _local_worker_set_up or pid in (0, os.getpid()):
        return
    _local_worker_set_up = True

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):  # gone (or the pid is now another user's)
                os._exit(1)

    import threading

    threading.Thread(target=watch, name="exit-with-launcher", daemon=True).start()
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if getattr(main_spec, "name", None) == BEAM_WORKER_MAIN:  # not a Dask worker: its nanny ends it
        atexit.register(_exit_when_done)


def _exit_when_done() -> None:
    """The first exit handler of a FnApiRunner worker process: end it now, with the exit status it has.

    It runs once Beam's harness has returned: its results are sent, its log channel is closed,
    and every file a step wrote was closed before that step's element was done. An uncaught
    exception (a failed harness, the SIGINT of Beam's own termination) leaves ``sys.last_value``
    and exits 1, as the interpreter would.
    """
    exit_without_teardown(1 if hasattr(sys, "last_value") else 0)


def exit_without_teardown(status: int) -> None:
    """End this process now: logs and standard streams flushed, the interpreter's teardown skipped.

    For a process whose work is done and whose files are closed: tearing down Beam's and gRPC's
    modules and threads costs ~0.2-0.3 s a process and saves nothing.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken: nothing left to lose
            pass
    os._exit(status)


class CountingDoFn(beam.DoFn):
    """A DoFn whose ``self.counts`` go out after each element as Metrics and as a ``stats`` output.

    Per element, not per bundle: the elements are coarse (a file, a chunk, a pool), and outputs of
    ``finish_bundle`` are not delivered by every runner (Beam's DaskRunner drops them). ``self.timer``'s
    seconds per stage go to Metrics only (microseconds), for ``bench build``: they differ from run
    to run, so they stay out of the manifest.
    """

    def setup(self) -> None:
        set_up_local_worker()
        self.counts: Counter = Counter()
        self.timer = StageTimer()

    def take_counts(self) -> dict:
        counts, self.counts = dict(self.counts), Counter()
        for name, value in counts.items():
            Metrics.counter("corpusgen", name).inc(value)
        for stage, seconds in self.timer.take().items():
            Metrics.counter("corpusgen", f"{METRIC_PREFIX}{stage}_us").inc(int(seconds * 1e6))
        return counts

    @staticmethod
    def emit_removed(removed: list[tuple[str, str]] | None) -> Iterator:
        for reason, text in removed or ():
            yield TaggedOutput(REMOVED, json.dumps({"reason": reason, "text": text}, ensure_ascii=False))


MAIN = "main"


class _AsTuples(beam.DoFn):
    """Runs a multi-output DoFn and emits every output as a ``(tag, value)`` pair in one PCollection.

    Beam's DaskRunner mixes up a ParDo's tagged outputs (its main output reached the consumer of a
    tagged one in a trial on this pipeline); one output, split by tag with plain FlatMaps, runs the
    same on every runner, and costs nothing worth measuring: the elements are file names and counts.
    """

    def __init__(self, inner: beam.DoFn) -> None:
        self.inner = inner

    def setup(self):
        self.inner.setup()

    def process(self, element, *side):
        for out in self.inner.process(element, *side) or ():
            yield (out.tag, out.value) if isinstance(out, TaggedOutput) else (MAIN, out)
        if isinstance(self.inner, CountingDoFn):
            counts = self.inner.take_counts()
            if counts:
                yield (STATS, counts)

    def teardown(self):
        self.inner.teardown()


def par_do(pcoll, label: str, dofn: beam.DoFn, tags: tuple[str, ...], *side) -> dict:
    """``{MAIN: ..., tag: ...}``: the outputs of ``dofn`` over ``pcoll``, one PCollection a tag."""
    pairs = pcoll | label >> beam.ParDo(_AsTuples(dofn), *side)
    return {
        tag: pairs | f"{label}.{tag}" >> beam.FlatMap(lambda kv, tag=tag: [kv[1]] if kv[0] == tag else [])
        for tag in (MAIN, *tags)
    }


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


class _ReadChunks(CountingDoFn):
    def __init__(self, cfg: BuildConfig, work_dir: str, chunk_chars: int) -> None:
        self.cfg, self.work_dir, self.chunk_chars = cfg, work_dir, chunk_chars

    def process(self, item: tuple[int, str, int, int, int | None]) -> Iterator[dict]:
        file_index, path, part, lo, hi = item
        name = f"{file_index:06d}" if hi is None else f"{file_index:06d}-r{part:04d}"
        marker_path = FileSystems.join(self.work_dir, "docs", f"{name}.json")
        marker = read_marker(marker_path)
        if marker is not None and marker.get("input") == path and marker.get("bytes") == [lo, hi]:
            self.counts.update(marker["counts"])
            yield from marker["chunks"]
            return
        counts: Counter = Counter()
        descs = list(self._read(file_index, path, name, None if hi is None else (lo, hi), counts))
        write_marker(marker_path, {"input": path, "bytes": [lo, hi], "chunks": descs, "counts": counts})
        self.counts.update(counts)
        yield from descs

    def _read(self, file_index: int, path: str, name: str, byte_range, counts: Counter) -> Iterator[dict]:
        locators: list[int] = []
        texts: list[str] = []
        chars = 0
        chunk = 0
        doc_index = 0
        first = 0 if byte_range is None else byte_range[0]  # positions: see intermediate.locator

        def flush():
            nonlocal chunk, chars
            chunk_name = f"{name}-{chunk:05d}"
            out = FileSystems.join(self.work_dir, "docs", f"{chunk_name}.arrow")
            with self.timer.stage("write_work"):
                write_file(out, intermediate.encode_chunk(locators, texts))
            desc = {"chunk": chunk_name, "path": out, "documents": len(texts)}
            locators.clear()
            texts.clear()
            chunk += 1
            chars = 0
            return desc

        # Never raises for what a file holds: faults end the file, counted by reason.
        docs = readers.read_documents(path, self.cfg, counts, opener=open_raw, byte_range=byte_range)
        while True:
            with self.timer.stage("read"):
                doc = next(docs, None)
            if doc is None:
                break
            locators.append(intermediate.locator(file_index, first + doc_index))
            texts.append(doc)
            doc_index += 1
            chars += len(doc)
            if chars >= self.chunk_chars:
                yield flush()
        if texts:
            yield flush()


def byte_ranges(item: tuple[int, str], cfg: BuildConfig, range_bytes: int) -> Iterator[tuple]:
    """``(file index, path, part, lo, hi)`` parts of one input: byte ranges of a large file that
    ``readers.splittable`` accepts (read in parallel), else the whole file (``hi`` None).

    Only the size is looked up and, for a file larger than ``range_bytes``, its first 64 KiB read.
    """
    file_index, path = item
    try:
        size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
        if size > range_bytes:
            with FileSystems.open(path, compression_type="uncompressed") as f:
                head = f.read(1 << 16)
            if readers.splittable(path, cfg, head):
                n = -(-size // range_bytes)
                cuts = [size * i // n for i in range(n + 1)]
                for part in range(n):
                    yield file_index, path, part, cuts[part], cuts[part + 1]
                return
    except (OSError, IndexError):  # cannot be listed or opened here: the reader counts why
        pass
    yield file_index, path, 0, 0, None


class ReadDocuments(beam.PTransform):
    """(file index, path) → document chunk files (every skipped file, line or record counted by reason).

    A large JSON-lines file is read as byte ranges of ``range_bytes`` by several workers at once.
    """

    def __init__(self, cfg: BuildConfig, work_dir: str, chunk_chars: int = 8 << 20, range_bytes: int = 64 << 20):
        super().__init__()
        self.cfg, self.work_dir, self.chunk_chars, self.range_bytes = cfg, work_dir, chunk_chars, range_bytes

    def expand(self, files):
        parts = (
            files
            | "ByteRanges" >> beam.FlatMap(byte_ranges, self.cfg, self.range_bytes)
            | "Distribute" >> beam.Reshuffle()
        )
        return par_do(parts, "Parse", _ReadChunks(self.cfg, self.work_dir, self.chunk_chars), (STATS,))


# --- clean, split, tokenize ----------------------------------------------------------------


class _TokenizeChunk(CountingDoFn):
    def __init__(self, cfg: BuildConfig, vocab: StagedVocab, work_dir: str) -> None:
        self.cfg, self.vocab, self.work_dir = cfg, vocab, work_dir

    def setup(self) -> None:
        super().setup()
        self.wp = shared_tokenizer(self.vocab.load(), self.cfg.do_lower_case)

    def process(self, desc: dict) -> Iterator:
        # With near_dedup the step also emits signatures, which a marker does not keep: no resuming then.
        marker_path = FileSystems.join(self.work_dir, "tokens", f"{desc['chunk']}.json")
        marker = read_marker(marker_path) if self.cfg.near_dedup is None else None
        if marker is not None:
            self.counts.update(marker["counts"])
            yield from self.emit_removed(marker["removed"])
            yield marker["token_file"]
            return
        saved = self.counts
        self.counts = Counter()
        removed: list | None = [] if self.cfg.write_removed else None
        for out in self._tokenize(desc, removed):
            if isinstance(out, dict):
                write_marker(marker_path, {"token_file": out, "counts": self.counts, "removed": removed})
            yield out
        yield from self.emit_removed(removed)
        saved.update(self.counts)
        self.counts = saved

    def _tokenize(self, desc: dict, removed: list | None) -> Iterator:
        cfg = self.cfg
        with self.timer.stage("read"):
            locators, texts = intermediate.decode_chunk(read_file(desc["path"]))
        cleaned = []
        for loc, raw in zip(locators, texts):
            with self.timer.stage("clean"):
                text, reason = clean_document(raw, cfg, self.counts, source=f"chunk {desc['chunk']}")
                key = content_key(text) if reason is None else None
            if reason is not None:
                drop(self.counts, removed, reason, raw)
                continue
            cleaned.append((loc, key, text))
        if cfg.near_dedup is not None:
            yield from self._signatures(cleaned)
        rows = []
        for lo in range(0, len(cleaned), DOCS_PER_TOKENIZE_BATCH):
            batch = cleaned[lo : lo + DOCS_PER_TOKENIZE_BATCH]
            try:
                rows += self._prepare(batch, removed)
            except Exception:  # one document's failure is its drop, never the build's: find it
                for doc in batch:
                    try:
                        rows += self._prepare([doc], removed)
                    except Exception as exc:
                        log.warning("chunk %s, document %s: splitting/tokenizing failed (%s: %s); dropped it",
                                    desc["chunk"], doc[1], type(exc).__name__, exc, exc_info=True)  # fmt: skip
                        drop(self.counts, removed, stats.DOCUMENT_ERROR, doc[2])
        with self.timer.stage("write_work"):
            data, index = intermediate.encode_tokens(rows, token_dtype(self.wp.vocab_size), cfg.write_removed)
            out = FileSystems.join(self.work_dir, "tokens", f"{desc['chunk']}.arrow")
            write_file(out, data)
        tokens = {split: 0 for split in SPLITS}
        for split, _, _, doc, _ in rows:
            tokens[split] += doc.n_tokens
        yield {"path": out, "index": index, "tokens": tokens}

    def _prepare(self, batch, removed: list | None) -> list:
        counts: Counter = Counter()  # merged only when the whole call succeeds
        dropped: list | None = None if removed is None else []
        rows = prepare_documents(batch, self.cfg, self.wp, counts, dropped, self.timer)
        self.counts.update(counts)
        if dropped:
            removed.extend(dropped)
        return rows

    def _signatures(self, cleaned) -> Iterator:
        from corpusgen.neardup import lsh_band_keys, minhash_signature

        nd = self.cfg.near_dedup
        for _, key, text in cleaned:
            sig = minhash_signature(text, num_perm=nd.num_perm, ngram=nd.ngram, seed=nd.seed)
            for band in lsh_band_keys(sig, nd.bands, nd.rows):
                yield TaggedOutput(SIGNATURES, (band, (key, sig)))


class TokenizeChunks(beam.PTransform):
    """Document chunks → token files: cleaned, split into sentences, tokenized, sorted by pool hash."""

    def __init__(self, cfg: BuildConfig, vocab: StagedVocab, work_dir: str) -> None:
        super().__init__()
        self.cfg, self.vocab, self.work_dir = cfg, vocab, work_dir

    def expand(self, chunks):
        chunks = chunks | "Distribute" >> beam.Reshuffle()
        dofn = _TokenizeChunk(self.cfg, self.vocab, self.work_dir)
        return par_do(chunks, "CleanSplitTokenize", dofn, (STATS, REMOVED, SIGNATURES))


# --- near-duplicates -------------------------------------------------------------------------


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


class FindNearDuplicates(beam.PTransform):
    """(LSH band, (key, MinHash signature)) → the content keys to drop as near-duplicates.

    Documents sharing a band are candidates; a candidate pair whose signatures agree on at
    least ``threshold`` of their values is a near-duplicate, and of each cluster the smallest
    content key is kept. Nothing is held globally: the buckets are a keyed shuffle.
    """

    def __init__(self, cfg: BuildConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def expand(self, signatures):
        return (
            signatures
            | "GroupBands" >> beam.GroupByKey()
            | "FindDuplicates" >> beam.ParDo(_DropInBucket(self.cfg))
            | "OncePerKey" >> beam.CombinePerKey(lambda values: True)
            | "Keys" >> beam.Keys()
        )


# --- pair, mask, write shards -------------------------------------------------------------------


def _part_name(split: str, pool: int, pools: int) -> str:
    return f"{split}-{pool:05d}-of-{pools:05d}"


def _intact(path: str, size: int, sha256: str) -> bool:
    """A file from an earlier run is taken as written only if its bytes match what was recorded."""
    try:
        data = read_file(path)
    except OSError:
        return False
    return len(data) == size and sha256_bytes(data) == sha256


class _ShardWriter(CountingDoFn):
    """What the two steps that write shards share: their marker check and their mask counts."""

    def __init__(self, cfg: BuildConfig, tables: VocabTables, output_dir: str) -> None:
        self.cfg, self.tables, self.output_dir = cfg, tables, output_dir

    def _shards_intact(self, marker: dict | None) -> bool:
        """A marker's shards are taken as written only if every file's bytes match its entry."""
        return marker is not None and all(
            _intact(FileSystems.join(self.output_dir, e["path"]), e["bytes"], e["sha256"]) for e in marker["entries"]
        )

    def _mask_counts(self, shard, counts: Counter) -> None:
        if self.cfg.dynamic_masking:  # the masks the loader draws at epoch 0, measured per shard
            r = shard.rows
            counts.update(shard_mask_counters(r.input_ids, r.lengths, r.word_starts, shard.path, self.cfg, self.tables))


class _CopyInstances(_ShardWriter):
    """Some copies (dupes) of one NSP pool: read the pool's documents' slice of every token file
    once, then make each copy's pairs and masks and write them as that copy's instance part (a
    record batch per length bin), each copy with its own marker.

    Emits ``((split, pool, pools, bin), (dupe, part path, batch, rows))`` per bin for ``_WriteShard``. The
    pool's counts of documents (and its removed duplicates) go with copy 0.
    """

    def setup(self) -> None:
        super().setup()
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max(1, os.cpu_count() or 1), thread_name_prefix="write-shard")

    def teardown(self) -> None:
        self.pool.shutdown(wait=True)

    def process(self, task, token_files):
        (split, pool, pools, first, end, direct), near = task[0], set(task[1])
        if direct:
            yield from self._whole_pool(split, pool, pools, near, token_files)
            return
        work = FileSystems.join(self.output_dir, WORK_DIR, "instances")
        unique = None  # the pool's documents, read when a copy is to be made
        for dupe in range(first, end):
            name = FileSystems.join(work, f"{_part_name(split, pool, pools)}.dupe-{dupe:03d}")
            marker = read_marker(f"{name}.json")
            part = None if marker is None else marker["part"]
            if marker is None or (part is not None and not _intact(part["path"], part["bytes"], part["sha256"])):
                counts: Counter = Counter()
                removed: list | None = [] if self.cfg.write_removed and dupe == 0 else None
                if unique is None:
                    # the pool's own counts (and removed duplicates) with copy 0, else dropped
                    unique = self._read_pool(
                        split, pool, pools, near, token_files, counts if dupe == 0 else None, removed
                    )
                part = self._copy(split, pool, pools, dupe, unique, counts, name) if unique else None
                marker = {"part": part, "counts": counts, "removed": removed}
                write_marker(f"{name}.json", marker)
            self.counts.update(marker["counts"])
            yield from self.emit_removed(marker["removed"])
            for batch, (b, rows) in enumerate(part["bins"] if part else ()):
                yield (split, pool, pools, b), (dupe, part["path"], batch, rows)

    def _whole_pool(self, split, pool, pools, near, token_files) -> Iterator:
        """Many pools: every copy of the pool, cut and written here (no instance parts to write and
        read back), the pool's shards compressed on a thread pool (Arrow's zstd releases the GIL)."""
        marker_path = FileSystems.join(self.output_dir, WORK_DIR, "pools", f"{_part_name(split, pool, pools)}.json")
        marker = read_marker(marker_path)
        if not self._shards_intact(marker):
            cfg, counts = self.cfg, Counter()
            removed: list | None = [] if cfg.write_removed else None
            unique = self._read_pool(split, pool, pools, near, token_files, counts, removed)
            inst = create_instances(unique, cfg, self.tables, counts, self.timer) if unique else None
            entries = []
            if inst is not None:
                with self.timer.stage("sort"):
                    counts.update(instance_counters(inst, split, self.tables.mask_id))
                    shards = cut_into_shards(inst, split, cfg, pool=pool, pools=pools)
                    for shard in shards:
                        self._mask_counts(shard, counts)
                for entry, compress, write in self.pool.map(self._write, shards):
                    self.timer.seconds["compress"] += compress  # thread time: may exceed the wall time
                    self.timer.seconds["write"] += write
                    entries.append(entry)
            marker = {"entries": entries, "counts": counts, "removed": removed}
            write_marker(marker_path, marker)
        self.counts.update(marker["counts"])
        yield from self.emit_removed(marker["removed"])
        for entry in marker["entries"]:
            yield TaggedOutput(WRITTEN, entry)

    def _write(self, shard) -> tuple[dict, float, float]:
        start = time.perf_counter()
        data, entry = shard.encode(self.cfg, self.tables.vocab_size)
        encoded = time.perf_counter()
        write_file(FileSystems.join(self.output_dir, shard.path), data)
        return entry, encoded - start, time.perf_counter() - encoded

    def _read_pool(self, split, pool, pools, near, token_files, counts: Counter | None, removed) -> list:
        lo, hi = pool_range(pool, pools)
        docs = []
        with self.timer.stage("read_pool"):
            for tf in token_files:
                batches = intermediate.batches_in_range(tf["index"], split, lo, hi)
                if batches:
                    with FileSystems.open(tf["path"], compression_type="uncompressed") as f:
                        docs += intermediate.decode_pool_documents(f, batches, lo, hi)
            return unique_documents(docs, split, self.cfg, Counter() if counts is None else counts, removed, near)

    def _copy(self, split, pool, pools, dupe, unique, counts: Counter, name: str) -> dict | None:
        cfg = self.cfg
        inst = create_instances(unique, cfg, self.tables, counts, self.timer, dupes=[dupe])
        if inst is None:
            return None
        counts.update(instance_counters(inst, split, self.tables.mask_id))
        with self.timer.stage("write_work"):
            data, bins = intermediate.encode_instance_part(inst, cfg.bin_of(inst.lengths.astype(np.int64)))
            path = f"{name}.arrow"
            write_file(path, data)
        log.debug("pool %s/%d of %d, copy %d: %d documents → %d instances", split, pool, pools, dupe, len(unique), len(inst))  # fmt: skip
        return {"path": path, "bytes": len(data), "sha256": sha256_bytes(data), "bins": bins}


class _WriteShard(_ShardWriter):
    """One shard of one length bin of one pool: the bin's batch of every copy's instance part,
    ordered by the rows' seeded order keys, and the shard's equal part of them, compressed and written.

    A task per shard (pools are few, ``few_pools``): most rows are full-length, so one bin of each
    pool holds most of its rows, and tasks per bin left one worker compressing them while the other
    waited.
    """

    def process(self, task):
        (split, pool, pools, b, index, count), parts = task
        lo, hi = self.cfg.bin_range(b)
        name = f"{_part_name(split, pool, pools)}.bin-{lo:03d}-{hi:03d}.part-{index:03d}-of-{count:03d}.json"
        marker_path = FileSystems.join(self.output_dir, WORK_DIR, "pools", name)
        marker = read_marker(marker_path)
        if not self._shards_intact(marker):
            counts: Counter = Counter()
            marker = {"entries": [self._shard(split, pool, pools, index, parts, counts)], "counts": counts}
            write_marker(marker_path, marker)
        self.counts.update(marker["counts"])
        yield from marker["entries"]

    def _shard(self, split, pool, pools, index, parts, counts: Counter) -> dict:
        cfg = self.cfg
        with self.timer.stage("read_pool"):
            copies = []
            for _, path, batch, _ in parts:  # copy 0 first: the rows keep the order one pass over the copies gives
                with FileSystems.open(path, compression_type="uncompressed") as f:
                    copies.append(intermediate.decode_instance_batch(f, batch))
        with self.timer.stage("sort"):
            shard = shard_of_bin(Instances.concat(copies), split, cfg, pool=pool, pools=pools, index=index)
            self._mask_counts(shard, counts)
        with self.timer.stage("compress"):
            data, entry = shard.encode(cfg, self.tables.vocab_size)
        with self.timer.stage("write"):
            write_file(FileSystems.join(self.output_dir, shard.path), data)
        return entry


def _shard_tasks(group, cfg: BuildConfig):
    """A bin's parts (one per copy) → a task per shard of the bin, each naming every part."""
    (split, pool, pools, b), parts = group
    parts = sorted(parts)
    count = shards_in_bin(sum(rows for *_, rows in parts), cfg)
    return [((split, pool, pools, b, i, count), parts) for i in range(count)]


def _pool_tasks(totals: dict, cfg: BuildConfig) -> Iterator[tuple[tuple[str, int], int]]:
    for split in SPLITS:
        if totals.get(split, 0):
            pools = num_pools(totals[split], cfg)
            for p in range(pools):
                yield (split, p), pools


def few_pools(totals: dict, cfg: BuildConfig, min_tasks: int) -> bool:
    """Whether the build has fewer than ``min_tasks`` pools: then its pool step splits into tasks of
    one copy and of one shard (equal tasks: a local runner hands them out round-robin), else a task
    a pool does it all from one read of the pool, with no intermediate instance files."""
    return sum(num_pools(totals[s], cfg) for s in SPLITS if totals.get(s, 0)) < min_tasks


class CreateShards(beam.PTransform):
    """Token files (+ near-duplicate keys) → shard entries.

    Pools are ``ceil(tokens / nsp_pool_tokens)`` per split; a random B comes from another document
    of the same pool. With at least ``min_tasks`` pools, a task per pool makes every copy's pairs
    and masks and writes the pool's shards (``_CopyInstances._whole_pool``). With fewer, the work
    is split finer so that every worker stays busy (3 pools on 2 workers left one idle through the
    last pool): a task per copy of a pool writes that copy's instance part (``_CopyInstances``),
    then a task per shard cuts it from its bin's batch of every copy (``_WriteShard``). The shards
    are the same, byte for byte, either way.
    """

    def __init__(self, cfg: BuildConfig, tables: VocabTables, output_dir: str, min_tasks: int = 1) -> None:
        super().__init__()
        self.cfg, self.tables, self.output_dir, self.min_tasks = cfg, tables, output_dir, min_tasks

    def expand(self, inputs):
        token_files, near_keys = inputs
        cfg = self.cfg
        totals = (
            token_files
            | "Tokens" >> beam.Map(lambda tf: Counter(tf["tokens"]))
            | "SumTokens" >> beam.CombineGlobally(MergeCounts())
        )
        tasks = totals | "Pools" >> beam.FlatMap(_pool_tasks, cfg)

        def route(key, totals):
            split = split_of(key, cfg)
            pools = num_pools(totals.get(split, 0), cfg)
            return (split, pool_of(pool_hash(key, cfg), pools)), key

        def copies(kv, totals, min_tasks=self.min_tasks):
            (split, pool), joined = kv
            near = list(joined["near"])
            if not few_pools(totals, cfg, min_tasks):  # a task a pool, writing its shards itself
                return [((split, pool, p, 0, cfg.dupe_factor, True), near) for p in joined["pools"]]
            return [((split, pool, p, d, d + 1, False), near) for p in joined["pools"] for d in range(cfg.dupe_factor)]

        routed = near_keys | "RouteToPool" >> beam.Map(route, totals=beam.pvalue.AsSingleton(totals))
        tasks = (
            {"pools": tasks, "near": routed}
            | "JoinPools" >> beam.CoGroupByKey()
            | "Copies" >> beam.FlatMap(copies, totals=beam.pvalue.AsSingleton(totals))
        )
        made = par_do(
            tasks | "Spread" >> beam.Reshuffle(),
            "PairMask",
            _CopyInstances(cfg, self.tables, self.output_dir),
            (STATS, REMOVED, WRITTEN),
            beam.pvalue.AsList(token_files),
        )
        shards = (
            made[MAIN]
            | "GroupBins" >> beam.GroupByKey()
            | "ShardTasks" >> beam.FlatMap(_shard_tasks, cfg)
            | "SpreadShards" >> beam.Reshuffle()
        )
        written = par_do(shards, "CutWrite", _WriteShard(cfg, self.tables, self.output_dir), (STATS,))
        stats_out = (made[STATS], written[STATS]) | "AllShardStats" >> beam.Flatten()
        entries = (made[WRITTEN], written[MAIN]) | "AllShards" >> beam.Flatten()
        return {MAIN: entries, STATS: stats_out, REMOVED: made[REMOVED]}
