"""The build pipeline: files → documents → instances → shards + manifest.

``build_pipeline`` wires the steps onto a Beam pipeline; ``run_build`` runs it on
the local runner (one or several processes) or on any runner named in the Beam
options (Dataflow, Flink, Spark). The manifest is written last, inside the
pipeline, so it is the commit point on every runner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from corpusgen import readers
from corpusgen.config import BuildConfig
from corpusgen.intermediate import WORK_DIR
from corpusgen.masking import VocabTables
from corpusgen.shards import MANIFEST_NAME, build_manifest, encode_manifest
from corpusgen.tokenizer import VocabFile, WordPiece
from pipelines.transforms import (
    MAIN,
    REMOVED,
    SIGNATURES,
    STATS,
    CreateShards,
    FindNearDuplicates,
    MergeCounts,
    ReadDocuments,
    TokenizeChunks,
    read_marker,
    write_file,
    write_marker,
)

log = logging.getLogger("corpusgen")


class _WriteManifest(beam.DoFn):
    def __init__(
        self, output_dir: str, cfg: BuildConfig, vocab: VocabFile, tokenizer: dict, started: float, skipped: dict
    ) -> None:
        self.output_dir, self.cfg, self.vocab, self.tokenizer, self.started = output_dir, cfg, vocab, tokenizer, started
        self.skipped = skipped

    def process(self, _, shards, counts):
        write_file(FileSystems.join(self.output_dir, self.vocab.name), self.vocab.data)
        manifest = build_manifest(
            self.cfg,
            vocab_name=self.vocab.name,
            vocab_sha256=self.vocab.sha256,
            tokenizer=self.tokenizer,
            entries=list(shards),
            counters=counts,
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            build_seconds=time.time() - self.started,
        )
        manifest["skipped_inputs"] = self.skipped  # reason -> paths left out before reading (hidden files)
        path = FileSystems.join(self.output_dir, MANIFEST_NAME)
        write_file(path, encode_manifest(manifest))
        # The manifest commits the build; the intermediate files are then of no use.
        work = FileSystems.join(self.output_dir, WORK_DIR)
        if FileSystems.exists(work):
            FileSystems.delete([work])
        yield path


def build_pipeline(
    p: beam.Pipeline,
    files: list[str],
    output_dir: str,
    cfg: BuildConfig,
    vocab: VocabFile,
    *,
    chunk_chars: int = 8 << 20,
    skipped: dict[str, list[str]] | None = None,
) -> None:
    """Add the whole build to ``p``: ``files`` (resolved paths) → shards and manifest in ``output_dir``.

    ``chunk_chars`` sizes the document chunks that the steps after reading work on (it changes
    how work is spread, never the output). ``skipped``: paths ``resolve_inputs`` left out, by
    reason; counted and listed in the manifest.
    """
    skipped = {reason: sorted(paths) for reason, paths in (skipped or {}).items() if paths}
    wp = WordPiece(vocab, cfg.do_lower_case)
    if cfg.do_lower_case is None:
        cfg = cfg.replace(do_lower_case=wp.do_lower_case)  # the manifest records what was used
    tables = VocabTables.from_wordpiece(wp)
    started = time.time()
    work_dir = FileSystems.join(output_dir, WORK_DIR)

    read = (
        p | "Files" >> beam.Create(list(enumerate(sorted(files)))) | "Read" >> ReadDocuments(cfg, work_dir, chunk_chars)
    )
    tokenized = read[MAIN] | "Tokenize" >> TokenizeChunks(cfg, vocab, work_dir)
    if cfg.near_dedup is not None:
        near = tokenized[SIGNATURES] | "NearDuplicates" >> FindNearDuplicates(cfg)
    else:
        near = p | "NoNearDuplicates" >> beam.Create([]).with_output_types(str)
    shards = (tokenized[MAIN], near) | "CreateShards" >> CreateShards(cfg, tables, output_dir)
    if cfg.write_removed:
        (
            (tokenized[REMOVED], shards[REMOVED])
            | "AllRemoved" >> beam.Flatten()
            | "WriteRemoved"
            >> beam.io.WriteToText(FileSystems.join(output_dir, "removed", "part"), file_name_suffix=".jsonl.gz")
        )
    stat_parts = [read[STATS], tokenized[STATS], shards[STATS]]
    if skipped:
        stat_parts.append(p | "SkippedInputs" >> beam.Create([{r: len(paths) for r, paths in skipped.items()}]))
    counts = tuple(stat_parts) | "AllStats" >> beam.Flatten() | "SumStats" >> beam.CombineGlobally(MergeCounts())
    (
        p
        | "Commit" >> beam.Create([None])
        | "WriteManifest"
        >> beam.ParDo(
            _WriteManifest(output_dir, cfg, vocab, wp.describe(), started, skipped),
            shards=beam.pvalue.AsList(shards[MAIN]),
            counts=beam.pvalue.AsSingleton(counts),
        )
    )


LOCAL_RUNNERS = (None, "", "local", "FnApiRunner", "DirectRunner")


def check_runner(runner: str | None, output_dir: str, beam_args: list[str]) -> list[str]:
    """Problems that would make a remote run fail after submission, found before any work."""
    if runner in LOCAL_RUNNERS:
        return []
    if runner == "DaskRunner":
        named = any(a.startswith("--dask_client_address") for a in beam_args)
        if named and "://" not in output_dir:
            return [
                f"-o {output_dir} is a local path that a remote Dask cluster's workers may not see; use gs:// or s3://"
            ]
        return []
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners import create_runner

    try:
        runner_obj = create_runner(runner)
    except ValueError as exc:
        return [
            str(exc).split(". Valid values")[0] + "; use DataflowRunner, FlinkRunner, SparkRunner or PortableRunner"
        ]
    problems = [e.rstrip(".") for e in PipelineOptionsValidator(PipelineOptions(beam_args), runner_obj).validate()]
    if "://" not in output_dir:
        problems.append(
            f"-o {output_dir} is a local path that {runner}'s workers cannot write; use gs://, s3:// or hdfs://"
        )
    return problems


def make_pipeline(runner: str | None, workers: int, beam_args: list[str]) -> beam.Pipeline:
    """A pipeline on the named runner; locally the in-process FnApiRunner with ``workers`` processes."""
    options = PipelineOptions(beam_args)
    if runner in LOCAL_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        direct = options.view_as(beam.options.pipeline_options.DirectOptions)
        direct.direct_num_workers = workers
        direct.direct_running_mode = "multi_processing" if workers > 1 else "in_memory"
        return beam.Pipeline(runner=FnApiRunner(), options=options)
    if runner == "DaskRunner":
        from apache_beam.runners.dask.dask_runner import DaskRunner

        return beam.Pipeline(runner=DaskRunner(), options=options)
    options.view_as(beam.options.pipeline_options.StandardOptions).runner = runner
    return beam.Pipeline(options=options)


def chunk_size(files: list[str], runner: str | None) -> int:
    """Characters per document chunk: about 16 chunks in all locally, 1 M to 64 M characters each.

    Chunking spreads the work; it never changes the output. It does not follow the worker count,
    so a killed build can be resumed with another one. Remote runners get 32 M (their inputs are
    many files, and listing sizes would cost a round trip each).
    """
    if runner not in LOCAL_RUNNERS:
        return 32 << 20
    size = 0
    for f in files:
        n = os.path.getsize(f) if "://" not in f and os.path.exists(f) else 32 << 20
        size += n * (4 if f.endswith(readers.COMPRESSION_SUFFIXES) else 1)  # compressed text: ~4x
    return int(min(64 << 20, max(1 << 20, size // 16)))


def prepare_work_dir(output_dir: str, stamp: dict) -> bool:
    """Keep the intermediate files of an earlier, unfinished run of the same build; True if kept.

    ``stamp`` names the build (config, inputs, vocabulary, chunking): a different one, or none,
    starts the work over. Temporary files a killed run left in a local output are removed.
    """
    work = FileSystems.join(output_dir, WORK_DIR)
    stamp_path = FileSystems.join(work, "build.json")
    if read_marker(stamp_path) == stamp:
        if "://" not in output_dir:
            for tmp in Path(output_dir).rglob("*.tmp-*"):
                tmp.unlink()
        return True
    if FileSystems.exists(work):
        FileSystems.delete([work])
    write_marker(stamp_path, stamp)
    return False


def run_build(
    files: list[str],
    output_dir: str,
    cfg: BuildConfig,
    vocab: VocabFile,
    *,
    runner: str | None = None,
    workers: int = 1,
    beam_args: list[str] | None = None,
    skipped: dict[str, list[str]] | None = None,
):
    """Run a build to completion (the manifest exists when this returns); the runner's result."""
    chunk = chunk_size(files, runner)
    stamp = {"config": cfg.to_dict(), "files": sorted(files), "vocab_sha256": vocab.sha256, "chunk_chars": chunk}
    if prepare_work_dir(output_dir, stamp):
        log.info("resuming the unfinished build in %s: finished files, chunks and pools are not redone", output_dir)
    beam_args = list(beam_args or [])
    with contextlib.ExitStack() as stack:
        if runner == "DaskRunner" and not any(a.startswith("--dask_client_address") for a in beam_args):
            # No scheduler named: a local Dask cluster of `workers` processes, one thread each.
            from distributed import LocalCluster

            cluster = stack.enter_context(
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            )
            beam_args.append(f"--dask_client_address={cluster.scheduler_address}")
        p = make_pipeline(runner, workers, beam_args)
        build_pipeline(p, files, output_dir, cfg, vocab, chunk_chars=chunk, skipped=skipped)
        result = p.run()
        result.wait_until_finish()
    return result
