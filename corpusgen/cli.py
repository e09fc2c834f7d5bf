"""The ``corpusgen`` command line: build, vocab, split, inspect, validate (and train, plot, bench).

Every user error ends in one line naming the problem and the fix, exit code 1
(click's usage errors exit 2); never a traceback.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

import click

from corpusgen.config import NEXT_SENTENCE_MODES, BuildConfig, read_config_file
from corpusgen.masking import POSITION_SCHEMES
from corpusgen.readers import INPUT_FORMATS

BUNDLED_CORPUS = "enwiki_sample.jsonl.zst"
BUNDLED_VOCAB = "bert-base-uncased-vocab.txt"


def bundled(name: str) -> str:
    return str(Path(__file__).resolve().parent / "data" / name)


class UserError(click.ClickException):
    """One line, exit 1."""


def _fail(exc: Exception) -> UserError:
    return UserError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


DEBUG = "corpusgen.debug"


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe its reader has closed (``corpusgen inspect DIR -n 50 | head``)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no file descriptor (a test's runner), no poll
        return False


class _Group(click.Group):
    """Any error a command did not turn into a one-line message still ends in one line; ``--debug`` shows it whole."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and _stdout_reader_gone():
                raise  # the reader has what it wanted (`corpusgen split < docs | head`): click ends quietly, exit 1
            if ctx.meta.get(DEBUG):
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise UserError(
                f"{type(exc).__name__}: {first or 'failed'} (corpusgen --debug {ctx.invoked_subcommand} … shows the traceback)"
            ) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="corpusgen")
@click.option("--debug", is_flag=True, help="Show the full traceback of an unexpected error, and Beam's log.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Turn raw text into BERT pretraining data, and pretrain BERT on it."""
    ctx.meta[DEBUG] = debug


# --- build -----------------------------------------------------------------------------------

_BUILD_OPTIONS = {
    # cli name -> config field
    "max_seq_length": "max_seq_length",
    "max_predictions_per_seq": "max_predictions_per_seq",
    "masked_lm_prob": "masked_lm_prob",
    "short_seq_prob": "short_seq_prob",
    "dupe_factor": "dupe_factor",
    "seed": "random_seed",
    "lower_case": "do_lower_case",
    "whole_word_mask": "do_whole_word_mask",
    "mask_scheme": "mask_scheme",
    "next_sentence": "next_sentence",
    "input_format": "input_format",
    "text_field": "text_field",
    "doc_per_file": "doc_per_file",
    "wikitext": "wikitext_headings",
    "lang": "lang",
    "line_breaks": "line_breaks",
    "heldout_fraction": "heldout_fraction",
    "rows_per_shard": "rows_per_shard",
    "zstd_level": "zstd_level",
    "dedup": "dedup",
    "encoding": "encoding",
    "html": "html",
    "write_removed": "write_removed",
    "mask_replace_prob": "mask_replace_prob",
    "random_replace_prob": "random_replace_prob",
    "dynamic_masking": "dynamic_masking",
    "mask_copies": "mask_copies",
    "span_p": "span_p",
    "span_max_words": "span_max_words",
}


BEAM_ARGS = "corpusgen.beam_args"


class _BuildCommand(click.Command):
    """``build`` takes Beam's pipeline options beside its own; anything else stops it before any work."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ours, beam_args = split_beam_args(self, ctx, args)
        ctx.meta[BEAM_ARGS] = beam_args
        return super().parse_args(ctx, ours)


def split_beam_args(command: click.Command, ctx: click.Context, args: list[str]) -> tuple[list[str], list[str]]:
    """(corpusgen's arguments, Beam pipeline options as ``--name=value``) from one command line.

    Beam options are recognised by Beam's own parser, in ``--name=value`` and ``--name value``
    forms; an option that is neither corpusgen's nor Beam's raises a one-line error naming the
    nearest real one.
    """
    import difflib

    ours: dict[str, bool] = {}  # option → takes a value
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                ours[opt] = not (param.is_flag or param.count)
    from pipelines.build import beam_option_flags, mentions_dask

    beam = beam_option_flags(dask=mentions_dask(args))
    kept, beam_args = [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            kept += args[i:]
            break
        if not arg.startswith("-") or arg == "-":
            kept.append(arg)
        elif not arg.startswith("--") and arg[:2] in ours:  # -o DIR, -oDIR, -h
            kept.append(arg)
            if ours[arg[:2]] and len(arg) == 2 and i + 1 < len(args):
                i += 1
                kept.append(args[i])
        else:
            name, eq, _ = arg.partition("=")
            if name in ours:
                kept.append(arg)
                if ours[name] and not eq and i + 1 < len(args):
                    i += 1
                    kept.append(args[i])
            elif name in beam:
                kind = beam[name]
                if kind and not eq:
                    if i + 1 < len(args) and (kind == "1" or not args[i + 1].startswith("-")):
                        i += 1
                        arg = f"{name}={args[i]}"
                    elif kind == "1":
                        raise UserError(f"Beam option {name} needs a value: {name}=VALUE or {name} VALUE")
                beam_args.append(arg)
            else:
                near = difflib.get_close_matches(name, [*ours, *beam], n=1, cutoff=0.6)
                hint = f"did you mean {near[0]}?" if near else "see corpusgen build --help and Beam's pipeline options"
                raise UserError(f"no such option: {name} ({hint}); nothing was built")
        i += 1
    return kept, beam_args


@cli.command(cls=_BuildCommand)
@click.argument("inputs", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "-i", "--input", "more_inputs", multiple=True, help="An INPUT given as an option (repeatable; for flex templates)."
)
@click.option("-o", "--output", "output", required=True, help="Output directory (shards + manifest.json).")
@click.option(
    "--vocab",
    help="vocab.txt (WordPiece) or tokenizer.json (WordPiece, BPE, Unigram), local or on a Beam filesystem [default: bundled bert-base-uncased].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML or JSON build config; options given here override it.",
)
@click.option("--max-seq-length", type=int, help="[128]")
@click.option(
    "--max-predictions-per-seq", type=int, help="[follows --masked-lm-prob: ceil(max_seq_length * P), 20 at 128/0.15]"
)
@click.option("--masked-lm-prob", type=float, help="[0.15]")
@click.option("--short-seq-prob", type=float, help="[0.1]")
@click.option("--dupe-factor", type=int, help="Copies of the data with different masks [5].")
@click.option("--seed", type=int, help="random_seed [12345].")
@click.option("--lower-case/--no-lower-case", default=None, help="[default: follow the vocabulary]")
@click.option("--whole-word-mask/--no-whole-word-mask", default=None, help="do_whole_word_mask [off].")
@click.option(
    "--mask-scheme", type=click.Choice(sorted(POSITION_SCHEMES)), help="How positions to predict are chosen [token]."
)
@click.option(
    "--next-sentence",
    type=click.Choice(list(NEXT_SENTENCE_MODES)),
    help="Pair task (nsp, sop), one segment (none), or packed MLM-only rows (full-sentences, doc-sentences) [nsp].",
)
@click.option("--mask-replace-prob", type=float, help="Share of predicted positions shown as [MASK] [0.8].")
@click.option("--random-replace-prob", type=float, help="Share shown as a random token; the rest keep theirs [0.1].")
@click.option(
    "--dynamic-masking/--no-dynamic-masking",
    default=None,
    help="Store unmasked rows; the trainer's loader draws masks per (seed, epoch, row) [off].",
)
@click.option("--mask-copies", type=int, help="Store N mask sets per instance; epoch e trains on set e % N [1].")
@click.option("--span-p", type=float, help="--mask-scheme span: geometric parameter of span lengths [0.2].")
@click.option("--span-max-words", type=int, help="--mask-scheme span: span lengths clipped at this many words [10].")
@click.option(
    "--input-format",
    type=click.Choice(INPUT_FORMATS),
    help="[auto: by file name]",
)
@click.option("--text-field", help="Text field/column of JSONL, Parquet, Arrow inputs [text].")
@click.option("--doc-per-file/--no-doc-per-file", default=None, help="Plain text: one document per file.")
@click.option("--wikitext/--no-wikitext", default=None, help="Plain text: ' = Title = ' lines start documents.")
@click.option("--lang", help="Sentence splitting language: en, zh, ja, de, …, auto [en].")
@click.option("--line-breaks", type=click.Choice(["auto", "sentence", "space"]), help="A single newline is … [auto].")
@click.option("--heldout-fraction", type=float, help="Documents kept apart for evaluation [0.01].")
@click.option("--rows-per-shard", type=int, help="[16384]")
@click.option("--zstd-level", type=int, help="Shard compression, 1-22 [9]; 19 saves 10-15% more at 10-20x the cost.")
@click.option("--dedup/--no-dedup", default=None, help="Drop exact duplicate documents [on].")
@click.option("--encoding", help="Input encoding: auto (detect), utf-8 (strict) or a codec name [auto].")
@click.option(
    "--html", type=click.Choice(["auto", "always", "never"]), help="Raw HTML to visible text [auto: per document]."
)
@click.option(
    "--quality/--no-quality", default=None, help="C4/Gopher quality filters and boilerplate-line removal [off]."
)
@click.option(
    "--language", "languages", multiple=True, help="With --quality: keep only these languages (ISO 639-1; repeatable)."
)
@click.option(
    "--near-dedup",
    type=float,
    default=None,
    metavar="THRESHOLD",
    help="MinHash near-duplicate removal at this Jaccard threshold, e.g. 0.8 [off].",
)
@click.option(
    "--write-removed/--no-write-removed",
    default=None,
    help="Write dropped documents with their reason to OUTPUT/removed/.",
)
@click.option(
    "--workers", type=int, default=None, help="Local worker processes (or Dask workers) [this machine's cores]."
)
@click.option(
    "--runner",
    default=None,
    help="Beam runner: local (FnApiRunner, default), DataflowRunner, FlinkRunner, SparkRunner, …",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing (or unfinished) build in OUTPUT.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Build and check the whole job graph for --runner offline, print its steps and options; run nothing.",
)
@click.pass_context
def build(
    ctx: click.Context, inputs, more_inputs, output, vocab, config_file, workers, runner, overwrite, dry_run, **options
) -> None:
    """Build shards from INPUT files, folders or globs (default: the bundled Wikipedia sample).

    Beam pipeline options go beside these, as --name=value or --name value (e.g. --project P
    --region R --temp_location gs://…). Inputs and outputs may be on any Beam filesystem.
    """
    from corpusgen.tokenizer import SubwordTokenizer, VocabError

    paths = [*inputs, *more_inputs]
    beam_args = ctx.meta.get(BEAM_ARGS, [])
    _setup_logging(ctx.meta.get(DEBUG, False))  # before Beam's PipelineOptions sets up a default one
    try:
        file_options = read_config_file(config_file, "build") if config_file else {}
        cfg = BuildConfig.from_dict(file_options, source=str(config_file)) if config_file else BuildConfig()
        quality, languages, near = options.pop("quality"), options.pop("languages"), options.pop("near_dedup")
        given = {_BUILD_OPTIONS[k]: v for k, v in options.items() if v is not None}
        if quality is not None or languages:
            from corpusgen.quality import QualityConfig

            base = cfg.quality or QualityConfig()
            given["quality"] = (
                None if quality is False else dataclasses.replace(base, languages=tuple(languages) or base.languages)
            )
        if near is not None:
            from corpusgen.neardup import NearDupConfig

            if not 0.0 < near <= 1.0:
                raise ValueError(f"--near-dedup must be a Jaccard threshold in (0, 1], e.g. 0.8; got {near}")

            given["near_dedup"] = dataclasses.replace(cfg.near_dedup or NearDupConfig(), threshold=near)
        if not paths:
            paths = [bundled(BUNDLED_CORPUS)]
        cfg = _merge_build_options(file_options, given, str(config_file or "options"))
        vocab_file = _read_vocab(vocab or bundled(BUNDLED_VOCAB), dry_run)
        if cfg.do_lower_case is not None:  # a tokenizer.json's normalizer must agree, checked before any work
            SubwordTokenizer(vocab_file, cfg.do_lower_case, source=vocab)
    except (ValueError, VocabError) as exc:
        raise _fail(exc) from None
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise UserError("--workers must be at least 1")
    for warning in cfg.warnings():
        click.echo(f"warning: {warning}", err=True)

    from corpusgen.stats import UNSUPPORTED_FORMAT
    from pipelines.build import check_beam_args, check_runner, run_build
    from pipelines.inputs import InputError, check_inputs, leave_out_output, resolve_inputs
    from pipelines.output import OutputError, check_output, is_remote, take_output

    try:
        check_beam_args(beam_args)
    except ValueError as exc:
        raise UserError(f"Beam option {exc}") from None
    problems = check_runner(runner, output, beam_args, paths, dry_run=dry_run)
    if problems:
        raise UserError(f"--runner {runner or 'local'}: {'; '.join(problems)}")
    # A dry run stays offline: remote patterns are passed on as they are, not listed.
    unlisted = [p for p in paths if dry_run and is_remote(p)]
    skipped: dict[str, list[str]] = {}
    try:
        files = resolve_inputs([p for p in paths if p not in unlisted], cfg, skipped)
        files = leave_out_output(files, output, skipped)
        check_inputs(files, cfg)
    except InputError as exc:
        raise _fail(exc) from None
    tables = skipped.get(UNSUPPORTED_FORMAT, [])
    if tables:
        click.echo(
            f"warning: {len(tables)} CSV/TSV file(s) left out ({tables[0]}, ...): convert them to JSON lines or "
            "Parquet, or pass --input-format text to read them as plain text",
            err=True,
        )
    if dry_run:
        try:
            check_output(output, overwrite)  # what the real run would refuse, said now
        except OutputError as exc:
            raise _fail(exc) from None
        _dry_run(files + unlisted, unlisted, output, cfg, vocab_file, runner, workers, beam_args)
        return
    try:
        taken = take_output(output, overwrite)
    except OutputError as exc:
        raise _fail(exc) from None
    if taken.resumed:
        click.echo(
            f"{output}: an unfinished build is there; what it finished is kept if it is the same build "
            "(config, inputs, vocabulary), else it starts over",
            err=True,
        )

    click.echo(f"building {len(files)} file(s) → {output} (runner: {runner or 'local'}, workers: {workers})", err=True)
    started = time.time()
    from corpusgen.progress import ProgressPrinter

    try:
        if is_remote(output):
            run_build(files, output, cfg, vocab_file, runner=runner, workers=workers, beam_args=beam_args,
                      skipped=skipped)  # fmt: skip
        else:
            with ProgressPrinter(output, len(files), lambda line: click.echo(line, err=True)):
                run_build(files, output, cfg, vocab_file, runner=runner, workers=workers, beam_args=beam_args,
                          skipped=skipped)  # fmt: skip
    except KeyboardInterrupt:
        raise UserError(
            "interrupted; the output has no manifest, so no reader takes it; "
            "rerun the same command to resume, or add --overwrite to start over"
        ) from None
    finally:
        taken.release()
    manifest = _read_manifest(output)
    click.echo(_summary(manifest, time.time() - started, cfg))
    for warning in (_unknown_share_warning(manifest), _size_limit_warning(manifest, cfg)):
        if warning:
            click.echo(warning, err=True)
    if not manifest["shards"]:
        raise UserError(_no_instances(manifest))
    global _build_finished
    _build_finished = True


def _merge_build_options(file_options: dict, given: dict, source: str) -> BuildConfig:
    """The build config of a config file's options and the command line's (which win).

    Made in one step from both, so that what either gives explicitly is kept as given: a value
    that follows another one by default (``max_predictions_per_seq`` the rate, ``length_bin_width``
    the length) follows it only where neither names it. ``--whole-word-mask`` is the short form of
    ``--mask-scheme whole-word``: given together, they must agree.
    """
    merged = {**file_options, **given}
    wwm, scheme = given.get("do_whole_word_mask"), given.get("mask_scheme")
    if wwm is not None and scheme is not None and wwm != (scheme == "whole-word"):
        flag = "--whole-word-mask" if wwm else "--no-whole-word-mask"
        raise ValueError(f"{flag} contradicts --mask-scheme {scheme}; give one of them")
    if scheme is not None:  # the command line's scheme decides the short form
        merged["do_whole_word_mask"] = scheme == "whole-word"
    elif wwm is not None:  # the short form names the scheme
        file_scheme = file_options.get(
            "mask_scheme", "whole-word" if file_options.get("do_whole_word_mask") else "token"
        )
        merged["mask_scheme"] = "whole-word" if wwm else ("token" if file_scheme == "whole-word" else file_scheme)
    return BuildConfig.from_dict(merged, source=source)


def _read_vocab(path: str, dry_run: bool):
    """The vocabulary, read here (it travels inside the job): local, or copied from a Beam filesystem."""
    import tempfile

    from corpusgen.tokenizer import VocabError, VocabFile
    from pipelines.output import is_remote

    if not is_remote(path):
        return VocabFile.read(path)
    if dry_run:
        raise VocabError(f"--vocab {path}: a dry run stays offline; pass a local copy of the vocabulary")
    from apache_beam.io.filesystems import FileSystems

    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, path.rstrip("/").rsplit("/", 1)[-1])
        try:
            with FileSystems.open(path) as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except Exception as exc:  # Beam raises filesystem-specific errors
            raise VocabError(
                f"{path}: cannot read vocabulary ({str(exc).splitlines()[0][:200]}); check --vocab"
            ) from None
        try:
            return VocabFile.read(local)
        except VocabError as exc:
            raise VocabError(str(exc).replace(local, path)) from None


def _dry_run(files, unlisted, output, cfg, vocab_file, runner, workers, beam_args) -> None:
    from pipelines.build import dry_run

    report = dry_run(files, output, cfg, vocab_file, runner=runner, workers=workers, beam_args=beam_args)
    click.echo(f"dry run: {report['runner']}, nothing submitted; the job graph below was built and checked offline")
    click.echo(f"inputs: {len(files)} ({len(files) - len(unlisted)} local file(s) listed)")
    for pattern in unlisted:
        click.echo(f"  {pattern}  (remote: not listed in a dry run; a run lists it before submitting)")
    click.echo(f"output: {output}")
    click.echo(
        f"steps ({len(report['steps'])} transforms, {report['primitive_transforms']} primitive; "
        f"graph {report['graph_bytes'] / 1e6:.2f} MB in runner-API form):"
    )
    for label in report["steps"]:
        depth = label.count("/")
        if depth <= 1:
            click.echo(f"  {'  ' * depth}{label.rsplit('/', 1)[-1]}")
    click.echo("options that would be submitted (Beam's names, defaults left out):")
    for name, value in sorted(report["options"].items()):
        click.echo(f"  {name} = {json.dumps(value, default=str)}")


def _read_manifest(output: str) -> dict:
    from apache_beam.io.filesystems import FileSystems

    from corpusgen.shards import MANIFEST_NAME

    with FileSystems.open(FileSystems.join(output, MANIFEST_NAME)) as f:
        return json.loads(f.read())


def _no_instances(manifest: dict) -> str:
    s = manifest["stats"]
    drops = ", ".join(f"{k} {v}" for k, v in s["drops"].items()) or "none"
    return (
        f"no instances were made: {s['documents']['read']} document(s) read, {s['documents']['kept']} kept, "
        f"dropped: {drops}; check the inputs, --input-format, --text-field and --encoding (counts in manifest.json)"
    )


_WORKER_LOG = re.compile(r'^Worker: severity: (\w+).*? message: "((?:[^"\\]|\\.)*)"', re.S)


def _worker_message(record: logging.LogRecord) -> bool:
    """A local worker process's log line as its message alone: Beam's job service relays it as the
    text form of a log proto (severity, timestamps, escaped message, transform, thread)."""
    match = _WORKER_LOG.match(record.getMessage())
    if match:
        escaped = match.group(2).encode("utf-8")  # octal escapes of UTF-8 bytes, or the characters as they are
        record.msg = codecs.escape_decode(escaped)[0].decode("utf-8", "replace")
        record.args = ()
        record.name = "worker"
    return True


def _setup_logging(debug: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if debug else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("corpusgen").setLevel(logging.INFO)
    if not debug:
        # A failing step's traceback, logged by Beam as it fails: the error's one line says it (--debug: all)
        logging.getLogger("apache_beam.runners.common").setLevel(
            logging.CRITICAL
        )  # every local worker process says it at start; it concerns only pickled __main__ sessions
        logging.getLogger("apache_beam.runners.portability.local_job_service").addFilter(
            lambda record: "No semi_persistent_directory found" not in record.getMessage()
        )
        logging.getLogger("apache_beam.runners.portability.local_job_service").addFilter(_worker_message)
        # DaskRunner's note on each step that its partition size changed between Beam versions
        logging.getLogger("apache_beam.runners.dask.transform_evaluator").addFilter(
            lambda record: "default partition size" not in record.getMessage()
        )


UNKNOWN_SHARE_WARNING = 0.01  # BERT's uncased vocabulary leaves ~0.01% of English Wikipedia unknown


def _unknown_share_warning(manifest: dict) -> str | None:
    """A line when the unknown token is more than 1% of the tokens read: the vocabulary does not fit."""
    t = manifest["stats"]["tokens"]
    unk, read = t.get("unk", 0), t.get("read", 0)
    if not read or unk <= UNKNOWN_SHARE_WARNING * read:
        return None
    tok = manifest.get("tokenizer") or {}
    case = ""
    if tok.get("type") == "wordpiece" and not tok.get("do_lower_case", True):
        case = "the build kept case (--no-lower-case): is the vocabulary uncased? "
    return (
        f"warning: {unk / read:.1%} of the tokens read ({unk} of {read}) are {tok.get('unk_token', 'the unknown token')}; "
        f"{case}the vocabulary does not fit the text: check --vocab and --lower-case, or train one with `corpusgen vocab`"
    )


def _size_limit_warning(manifest: dict, cfg: BuildConfig) -> str | None:
    """What the size limits left out, and the keys that raise them (a book in one JSON line, a file without newlines)."""
    from corpusgen.stats import DOCUMENT_TOO_LONG, LINE_TOO_LONG

    drops = manifest["stats"]["drops"]
    over = [
        f"{drops[reason]} {what} over {key} ({limit:,})"
        for reason, what, key, limit in (
            (LINE_TOO_LONG, "line(s)", "max_line_bytes", cfg.max_line_bytes),
            (DOCUMENT_TOO_LONG, "document(s)", "max_document_chars", cfg.max_document_chars),
        )
        if drops.get(reason)
    ]
    if not over:
        return None
    return f"warning: left out {' and '.join(over)}; to keep them, raise the limit under [build] in a --config file"


def _nsp_share(share: float | None, next_sentence: str) -> str:
    """The NSP random share as printed: a layout without pairs has none (not the word None)."""
    return f"none (--next-sentence {next_sentence} makes no NSP labels)" if share is None else str(share)


def _summary(manifest: dict, seconds: float, cfg: BuildConfig) -> str:
    from corpusgen.stats import input_summary

    s = manifest["stats"]
    shards = manifest["shards"]
    nbytes = sum(e["bytes"] for e in shards)
    tokens = sum(e["tokens"] for e in shards)
    drops = ", ".join(f"{k} {v}" for k, v in s["drops"].items()) or "none"
    m = s["masking"]
    if not shards:  # the caller ends with the error that says so
        return f"{input_summary(s)}\ndropped: {drops}"
    return "\n".join(
        [
            f"{input_summary(s)} ({s['documents']['validation']} held out for validation)",
            f"dropped: {drops}",
            f"tokens: {s['tokens']['kept']} kept; instances: {s['instances']} ({tokens} tokens) in {len(shards)} shard(s), "
            f"{nbytes / 1e6:.1f} MB, {nbytes / max(1, tokens):.3f} bytes/token",
            f"NSP random share: {_nsp_share(s['nsp']['random_share'], cfg.next_sentence)}; "
            f"masked {m['masked_share']} of tokens "
            f"(mask/random/kept {m['mask_share']}/{m['random_share']}/{m['kept_share']})"
            + (
                f"; max_predictions_per_seq {cfg.max_predictions_per_seq} caps masking below masked_lm_prob "
                f"{cfg.masked_lm_prob} in instances of {cfg.masking_cap_tokens}+ tokens"
                if cfg.masking_capped
                else ""
            ),
            f"built in {seconds:.1f}s",
        ]
    )


# --- validate / inspect ----------------------------------------------------------------------------


@cli.command()
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(build_dir: str, as_json: bool) -> None:
    """Verify schema, checksums and every row of a build; recompute its statistics. Exit 1 on any defect."""
    from corpusgen.validate import validate_build

    report = validate_build(build_dir)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        for d in report["defects"]:
            click.echo(f"DEFECT {d}")
        c = report["checked"]
        if c and not c["rows"]:  # no figures to give (the defect above says why)
            click.echo(f"{c['shards']} shard(s), 0 rows")
        elif c:
            nsp = c["nsp_random_share"]
            click.echo(
                f"{c['shards']} shard(s), {c['rows']} rows, {c['tokens']} tokens, {c['bytes_per_token']} bytes/token; "
                f"NSP random {'none (no NSP labels)' if nsp is None else nsp}; "
                f"mask/random/kept {c['mask_share']}/{c['random_share']}/{c['kept_share']}; "
                f"padding share at most {c['padding_share_at_most']} (rows padded to their length bin's top)"
            )
        click.echo("OK" if report["ok"] else f"FAILED: {len(report['defects'])} defect(s)")
    sys.exit(0 if report["ok"] else 1)


@cli.command()
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("-n", "count", default=3, show_default=True, help="Instances to show.")
@click.option(
    "--shard",
    "shard_index",
    type=int,
    default=None,
    help="Index of the shard in the manifest [the largest train shard].",
)
def inspect(build_dir: str, count: int, shard_index: int | None) -> None:
    """Show instances readably: A and B on their own lines, each mask as [MASK→label], ~random→label or =kept."""
    import pyarrow as pa

    from corpusgen.shards import (
        MANIFEST_NAME,
        NSP_IGNORE,
        ManifestError,
        load_manifest,
        masking_layout_problem,
        open_shard,
        resolve_entry,
        sha256_file,
        stored_masks_problem,
    )
    from corpusgen.tokenizer import SubwordTokenizer, VocabError, VocabFile

    try:
        manifest = load_manifest(build_dir)
    except ManifestError as exc:
        raise _fail(exc) from None
    if not manifest["shards"]:
        raise UserError(f"{build_dir}: the build has no shards (see the drops in manifest.json)")
    if shard_index is None:
        shards = manifest["shards"]
        shard_index = max(range(len(shards)), key=lambda i: (shards[i].get("split") == "train", shards[i]["rows"]))
    if not 0 <= shard_index < len(manifest["shards"]):
        raise UserError(f"--shard {shard_index}: the build has shards 0..{len(manifest['shards']) - 1}")
    entry = manifest["shards"][shard_index]
    vocab = resolve_entry(build_dir, manifest["vocab"], what="vocab")
    shard = resolve_entry(build_dir, entry["path"], what=f"shards[{shard_index}].path")
    try:
        vocab_file = VocabFile.read(vocab)
        wp = SubwordTokenizer(vocab_file, manifest["config"]["do_lower_case"])
    except VocabError as exc:
        raise UserError(f"{exc}; run `corpusgen validate {build_dir}`") from None
    if vocab_file.sha256 != manifest["vocab_sha256"]:
        raise UserError(
            f"{vocab}: sha256 differs from the manifest's vocab_sha256, so the tokens shown would be wrong; "
            f"run `corpusgen validate {build_dir}`, restore the vocabulary or rebuild"
        )
    problems = [*wp.entry_problems(manifest["tokenizer"]), masking_layout_problem(manifest)]
    if any(problems):
        problem = next(p for p in problems if p)
        raise UserError(f"{Path(build_dir) / MANIFEST_NAME}: {problem}; the manifest was edited: rebuild the data")
    if not shard.is_file():
        raise UserError(f"{shard}: shard listed in the manifest is missing; run `corpusgen validate {build_dir}`")
    if sha256_file(shard) != entry.get("sha256"):
        raise UserError(
            f"{shard}: sha256 differs from the manifest (corrupt or replaced); run `corpusgen validate {build_dir}`"
        )
    try:
        reader = open_shard(shard)
        first = reader.get_batch(0) if reader.num_record_batches else None
    except (pa.ArrowException, OSError) as exc:
        raise UserError(
            f"{shard}: unreadable shard ({str(exc)[:120]}); run `corpusgen validate {build_dir}` and rebuild"
        ) from None
    problem = None if first is None else stored_masks_problem(first, bool(manifest["config"].get("dynamic_masking")))
    if problem is not None:
        raise UserError(f"{shard}: {problem}; the manifest was edited: rebuild the data")
    rows = first.slice(0, count).to_pylist() if first is not None else []
    click.echo(f"{entry['path']}: {entry['rows']} rows, bin {entry['bin']}, split {entry.get('split', 'train')}")
    packing = manifest["stats"].get("packing")
    if packing:
        click.echo(
            f"packed ({manifest['config']['next_sentence']}): {packing['packed_rows']} rows, {packing['full_rows']} full, "
            f"{packing['segments']} document pieces, fill {packing['fill']}, "
            f"padding share at most {packing['padding']['share_at_most']}"
        )
    swapped = manifest["config"].get("next_sentence") == "sop"  # SOP's 1 means A and B were swapped
    labels = {0: "B follows A", 1: "A and B swapped" if swapped else "B is random", NSP_IGNORE: "no pair"}
    copies = int(manifest["config"].get("mask_copies", 1))
    if copies > 1:
        click.echo(f"mask copies: {copies} mask sets per row, set 0 shown")
    if manifest["config"].get("dynamic_masking") and rows:
        import numpy as np

        from corpusgen.config import BuildConfig
        from corpusgen.masking import VocabTables, mask_rows, row_keys, shard_key

        click.echo("dynamic masking: rows are stored unmasked; shown with the masks the loader draws at epoch 0")
        cfg = BuildConfig.from_dict(manifest["config"])
        lengths = np.array([len(row["input_ids"]) for row in rows])
        flat = np.concatenate([row["input_ids"] for row in rows])
        ws = np.concatenate([row["word_starts"] for row in rows]) if "word_starts" in rows[0] else None
        keys = row_keys(cfg.random_seed, 0, shard_key(entry["path"]), np.arange(len(rows)))
        seq, m = mask_rows(flat, lengths, ws, cfg, VocabTables.from_tokenizer(wp), keys)
        masked, row_of = m.apply(seq.ids), seq.row_of[m.chosen]
        for r, row in enumerate(rows):
            row["input_ids"] = masked[seq.row_start[r] : seq.row_start[r] + lengths[r]].tolist()
            row["masked_positions"] = (m.chosen[row_of == r] - seq.row_start[r]).tolist()
            row["masked_labels"] = m.labels[row_of == r].tolist()
    for r, row in enumerate(rows):
        ids = list(row["input_ids"])
        positions, labels_ = row["masked_positions"], row["masked_labels"]
        if copies > 1:  # the unmasked row with its first set applied
            positions, labels_ = positions[0], labels_[0]
            for p, x in zip(positions, row["masked_inputs"][0]):
                ids[p] = x
        toks = wp.decode_tokens(ids)
        for p, label in zip(positions, labels_):
            shown, orig = toks[p], wp.tokens[label]
            toks[p] = (
                f"[MASK→{orig}]" if ids[p] == wp.mask_id else (f"={orig}" if shown == orig else f"~{shown}→{orig}")
            )
        if "doc_starts" in row:  # packed: one line per document piece
            ends = [*row["doc_starts"][1:], len(toks)]
            click.echo(f"\n#{r}  len {len(toks)}  doc_starts {row['doc_starts']}")
            for j, (lo, hi) in enumerate(zip(row["doc_starts"], ends)):
                click.echo(f"  D{j + 1}: {' '.join(toks[lo:hi])}")
            continue
        a, b = " ".join(toks[1 : row["a_len"] - 1]), " ".join(toks[row["a_len"] : -1])
        label = labels.get(row["next_sentence_label"], "?")
        click.echo(
            f"\n#{r}  len {len(toks)}  a_len {row['a_len']}  next_sentence_label {row['next_sentence_label']} ({label})"
        )
        click.echo(f"  A: {a}")
        if b:
            click.echo(f"  B: {b}")


# --- split / vocab ------------------------------------------------------------------------------------


@cli.command()
@click.option("--lang", default="en", show_default=True, help="en, zh, ja, de, fr, …, or auto.")
@click.option("--line-breaks", type=click.Choice(["auto", "sentence", "space"]), default="auto", show_default=True)
def split(lang: str, line_breaks: str) -> None:
    """stdin: documents separated by blank lines → stdout: one sentence per line, a blank line between documents."""
    from corpusgen.clean import clean_text
    from corpusgen.split import check_language, split_sentences

    try:
        check_language(lang)
    except ValueError as exc:
        raise UserError(f"--{exc}") from None
    raw = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    try:
        data = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # as a build reads a file of unknown encoding: BOM, declaration, detection
        from corpusgen.encoding import DecodeError, decode_bytes

        try:
            data, codec = decode_bytes(raw)
        except DecodeError as why:
            raise UserError(f"stdin: not text ({why}); pipe in UTF-8 text") from None
        click.echo(f"stdin: not UTF-8 (byte {exc.start}); read as {codec}", err=True)
    first = True
    out = sys.stdout
    for doc in clean_text(data).split("\n\n"):
        sentences = split_sentences(doc, lang, line_breaks)
        if not sentences:
            continue
        if not first:
            out.write("\n")
        out.write("\n".join(sentences) + "\n")
        first = False


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o", "--output", required=True, help="vocab.txt (WordPiece only), or tokenizer.json for a full tokenizer."
)
@click.option("--vocab-size", default=30522, show_default=True)
@click.option("--min-frequency", default=2, show_default=True, help="WordPiece and BPE.")
@click.option("--limit-alphabet", default=1000, show_default=True, help="WordPiece and BPE.")
@click.option(
    "--lower-case/--no-lower-case", default=None, help="[default: lower for wordpiece, cased for bpe/unigram]"
)
@click.option("--input-format", type=click.Choice(INPUT_FORMATS), default="auto", show_default=True)
@click.option("--text-field", default="text", show_default=True)
@click.option(
    "--model",
    type=click.Choice(["wordpiece", "bpe", "unigram"]),
    default="wordpiece",
    show_default=True,
    help="wordpiece (BERT), bpe (byte-level, RoBERTa/ModernBERT) or unigram (SentencePiece-style).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT file.")
def vocab(
    inputs, output, vocab_size, min_frequency, limit_alphabet, lower_case, input_format, text_field, model, overwrite
) -> None:
    """Train a WordPiece, BPE or Unigram tokenizer (Hugging Face tokenizers) on INPUT files."""
    from corpusgen.readers import open_local
    from corpusgen.vocab import train_vocab
    from pipelines.inputs import InputError, check_inputs, open_raw, resolve_inputs

    target = Path(output)
    if target.is_dir():
        raise UserError(f"{output}: is a folder; name the file to write (vocab.txt or tokenizer.json)")
    if target.exists() and not overwrite:
        raise UserError(f"{output}: exists (a build's vocabulary, perhaps); name a new file, or add --overwrite")
    blocked = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise UserError(f"{output}: {blocked} is a file, not a folder; name another output path")
    if min_frequency < 0 or limit_alphabet < 1:
        raise UserError("--min-frequency must be >= 0 and --limit-alphabet >= 1")
    try:
        cfg = BuildConfig(input_format=input_format, text_field=text_field)
        files = resolve_inputs(list(inputs), cfg)
        check_inputs(files, cfg)
        opener = open_raw if any("://" in f for f in files) else open_local  # Beam's filesystems for remote paths
        result = train_vocab(files, output, cfg, opener=opener, vocab_size=vocab_size, min_frequency=min_frequency,
                             limit_alphabet=limit_alphabet, lower_case=lower_case, model=model)  # fmt: skip
    except (ValueError, InputError) as exc:
        raise _fail(exc) from None
    drops = ", ".join(f"{reason} {n}" for reason, n in result["drops"].items())
    for warning in result["warnings"]:
        click.echo(f"warning: {output}: {warning}", err=True)
    click.echo(
        f"{output}: {result['vocab_size']} tokens from {result['documents']} documents (dropped: {drops or 'none'})"
    )


@cli.group()
def bench() -> None:
    """Benchmarks (figures printed, last line JSON)."""


@bench.command("build")
@click.argument("inputs", nargs=-1)
@click.option("--vocab", type=click.Path(dir_okay=False), help="[default: bundled bert-base-uncased]")
@click.option("--workers", "workers", type=int, multiple=True, help="Worker counts to run (repeatable) [1, 2].")
@click.option("--dupe-factor", "dupe_factors", type=int, multiple=True, help="dupe_factor values (repeatable) [1, 5].")
@click.option("--zstd-level", type=int, default=None, help="[the build's default]")
@click.option("--text-field", default="text", show_default=True)
@click.option("--pin-one-worker", is_flag=True, help="Run the 1-worker builds under `taskset -c 0` (one core).")
def bench_build_command(inputs, vocab, workers, dupe_factors, zstd_level, text_field, pin_one_worker) -> None:
    """Build throughput vs the bare tokenizer, per stage, with peak memory (default: the bundled corpus)."""
    from pipelines.bench import bench_build
    from pipelines.inputs import InputError, resolve_inputs

    cfg = BuildConfig(text_field=text_field)
    if zstd_level is not None:
        cfg = cfg.replace(zstd_level=zstd_level)
    try:
        files = resolve_inputs(list(inputs) or [bundled(BUNDLED_CORPUS)], cfg)
        result = bench_build(
            files,
            vocab_path=vocab or bundled(BUNDLED_VOCAB),
            workers=list(workers) or [1, 2],
            dupe_factors=list(dupe_factors) or [1, 5],
            cfg=cfg,
            taskset_one=pin_one_worker,
            echo=click.echo,
        )
    except (ValueError, InputError, RuntimeError) as exc:
        raise _fail(exc) from None
    click.echo(json.dumps(result))


def _register_trainer() -> None:
    from trainer.cli import COMMANDS, bench_loader, bench_train

    for command in COMMANDS:
        cli.add_command(command)
    bench.add_command(bench_loader, "loader")
    bench.add_command(bench_train, "train")


_register_trainer()


_build_finished = False  # set by a build that wrote its manifest and printed its summary


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    try:
        cli()
    except SystemExit as stop:
        if _build_finished and stop.code in (0, None):
            # Everything is written; what is left is Beam's and gRPC's teardown (0.3 s).
            from pipelines.transforms import exit_without_teardown

            exit_without_teardown(0)
        raise


if __name__ == "__main__":
    main()
