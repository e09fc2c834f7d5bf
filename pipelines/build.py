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
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser
from apache_beam.pipeline import PipelineVisitor

from corpusgen import readers
from corpusgen.config import BuildConfig
from corpusgen.intermediate import WORK_DIR
from corpusgen.masking import VocabTables
from corpusgen.shards import MANIFEST_NAME, build_manifest, encode_manifest
from corpusgen.tokenizer import VocabFile, shared_tokenizer
from pipelines.transforms import (
    LAUNCHER_PID,
    MAIN,
    REMOVED,
    SIGNATURES,
    STATS,
    CreateShards,
    FindNearDuplicates,
    MergeCounts,
    ReadDocuments,
    StagedVocab,
    TokenizeChunks,
    read_marker,
    write_file,
    write_marker,
)

log = logging.getLogger("corpusgen")


class _WriteManifest(beam.DoFn):
    def __init__(
        self, output_dir: str, cfg: BuildConfig, vocab: StagedVocab, tokenizer: dict, started: float, skipped: dict
    ) -> None:
        self.output_dir, self.cfg, self.vocab, self.tokenizer, self.started = output_dir, cfg, vocab, tokenizer, started
        self.skipped = skipped

    def process(self, _, shards, counts):
        write_file(FileSystems.join(self.output_dir, self.vocab.name), self.vocab.load().data)
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
    min_tasks: int = 1,
) -> None:
    """Add the whole build to ``p``: ``files`` (resolved paths) → shards and manifest in ``output_dir``.

    ``chunk_chars`` sizes the document chunks that the steps after reading work on (it changes
    how work is spread, never the output). ``skipped``: paths ``resolve_inputs`` left out, by
    reason; counted and listed in the manifest. ``min_tasks``: with fewer NSP pools than this, each
    copy of a pool is paired and masked as a task of its own (see ``CreateShards``; never changes the output).
    """
    skipped = {reason: sorted(paths) for reason, paths in (skipped or {}).items() if paths}
    wp = shared_tokenizer(vocab, cfg.do_lower_case)
    if cfg.do_lower_case is None:
        cfg = cfg.replace(do_lower_case=wp.do_lower_case)  # the manifest records what was used
    tables = VocabTables.from_tokenizer(wp)
    started = time.time()
    work_dir = FileSystems.join(output_dir, WORK_DIR)
    staged = StagedVocab.of(vocab, work_dir)  # run_build writes it there before the run

    read = (
        p
        | "Files" >> beam.Create(list(enumerate(sorted(files))))
        | "Read" >> ReadDocuments(cfg, work_dir, chunk_chars, range_bytes=range_bytes_for(chunk_chars))
    )
    tokenized = read[MAIN] | "Tokenize" >> TokenizeChunks(cfg, staged, work_dir)
    if cfg.near_dedup is not None:
        near = tokenized[SIGNATURES] | "NearDuplicates" >> FindNearDuplicates(cfg)
    else:
        near = p | "NoNearDuplicates" >> beam.Create([]).with_output_types(str)
    shards = (tokenized[MAIN], near) | "CreateShards" >> CreateShards(cfg, tables, output_dir, min_tasks)
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
            _WriteManifest(output_dir, cfg, staged, wp.describe(), started, skipped),
            shards=beam.pvalue.AsList(shards[MAIN]),
            counts=beam.pvalue.AsSingleton(counts),
        )
    )


LOCAL_RUNNERS = (None, "", "local", "FnApiRunner", "DirectRunner", "direct")
# Runners Beam knows only by their full class path.
RUNNER_PATHS = {"DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}
DATAFLOW_REQUIRED = ("project", "region", "temp_location")


class _RaisingParser(_BeamArgumentParser):
    def error(self, message: str):
        raise ValueError(message)


def mentions_dask(args: list[str]) -> bool:
    """Whether a command line names the Dask runner or its options (whose import costs ~0.5 s)."""
    return any("dask" in a.lower() for a in args)


def beam_option_parser(dask: bool = True) -> _BeamArgumentParser:
    """Beam's own argument parser holding every registered pipeline option class (as Beam builds it).

    ``dask``: with the Dask runner's options, which registers them by importing dask.
    """
    if dask:
        import apache_beam.runners.dask.dask_runner  # noqa: F401  (registers DaskOptions)

    parser = _RaisingParser(allow_abbrev=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)
    return parser


def beam_option_flags(dask: bool = True) -> dict[str, str]:
    """``--name`` → how it takes a value: "" (a flag), "?" (optional value) or "1" (a value)."""
    flags = {}
    for action in beam_option_parser(dask)._actions:
        kind = "" if action.nargs == 0 else ("?" if action.nargs == "?" else "1")
        for flag in action.option_strings:
            if flag.startswith("--"):
                flags[flag] = kind
    return flags


def check_beam_args(beam_args: list[str]) -> None:
    """Parse ``beam_args`` with Beam's parser; ``ValueError`` with its message on a bad value."""
    try:
        _, unknown = beam_option_parser(mentions_dask(beam_args)).parse_known_args(beam_args)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("argument ")) from None
    if unknown:
        raise ValueError(f"not Beam pipeline options: {' '.join(unknown)}")
    for arg in beam_args:
        name = arg.split("=", 1)[0]
        if name in ("--direct_num_workers", "--direct_running_mode"):
            raise ValueError(f"{name}: set by corpusgen from --workers; pass --workers N instead")
        if name == "--streaming":
            raise ValueError("--streaming: a build is a batch job (it reads files to their end); drop the option")


def _runner_name(runner: str | None) -> str | None:
    return RUNNER_PATHS.get(runner or "", runner)


def workers_elsewhere(runner: str | None, options: PipelineOptions) -> bool:
    """True when the runner's workers run on other machines, so they cannot see local paths."""
    from apache_beam.options.pipeline_options import StandardOptions

    if runner in LOCAL_RUNNERS or runner in StandardOptions.LOCAL_RUNNERS:
        return False
    if runner == "DaskRunner":
        from apache_beam.runners.dask.dask_runner import DaskOptions

        dask = options.view_as(DaskOptions)
        return bool(dask.address or dask.scheduler_file)  # else a dask LocalCluster on this machine
    return True


def _missing_cluster_options(runner: str | None, options: PipelineOptions, validator) -> list[str]:
    """Options a cluster runner needs that Beam would default (or look up online) instead of refusing."""
    from apache_beam.options import pipeline_options as po

    name = (runner or "").removesuffix("Runner").lower()
    if name == "dataflow":
        cloud = options.view_as(po.GoogleCloudOptions)
        missing = [f"needs --{o}" for o in DATAFLOW_REQUIRED if not getattr(cloud, o)]
        if cloud.temp_location and not missing:
            # Beam's own check, offline; were it to fail inside Beam's validator, Beam would go
            # online to create a default bucket.
            missing = [e.rstrip(".") for e in validator.validate_gcs_path(cloud, "temp_location")]
        return missing
    endpoint = options.view_as(po.PortableOptions).job_endpoint
    if (
        name == "flink"
        and not endpoint
        and options.view_as(po.FlinkRunnerOptions).flink_master in ("[auto]", "[local]")
    ):
        return [
            "needs the cluster's address: --flink_master HOST:8081, or --job_endpoint HOST:8099 of a running job server"
        ]
    if name == "spark" and not endpoint and options.view_as(po.SparkRunnerOptions).spark_master_url.startswith("local"):
        return [
            "needs the cluster's address: --spark_master_url spark://HOST:7077, "
            "or --job_endpoint HOST:8099 of a running job server"
        ]
    if name == "portable" and not endpoint:
        return ["needs --job_endpoint HOST:8099 (the job server's address)"]
    if name == "dask":
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            return ["needs dask and distributed: pip install 'corpusgen[dask]'"]
    return []


def check_runner(
    runner: str | None, output_dir: str, beam_args: list[str], inputs: list[str] = (), *, dry_run: bool = False
) -> list[str]:
    """Problems that would make a run fail after submission (or after hours of work), found before any work.

    Beam's own validator checks the options for the runner; on top of it, a cluster runner must
    be told where the cluster is, and its workers can read and write only non-local paths.
    ``dry_run`` keeps the check offline (Beam's validator then skips its calls to GCS).
    """
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners import create_runner
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    try:
        check_beam_args(beam_args)
    except ValueError as exc:
        return [str(exc)]
    if runner in LOCAL_RUNNERS:
        runner_obj = FnApiRunner()
    else:
        name = _runner_name(runner)
        if "." in name and not name.startswith("apache_beam.runners."):
            # Beam imports and calls whatever a dotted name names; only its own runners are taken
            return [
                f"{runner}: not a Beam runner; use DataflowRunner, FlinkRunner, SparkRunner, PortableRunner or DaskRunner"
            ]
        try:
            runner_obj = create_runner(name)
        except (ValueError, ImportError, AttributeError, TypeError) as exc:
            return [
                str(exc).split(". Valid values")[0]
                + "; use DataflowRunner, FlinkRunner, SparkRunner, PortableRunner or DaskRunner"
            ]
    options = PipelineOptions(beam_args)
    if dry_run:
        options.view_as(beam.options.pipeline_options.TestOptions).dry_run = True
    validator = PipelineOptionsValidator(options, runner_obj)
    problems = _missing_cluster_options(runner, options, validator)
    if not problems:  # with a required option missing, Beam's validator may go online to create a bucket
        problems = [e.rstrip(".") for e in validator.validate()]
    setup = options.view_as(beam.options.pipeline_options.SetupOptions)
    staged = [("--setup_file", setup.setup_file), ("--requirements_file", setup.requirements_file)]
    staged += [("--extra_package", p) for p in setup.extra_packages or []]
    for flag, path in staged:  # staged from this machine at submission: they must exist here
        if path and not _is_remote(path) and not os.path.isfile(path):
            problems.append(
                f"{flag} {path}: no such file here; it is staged from this machine when the job is submitted"
            )
    for path in [output_dir, *inputs]:
        if _is_remote(path):
            try:
                FileSystems.get_filesystem(path)
            except (OSError, ValueError) as exc:  # BeamIOError (an OSError): its package is not installed
                first = str(getattr(exc, "exception_details", {}).get(path, exc)).splitlines()[0][:160]
                problems.append(f"{path}: Beam cannot reach this filesystem here ({first})")
                break
    if workers_elsewhere(runner, options):
        if not _is_remote(output_dir):
            problems.append(
                f"-o {output_dir} is a local path that {runner}'s workers cannot write; use gs://, s3:// or hdfs://"
            )
        local = [i for i in inputs if not _is_remote(i)]
        if local:
            problems.append(
                f"input {local[0]} is a local path that {runner}'s workers cannot read; copy the inputs to gs://, "
                "s3:// or hdfs://"
            )
    return problems


def _is_remote(path: str) -> bool:
    from pipelines.output import is_remote

    return is_remote(path)


def pipeline_options(
    runner: str | None, workers: int, beam_args: list[str], *, dry_run: bool = False
) -> PipelineOptions:
    options = PipelineOptions(beam_args)
    if dry_run:
        options.view_as(beam.options.pipeline_options.TestOptions).dry_run = True
    if runner in LOCAL_RUNNERS:
        direct = options.view_as(beam.options.pipeline_options.DirectOptions)
        direct.direct_num_workers = workers
        direct.direct_running_mode = "multi_processing" if workers > 1 else "in_memory"
    else:
        options.view_as(beam.options.pipeline_options.StandardOptions).runner = _runner_name(runner)
    return options


def make_pipeline(runner: str | None, workers: int, beam_args: list[str], *, dry_run: bool = False) -> beam.Pipeline:
    """A pipeline on the named runner; locally the in-process FnApiRunner with ``workers`` processes."""
    options = pipeline_options(runner, workers, beam_args, dry_run=dry_run)
    if runner in LOCAL_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return beam.Pipeline(runner=FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


class _Steps(PipelineVisitor):
    """Full labels of the transforms, composites first, in the order they were applied."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.primitives = 0

    def enter_composite_transform(self, node) -> None:
        if node.full_label:
            self.labels.append(node.full_label)

    def visit_transform(self, node) -> None:
        self.labels.append(node.full_label)
        self.primitives += 1


def dry_run(
    files: list[str],
    output_dir: str,
    cfg: BuildConfig,
    vocab: VocabFile,
    *,
    runner: str | None = None,
    workers: int = 1,
    beam_args: list[str] | None = None,
) -> dict:
    """Build the whole job graph for ``runner`` as a run would, without running or submitting it.

    The graph is turned into the runner API form a runner is handed (every DoFn pickled), so a
    DoFn that cannot travel fails here. Returns the steps, the options a run would submit, and sizes.
    """
    p = make_pipeline(runner, workers, beam_args or [], dry_run=True)
    try:
        build_pipeline(
            p,
            files,
            output_dir,
            cfg,
            vocab,
            chunk_chars=chunk_size(files, runner),
            min_tasks=min_tasks_for(runner, workers, list(beam_args or [])),
        )
        proto = p.to_runner_api()
        steps = _Steps()
        p.visit(steps)
    finally:
        shutil.rmtree(p.local_tempdir, ignore_errors=True)
    options = p.options.get_all_options(drop_default=True)
    options.pop("dry_run", None)  # set here to keep Beam's validator offline; a run does not submit it
    return {
        "runner": _runner_name(runner) or "FnApiRunner",
        "steps": steps.labels,
        "primitive_transforms": steps.primitives,
        "graph_bytes": proto.ByteSize(),
        "options": options,
    }


def range_bytes_for(chunk_chars: int) -> int:
    """Bytes of a large JSON-lines file one worker reads: one chunk's worth (from the chunk size
    alone, so a resumed build cuts its files where the killed one did).

    A range then makes one chunk of about that many characters, so the tokenize step's tasks are
    equal: the local runner hands them out in equal numbers, not by size, and a range of four
    chunks ended in a short one (measured, 35.9 MB on 2 workers: one worker idle for the last
    ~0.4 s of tokenizing).
    """
    return chunk_chars


def chunk_size(files: list[str], runner: str | None) -> int:
    """Characters per document chunk: about 16 chunks in all locally, 1 M to 64 M characters each
    (rounded up, so that one large JSON-lines file makes 16 equal ranges, not 17 with a short one).

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
    return int(min(64 << 20, max(1 << 20, -(-size // 16))))


REMOTE_MIN_TASKS = 512  # a cluster's worker threads, as a build cannot know them: Dataflow's many


def min_tasks_for(runner: str | None, workers: int, beam_args: list[str]) -> int:
    """Pools below which a build pairs each copy of a pool as a task of its own (``CreateShards``).

    Locally 3 pools a worker process (one process: 1, nothing to balance; measured: split tasks gained
    at 4 pools on 2 workers and cost 13% at 9, where each task rereads its pool or bin); on a cluster, or a Dask
    scheduler named by address, ``REMOTE_MIN_TASKS``. A large corpus has far more pools than
    either (≈ 230 per GB), so there each task makes all of a pool's copies from one read of it.
    """
    local = runner in LOCAL_RUNNERS or (
        runner == "DaskRunner" and not any(a.startswith("--dask_client_address") for a in beam_args)
    )
    if not local:
        return REMOTE_MIN_TASKS
    return 1 if workers <= 1 else 3 * workers


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
        log.warning(
            "%s: the unfinished build there was another build (its config, inputs, vocabulary or chunking "
            "differ); starting over",
            output_dir,
        )
        FileSystems.delete([work])
    write_marker(stamp_path, stamp)
    return False


@contextlib.contextmanager
def _environ(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


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
    stamp = {
        "config": cfg.to_dict(),
        "files": sorted(files),
        "vocab_sha256": vocab.sha256,
        "chunk_chars": chunk,
        "range_bytes": range_bytes_for(chunk),
    }
    if prepare_work_dir(output_dir, stamp):
        log.info("resuming the unfinished build in %s: finished files, chunks and pools are not redone", output_dir)
    StagedVocab.written(vocab, FileSystems.join(output_dir, WORK_DIR))
    beam_args = list(beam_args or [])
    min_tasks = min_tasks_for(runner, workers, beam_args)
    with contextlib.ExitStack() as stack:
        if runner in LOCAL_RUNNERS or runner == "DaskRunner":
            # worker processes started here end with this one (pipelines.transforms.set_up_local_worker)
            stack.enter_context(_environ(LAUNCHER_PID, str(os.getpid())))
        if runner == "DaskRunner" and not any(a.startswith("--dask_client_address") for a in beam_args):
            # No scheduler named: a local Dask cluster of `workers` processes, one thread each.
            from distributed import LocalCluster

            cluster = stack.enter_context(
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            )
            beam_args.append(f"--dask_client_address={cluster.scheduler_address}")
        p = make_pipeline(runner, workers, beam_args)
        build_pipeline(p, files, output_dir, cfg, vocab, chunk_chars=chunk, skipped=skipped, min_tasks=min_tasks)
        result = p.run()
        result.wait_until_finish()
        client = getattr(result, "client", None)  # DaskRunner's: closed before the cluster it talks to, or
        if client is not None:  # it tries to reconnect for 30 s and then logs an error
            client.close()
    return result
