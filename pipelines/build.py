"""The build pipeline: files → documents → instances → shards + manifest.

``build_pipeline`` wires the steps onto a Beam pipeline; ``run_build`` runs it on
the local runner (one or several processes) or on any runner named in the Beam
options (Dataflow, Flink, Spark). The manifest is written last, inside the
pipeline, so it is the commit point on every runner.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from corpusgen import stats
from corpusgen.config import BuildConfig
from corpusgen.masking import VocabTables
from corpusgen.shards import FORMAT_VERSION, MANIFEST_NAME
from corpusgen.tokenizer import VocabFile, WordPiece
from pipelines.transforms import (
    REMOVED,
    STATS,
    CleanDocuments,
    CreateInstances,
    DropNearDuplicates,
    MergeCounts,
    ReadDocuments,
    SplitAndTokenize,
    WriteShards,
)

log = logging.getLogger("corpusgen")


class _WriteManifest(beam.DoFn):
    def __init__(
        self, output_dir: str, cfg: BuildConfig, vocab: VocabFile, tokenizer: dict, started: float, skipped: dict
    ) -> None:
        self.output_dir, self.cfg, self.vocab, self.tokenizer, self.started = output_dir, cfg, vocab, tokenizer, started
        self.skipped = skipped

    def process(self, _, shards, counts):
        shards = sorted(shards, key=lambda e: e["path"])
        vocab_path = FileSystems.join(self.output_dir, self.vocab.name)
        with FileSystems.create(vocab_path + ".tmp") as f:
            f.write(self.vocab.data)
        FileSystems.rename([vocab_path + ".tmp"], [vocab_path])
        manifest = {
            "format_version": FORMAT_VERSION,
            "config": self.cfg.to_dict(),
            "vocab": self.vocab.name,
            "vocab_sha256": self.vocab.sha256,
            "tokenizer": self.tokenizer,
            "shards": shards,
            "stats": stats.summarize(counts),
            "counters": dict(sorted(counts.items())),
            "skipped_inputs": self.skipped,  # reason -> paths left out before reading (hidden files)
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "build_seconds": round(time.time() - self.started, 1),
        }
        path = FileSystems.join(self.output_dir, MANIFEST_NAME)
        with FileSystems.create(path + ".tmp") as f:
            f.write(json.dumps(manifest, indent=1).encode("utf-8"))
        FileSystems.rename([path + ".tmp"], [path])
        yield path


def build_pipeline(
    p: beam.Pipeline,
    files: list[str],
    output_dir: str,
    cfg: BuildConfig,
    vocab: VocabFile,
    skipped: dict[str, list[str]] | None = None,
) -> None:
    """Add the whole build to ``p``: ``files`` (resolved paths) → shards and manifest in ``output_dir``.

    ``skipped``: paths ``resolve_inputs`` left out, by reason; counted and listed in the manifest.
    """
    skipped = {reason: sorted(paths) for reason, paths in (skipped or {}).items() if paths}
    wp = WordPiece(vocab, cfg.do_lower_case)
    if cfg.do_lower_case is None:
        cfg = cfg.replace(do_lower_case=wp.do_lower_case)  # the manifest records what was used
    tables = VocabTables.from_wordpiece(wp)
    started = time.time()

    read = p | "Files" >> beam.Create(sorted(files)) | "Read" >> ReadDocuments(cfg)
    unique, clean_stats, removed = read.docs | "Clean" >> CleanDocuments(cfg)
    stat_parts, removed_parts = [read[STATS], clean_stats], [removed]
    if skipped:
        stat_parts.append(p | "SkippedInputs" >> beam.Create([{r: len(paths) for r, paths in skipped.items()}]))
    if cfg.near_dedup is not None:
        unique, near_stats, near_removed = unique | "DropNearDuplicates" >> DropNearDuplicates(cfg)
        stat_parts.append(near_stats)
        removed_parts.append(near_removed)
    tokenized = unique | "SplitAndTokenize" >> SplitAndTokenize(cfg, vocab)
    removed_parts.append(tokenized[REMOVED])
    instances = tokenized.docs | "CreateInstances" >> CreateInstances(cfg, tables)
    entries = instances.instances | "WriteShards" >> WriteShards(output_dir, cfg, wp.vocab_size)
    if cfg.write_removed:
        (
            tuple(removed_parts)
            | "AllRemoved" >> beam.Flatten()
            | "WriteRemoved"
            >> beam.io.WriteToText(FileSystems.join(output_dir, "removed", "part"), file_name_suffix=".jsonl.gz")
        )
    counts = (
        (*stat_parts, tokenized[STATS], instances[STATS])
        | "AllStats" >> beam.Flatten()
        | "SumStats" >> beam.CombineGlobally(MergeCounts())
    )
    (
        p
        | "Commit" >> beam.Create([None])
        | "WriteManifest"
        >> beam.ParDo(
            _WriteManifest(output_dir, cfg, vocab, wp.describe(), started, skipped),
            shards=beam.pvalue.AsList(entries),
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
) -> None:
    """Run a build to completion (the manifest exists when this returns)."""
    p = make_pipeline(runner, workers, beam_args or [])
    build_pipeline(p, files, output_dir, cfg, vocab, skipped)
    result = p.run()
    result.wait_until_finish()
