"""The build pipeline: files → documents → instances → shards + manifest.

``build_pipeline`` wires the steps onto a Beam pipeline; ``run_build`` runs it on
the local runner (one or several processes) or on any runner named in the Beam
options (Dataflow, Flink, Spark). The manifest is written last, inside the
pipeline, so it is the commit point on every runner.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone

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
    REMOVED,
    SIGNATURES,
    STATS,
    CreateShards,
    FindNearDuplicates,
    MergeCounts,
    ReadDocuments,
    TokenizeChunks,
    write_file,
)

log = logging.getLogger("corpusgen")


class _WriteManifest(beam.DoFn):
    def __init__(self, output_dir: str, cfg: BuildConfig, vocab: VocabFile, tokenizer: dict, started: float) -> None:
        self.output_dir, self.cfg, self.vocab, self.tokenizer, self.started = output_dir, cfg, vocab, tokenizer, started

    def process(self, _, shards, counts):
        write_file(FileSystems.join(self.output_dir, self.vocab.name), self.vocab.data)
        manifest = build_manifest(
            self.cfg,
            vocab_name=self.vocab.name,
            vocab_sha256=self.vocab.sha256,
            tokenizer=self.tokenizer,
            entries=list(shards),
            counters=counts,
            created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            build_seconds=time.time() - self.started,
        )
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
) -> None:
    """Add the whole build to ``p``: ``files`` (resolved paths) → shards and manifest in ``output_dir``.

    ``chunk_chars`` sizes the document chunks that the steps after reading work on (it changes
    how work is spread, never the output).
    """
    wp = WordPiece(vocab, cfg.do_lower_case)
    if cfg.do_lower_case is None:
        cfg = cfg.replace(do_lower_case=wp.do_lower_case)  # the manifest records what was used
    tables = VocabTables.from_wordpiece(wp)
    started = time.time()
    work_dir = FileSystems.join(output_dir, WORK_DIR)

    read = (
        p | "Files" >> beam.Create(list(enumerate(sorted(files)))) | "Read" >> ReadDocuments(cfg, work_dir, chunk_chars)
    )
    tokenized = read.chunks | "Tokenize" >> TokenizeChunks(cfg, vocab, work_dir)
    if cfg.near_dedup is not None:
        near = tokenized[SIGNATURES] | "NearDuplicates" >> FindNearDuplicates(cfg)
    else:
        near = p | "NoNearDuplicates" >> beam.Create([]).with_output_types(str)
    shards = (tokenized.token_files, near) | "CreateShards" >> CreateShards(cfg, tables, output_dir)
    if cfg.write_removed:
        (
            (tokenized[REMOVED], shards[REMOVED])
            | "AllRemoved" >> beam.Flatten()
            | "WriteRemoved"
            >> beam.io.WriteToText(FileSystems.join(output_dir, "removed", "part"), file_name_suffix=".jsonl.gz")
        )
    counts = (
        (read[STATS], tokenized[STATS], shards[STATS])
        | "AllStats" >> beam.Flatten()
        | "SumStats" >> beam.CombineGlobally(MergeCounts())
    )
    (
        p
        | "Commit" >> beam.Create([None])
        | "WriteManifest"
        >> beam.ParDo(
            _WriteManifest(output_dir, cfg, vocab, wp.describe(), started),
            shards=beam.pvalue.AsList(shards.shards),
            counts=beam.pvalue.AsSingleton(counts),
        )
    )


LOCAL_RUNNERS = (None, "", "local", "FnApiRunner", "DirectRunner")


def check_runner(runner: str | None, output_dir: str, beam_args: list[str]) -> list[str]:
    """Problems that would make a remote run fail after submission, found before any work."""
    if runner in LOCAL_RUNNERS:
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
    options.view_as(beam.options.pipeline_options.StandardOptions).runner = runner
    return beam.Pipeline(options=options)


def chunk_size(files: list[str], runner: str | None, workers: int) -> int:
    """Characters per document chunk: about eight chunks per local worker, 1 M to 64 M characters.

    Chunking spreads the work; it never changes the output. Remote runners get 32 M (their
    inputs are many files, and listing sizes would cost a round trip each).
    """
    if runner not in LOCAL_RUNNERS:
        return 32 << 20
    size = 0
    for f in files:
        n = os.path.getsize(f) if "://" not in f and os.path.exists(f) else 32 << 20
        size += n * (4 if f.endswith(readers.COMPRESSION_SUFFIXES) else 1)  # compressed text: ~4x
    return int(min(64 << 20, max(1 << 20, size // (8 * max(1, workers)))))


def run_build(
    files: list[str],
    output_dir: str,
    cfg: BuildConfig,
    vocab: VocabFile,
    *,
    runner: str | None = None,
    workers: int = 1,
    beam_args: list[str] | None = None,
):
    """Run a build to completion (the manifest exists when this returns); the runner's result."""
    p = make_pipeline(runner, workers, beam_args or [])
    build_pipeline(p, files, output_dir, cfg, vocab, chunk_chars=chunk_size(files, runner, workers))
    result = p.run()
    result.wait_until_finish()
    return result
