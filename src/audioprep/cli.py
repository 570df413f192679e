"""The ``audioprep`` command: one subcommand per stage. This file only parses options.

Heavy modules (numpy, soundfile, ffmpeg-python, models) are imported inside the commands,
so ``audioprep --help`` stays instant.
"""

from __future__ import annotations

import contextvars
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from audioprep import __version__

if TYPE_CHECKING:
    from audioprep.stage import Stage

app = typer.Typer(
    name="audioprep",
    help=(
        "Turn raw web audio into clean speech and ASMR training corpora.\n\n"
        "Each stage reads a manifest directory and writes a new one: "
        "audioprep STAGE IN_DIR OUT_DIR [options]. Re-running a stage resumes it.\n\n"
        "Exit status: 0 all items done, 1 some items failed (see OUT_DIR/errors.jsonl), "
        "2 bad options, 3 the stage could not run, 130 interrupted."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

InDir = Annotated[Path, typer.Argument(help="Input manifest directory.", show_default=False)]
OutDir = Annotated[
    Path, typer.Argument(help="Output manifest directory (created).", show_default=False)
]
Jobs = Annotated[
    int, typer.Option("--jobs", "-j", help="Parallel workers; 0 means one per core.", min=0)
]
FailFast = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed item.")]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Discard what OUT_DIR holds and start afresh.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"audioprep {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool],  # noqa: UP045 - typer needs Optional here
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """Turn raw web audio into clean speech and ASMR training corpora."""


@dataclasses.dataclass
class StageCall:
    """What a stage command line asks for, parsed but not run (see :func:`parse_stage_command`)."""

    stage: Stage
    out_dir: Path
    in_dir: Path | None
    jobs: int
    fail_fast: bool


class _Captured(Exception):
    pass


_CAPTURE: contextvars.ContextVar[list[StageCall] | None] = contextvars.ContextVar(
    "audioprep_capture", default=None
)


def parse_stage_command(argv: list[str]) -> StageCall:
    """The stage, directories and options that ``audioprep ARGV`` would run, without running it.

    Chains use this so that a config file takes exactly the command line's option names,
    checks and defaults.

    >>> call = parse_stage_command(["convert", "raw", "wav", "--sample-rate", "16000"])
    >>> call.stage.name, call.stage.params.sample_rate, call.in_dir.name
    ('convert', 16000, 'raw')
    """
    from audioprep.errors import UsageError

    box: list[StageCall] = []
    token = _CAPTURE.set(box)
    try:
        typer.main.get_command(app).main(
            args=[str(a) for a in argv], prog_name="audioprep", standalone_mode=False
        )
    except _Captured:
        return box[0]
    except typer.Exit as exc:  # --help and the like
        raise UsageError(f"audioprep {' '.join(map(str, argv))} does not run a stage") from exc
    except Exception as exc:
        if not hasattr(exc, "format_message"):  # click's (typer's) usage errors have it
            raise
        msg = f"audioprep {' '.join(map(str, argv[:1]))}: {exc.format_message()}"
        raise UsageError(msg) from None
    finally:
        _CAPTURE.reset(token)
    raise UsageError(f"{argv[0] if argv else '(nothing)'} is not a stage command")


def _execute(
    stage: Stage,
    out_dir: Path,
    *,
    in_dir: Path | None,
    jobs: int,
    fail_fast: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    box = _CAPTURE.get()
    if box is not None:  # parse_stage_command: hand the stage over instead of running it
        box.append(StageCall(stage, Path(out_dir), in_dir, jobs, fail_fast))
        raise _Captured

    from audioprep.errors import AudioprepError
    from audioprep.runner import run_stage

    try:
        summary = run_stage(
            stage,
            out_dir,
            in_dir=in_dir,
            jobs=jobs,
            fail_fast=fail_fast,
            overwrite=overwrite,
            progress=False if quiet else None,
        )
    except AudioprepError as exc:
        typer.echo(f"audioprep {stage.name}: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo(
            f"audioprep {stage.name}: interrupted; run the same command again to resume.", err=True
        )
        raise typer.Exit(130) from None
    typer.echo(summary.line(), err=True)
    raise typer.Exit(summary.exit_code)


@app.command()
def crawl(
    args: Annotated[
        list[str],
        typer.Argument(
            help="URLs (videos, playlists, channels, searches, podcast feeds, pages, media "
            "files, yt-dlp .info.json files), then OUT_DIR last.",
            show_default=False,
            metavar="[URL]... OUT_DIR",
        ),
    ],
    from_file: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option(
            "--from-file",
            "-f",
            help="A file of URLs: one or more per line (commas allowed), # comments, "
            "genre=... genre_keyword=... on a line. Repeatable.",
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="yt-dlp (anything yt-dlp reads) or pytube (YouTube only).")
    ] = "yt-dlp",
    video: Annotated[
        bool, typer.Option("--video", help="Keep the video too (for a later convert).")
    ] = False,
    format_: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--format", help="yt-dlp format selector (default: bestaudio/best)."),
    ] = None,
    genre: Annotated[str, typer.Option(help="source.genre of every item, e.g. nature.")] = "",
    genre_keyword: Annotated[
        str, typer.Option(help="source.genre_keyword of every item, e.g. fire.")
    ] = "",
    max_items: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="At most this many items from each URL.", min=1),
    ] = None,
    date_after: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Keep items published on or after this date (2024-03-01)."),
    ] = None,
    date_before: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Keep items published on or before this date."),
    ] = None,
    match_title: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Keep items whose title matches this regex (case-insensitive)."),
    ] = None,
    min_duration: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(help="Keep items at least this long (s).", min=0),
    ] = None,
    max_duration: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(help="Keep items at most this long (s).", min=0),
    ] = None,
    retries: Annotated[
        int, typer.Option(help="Retries of a network failure, with back-off.", min=0)
    ] = 3,
    retry_wait: Annotated[
        float, typer.Option(help="First back-off wait (s); doubles each retry.", min=0)
    ] = 2.0,
    rate_limit: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Download speed limit per worker, e.g. 500K or 2M (bytes/s)."),
    ] = None,
    sleep: Annotated[
        float, typer.Option(help="Seconds to wait before each request and download.", min=0)
    ] = 0.0,
    timeout: Annotated[float, typer.Option(help="Network timeout (s).", min=1)] = 30.0,
    archive: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Download archive shared between crawls: items listed there are not "
            "downloaded again (rejected with a reason)."
        ),
    ] = None,
    jobs: Jobs = 0,
    fail_fast: FailFast = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Download audio and its metadata from YouTube, podcast feeds, pages and direct URLs.

    Each item lands in OUT_DIR/audio/ named by its id (never its title), with its metadata
    under `source` (id, author, title, channel_url, publish_date, genre, genre_keyword,
    comment, file_size, description, duration, extractor, url). Re-running resumes partial
    downloads and downloads nothing twice; failures go to OUT_DIR/errors.jsonl, filtered
    items to OUT_DIR/rejected.jsonl.

    Example: `audioprep crawl https://feeds.example.org/show.xml --max-items 20 raw/`
    """
    from audioprep.stages.crawl import CrawlStage

    if not args:
        raise typer.BadParameter("give OUT_DIR (and URLs, or --from-file)", param_hint="OUT_DIR")
    *urls, out_dir = args
    stage = CrawlStage(
        CrawlStage.Params(
            urls=tuple(urls),
            from_file=tuple(str(p.absolute()) for p in from_file or ()),
            backend=backend,
            video=video,
            format=format_,
            genre=genre,
            genre_keyword=genre_keyword,
            max_items=max_items,
            date_after=date_after,
            date_before=date_before,
            match_title=match_title,
            min_duration=min_duration,
            max_duration=max_duration,
            retries=retries,
            retry_wait=retry_wait,
            rate_limit=rate_limit,
            sleep=sleep,
            timeout=timeout,
            archive=str(archive.absolute()) if archive else None,
        )
    )
    _execute(
        stage,
        Path(out_dir),
        in_dir=None,
        jobs=jobs,
        fail_fast=fail_fast,
        overwrite=overwrite,
        quiet=quiet,
    )


@app.command()
def ingest(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Media files, folders (walked recursively) or quoted globs.", show_default=False
        ),
    ],
    out_dir: OutDir,
    jobs: Jobs = 0,
    fail_fast: FailFast = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Build a manifest directory from local media files, folders or globs.

    Probes duration, sample rate and channels with ffprobe and hard-links each file into
    OUT_DIR/audio/ (copies across file systems). Files that are empty, truncated or not media
    go to OUT_DIR/errors.jsonl.

    Example: `audioprep ingest ~/podcasts "~/clips/**/*.mp3" raw/`
    """
    from audioprep.stages.ingest import IngestStage

    stage = IngestStage(IngestStage.Params(sources=tuple(sources)))
    _execute(
        stage,
        out_dir,
        in_dir=None,
        jobs=jobs,
        fail_fast=fail_fast,
        overwrite=overwrite,
        quiet=quiet,
    )


@app.command()
def convert(
    in_dir: InDir,
    out_dir: OutDir,
    sample_rate: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--sample-rate", "-r", help="Output rate in Hz (default: keep)."),
    ] = None,
    channels: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--channels", "-c", help="Output channels, 1 = mono (default: keep)."),
    ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="wav or flac.")] = "wav",
    sample_format: Annotated[
        str, typer.Option("--sample-format", help="s16, s24 or f32 (f32: wav only).")
    ] = "s16",
    jobs: Jobs = 0,
    fail_fast: FailFast = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Convert any media ffmpeg reads (mp4, m4a, webm, mp3, ogg, flac, wav) to PCM wav or flac.

    Example: `audioprep convert raw/ wav16k/ --sample-rate 16000 --channels 1`
    """
    from audioprep.stages.convert import ConvertStage

    stage = ConvertStage(
        ConvertStage.Params(
            sample_rate=sample_rate, channels=channels, format=format, sample_format=sample_format
        )
    )
    _execute(
        stage,
        out_dir,
        in_dir=in_dir,
        jobs=jobs,
        fail_fast=fail_fast,
        overwrite=overwrite,
        quiet=quiet,
    )


@app.command()
def trim(
    in_dir: InDir,
    out_dir: OutDir,
    head: Annotated[float, typer.Option("--head", help="Seconds to cut from the start.")] = 0.0,
    tail: Annotated[float, typer.Option("--tail", help="Seconds to cut from the end.")] = 0.0,
    jobs: Jobs = 0,
    fail_fast: FailFast = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Strip a fixed intro and outro from every item, sample-accurately.

    Items not longer than head + tail go to OUT_DIR/rejected.jsonl with the reason.

    Example: `audioprep trim wav16k/ trimmed/ --head 5 --tail 2`
    """
    from audioprep.stages.trim import TrimStage

    stage = TrimStage(TrimStage.Params(head=head, tail=tail))
    _execute(
        stage,
        out_dir,
        in_dir=in_dir,
        jobs=jobs,
        fail_fast=fail_fast,
        overwrite=overwrite,
        quiet=quiet,
    )


@app.command()
def denoise(
    in_dir: InDir,
    out_dir: OutDir,
    lowpass: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--lowpass", help="Low-pass cut-off in Hz (hiss, crackle)."),
    ] = None,
    highpass: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--highpass", help="High-pass cut-off in Hz (rumble)."),
    ] = None,
    rolloff: Annotated[
        float,
        typer.Option("--rolloff", help="Roll-off in dB per octave, as applied (sets the order)."),
    ] = 36.0,
    passes: Annotated[int, typer.Option("--passes", help="Apply the filters this many times.")] = 1,
    zero_phase: Annotated[
        bool,
        typer.Option("--zero-phase/--causal", help="Forward-backward (no phase shift) or causal."),
    ] = True,
    notch: Annotated[
        Optional[list[float]],  # noqa: UP045
        typer.Option("--notch", help="Notch out a tonal whine at this frequency (repeatable)."),
    ] = None,
    q: Annotated[
        float, typer.Option("--q", help="Quality of the notches (bandwidth = f / Q).")
    ] = 30.0,
    notch_auto: Annotated[
        int,
        typer.Option("--notch-auto", help="Find and notch the N strongest tonal peaks per item."),
    ] = 0,
    jobs: Jobs = 0,
    fail_fast: FailFast = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Filter hiss, rumble and tonal whine: low-pass, high-pass and notch filters in one pass.

    Files are processed in blocks (bounded memory at any length); when filtering would push a
    peak past full scale the item is scaled down and the gain recorded under `denoise`.

    Example: `audioprep denoise wav/ clean/ --lowpass 5000 --rolloff 36 --passes 2 --notch 6000`
    """
    from audioprep.stages.denoise import DenoiseStage

    params = DenoiseStage.Params(
        lowpass=lowpass,
        highpass=highpass,
        rolloff=rolloff,
        passes=passes,
        zero_phase=zero_phase,
        notch=tuple(notch or ()),
        q=q,
        notch_auto=notch_auto,
    )
    stage = DenoiseStage(params)
    _execute(
        stage,
        out_dir,
        in_dir=in_dir,
        jobs=jobs,
        fail_fast=fail_fast,
        overwrite=overwrite,
        quiet=quiet,
    )


ModelDir = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--model-dir",
        help="Model weights folder (default: $AUDIOPREP_MODEL_DIR or ~/.cache/audioprep/models).",
    ),
]
Device = Annotated[str, typer.Option("--device", help="cpu or cuda.")]


@app.command()
def segment(
    in_dir: InDir,
    out_dir: OutDir,
    engine: Annotated[
        str,
        typer.Option(
            "--engine", help="ina (inaSpeechSegmenter) or silero (speech/nonspeech, faster)."
        ),
    ] = "ina",
    vad_engine: Annotated[
        str, typer.Option("--vad-engine", help="smn: speech/music/noise; sm: speech/music.")
    ] = "smn",
    detect_gender: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--detect-gender/--no-detect-gender",
            help="Label speech male/female (default: when the gender model is present).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="CNN batch size.")] = 256,
    device: Device = "cpu",
    window: Annotated[
        float, typer.Option("--window", help="Seconds of audio per CNN window (memory bound).")
    ] = 300.0,
    model_dir: ModelDir = None,
    jobs: Jobs = 0,
    fail_fast: FailFast = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Label speech, music, noise and silence (noEnergy) in every item with inaSpeechSegmenter.

    Adds `segments` ([{label, start, end}]), `label_seconds`, `speech_seconds` and the ASMR
    attribute `source.comment` (1 when the item contains speech). Long files are processed in
    windows with bounded memory and the same labels as a whole-file run.

    Example: `AUDIOPREP_MODEL_DIR=../shared/models audioprep segment wav16k/ labelled/`
    """
    from audioprep.stages.segment import SegmentStage

    stage = SegmentStage(
        SegmentStage.Params(
            engine=engine,
            vad_engine=vad_engine,
            detect_gender=detect_gender,
            batch_size=batch_size,
            device=device,
            window=window,
            model_dir=model_dir or "",
        )
    )
    _execute(
        stage,
        out_dir,
        in_dir=in_dir,
        jobs=jobs,
        fail_fast=fail_fast,
        overwrite=overwrite,
        quiet=quiet,
    )


@app.command(name="slice")
def slice_(
    in_dir: InDir,
    out_dir: OutDir,
    labels: Annotated[
        str, typer.Option("--labels", help="Comma-separated labels to cut into clips.")
    ] = "speech,male,female",
    min_duration: Annotated[
        float, typer.Option("--min-duration", help="Drop shorter segments (to rejected.jsonl).")
    ] = 1.5,
    max_duration: Annotated[
        float,
        typer.Option(
            "--max-duration", help="Split longer ones at a quiet point (padding included)."
        ),
    ] = 15.0,
    merge_gap: Annotated[
        float, typer.Option("--merge-gap", help="Join same-label segments this close (s).")
    ] = 0.0,
    pad: Annotated[
        float, typer.Option("--pad", help="Context kept on each side (s), never past the file.")
    ] = 0.0,
    chunk: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--chunk", help="Cut fixed-length chunks of this many seconds instead."),
    ] = None,
    drop_last: Annotated[
        bool, typer.Option("--drop-last/--keep-last", help="With --chunk: drop a short last chunk.")
    ] = True,
    jobs: Jobs = 0,
    fail_fast: FailFast = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Cut labelled segments into clips by duration, or cut fixed-length chunks.

    Each clip records `parent`, `offset` (start in the parent, s), `label` and its share of the
    parent's `segments`. Segments shorter than the minimum go to rejected.jsonl.

    Example: `audioprep slice labelled/ clips/ --labels male,female --max-duration 15`
    or `audioprep slice wav/ chunks/ --chunk 30 --keep-last`
    """
    from audioprep.stages.slice import SliceStage

    stage = SliceStage(
        SliceStage.Params(
            labels=tuple(x.strip() for x in labels.split(",") if x.strip()),
            min_duration=min_duration,
            max_duration=max_duration,
            merge_gap=merge_gap,
            pad=pad,
            chunk=chunk,
            drop_last=drop_last,
        )
    )
    _execute(
        stage,
        out_dir,
        in_dir=in_dir,
        jobs=jobs,
        fail_fast=fail_fast,
        overwrite=overwrite,
        quiet=quiet,
    )


@app.command(name="speaker-filter")
def speaker_filter(
    in_dir: InDir,
    out_dir: OutDir,
    reference: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--reference", help="Reference audio of the target voice: file or folder."),
    ] = None,
    reference_manifest: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--reference-manifest", help="Enrol from clips of this manifest directory."),
    ] = None,
    reference_ids: Annotated[
        str,
        typer.Option("--reference-ids", help="With --reference-manifest: ids, comma-separated."),
    ] = "",
    threshold: Annotated[
        str, typer.Option("--threshold", help="Keep items at or above this similarity, or auto.")
    ] = "0.75",
    enrol: Annotated[
        str,
        typer.Option("--enrol", help="reference, or dominant: the voice most items share."),
    ] = "reference",
    min_voiced: Annotated[
        float, typer.Option("--min-voiced", help="Reject items with less voiced audio (s).")
    ] = 1.0,
    report: Annotated[
        bool, typer.Option("--report", help="Write speaker_report.png and .json in OUT_DIR.")
    ] = False,
    device: Device = "cpu",
    jobs: Jobs = 0,
    fail_fast: FailFast = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Keep only the target voice: Resemblyzer embeddings compared with reference audio.

    Records `speaker_similarity` on every kept item; the others go to rejected.jsonl with their
    score. `--enrol dominant` needs no reference: it takes the voice most items share.

    Example: `audioprep speaker-filter clips/ host/ --reference host1.wav --reference host2.wav`
    """
    from audioprep.errors import UsageError
    from audioprep.stages.speaker_filter import SpeakerFilterStage

    try:
        value = None if threshold == "auto" else float(threshold)
    except ValueError:
        typer.echo(
            f"audioprep speaker-filter: error: --threshold {threshold!r} is not a number or auto.",
            err=True,
        )
        raise typer.Exit(UsageError.exit_code) from None
    stage = SpeakerFilterStage(
        SpeakerFilterStage.Params(
            references=tuple(reference or ()),
            reference_manifest=reference_manifest,
            reference_ids=tuple(x for x in reference_ids.split(",") if x),
            threshold=value,
            enrol=enrol,
            min_voiced=min_voiced,
            report=report,
            device=device,
        )
    )
    _execute(
        stage,
        out_dir,
        in_dir=in_dir,
        jobs=jobs,
        fail_fast=fail_fast,
        overwrite=overwrite,
        quiet=quiet,
    )


@app.command()
def separate(
    in_dir: InDir,
    out_dir: OutDir,
    model: Annotated[
        str, typer.Option("--model", help="spleeter:2stems, 4stems or 5stems (vocals kept).")
    ] = "spleeter:2stems",
    keep_accompaniment: Annotated[
        bool, typer.Option("--keep-accompaniment", help="Also write the accompaniment.")
    ] = False,
    window: Annotated[
        float, typer.Option("--window", help="Seconds per Spleeter call (bounds memory).")
    ] = 30.0,
    overlap: Annotated[
        float, typer.Option("--overlap", help="Seconds cross-faded between windows.")
    ] = 2.0,
    device: Device = "cpu",
    model_dir: ModelDir = None,
    jobs: Jobs = 0,
    fail_fast: FailFast = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Remove background music: keep the vocals of every item with Spleeter.

    Spleeter runs in its own environment (`make spleeter`), in windows cross-faded together, so
    files of any length separate with bounded memory; the output has the item's own rate,
    channels and length to the sample.

    Example: `audioprep separate wav/ vocals/ --keep-accompaniment`
    """
    from audioprep.stages.separate import SeparateStage

    stage = SeparateStage(
        SeparateStage.Params(
            model=model,
            keep_accompaniment=keep_accompaniment,
            window=window,
            overlap=overlap,
            device=device,
            model_dir=model_dir or "",
        )
    )
    _execute(
        stage,
        out_dir,
        in_dir=in_dir,
        jobs=jobs,
        fail_fast=fail_fast,
        overwrite=overwrite,
        quiet=quiet,
    )


@app.command()
def models(model_dir: ModelDir = None) -> None:
    """List the models audioprep knows, whether each is present, and where.

    Example: `AUDIOPREP_MODEL_DIR=../shared/models audioprep models`
    """
    from audioprep.models import ENV, KNOWN_MODELS
    from audioprep.models import model_dir as resolve

    directory = resolve(model_dir)
    source = "--model-dir" if model_dir else (ENV if ENV in __import__("os").environ else "default")
    typer.echo(f"model directory: {directory} (from {source})")
    for spec in KNOWN_MODELS:
        state = "present" if spec.present(directory) else "missing"
        typer.echo(f"  {state:8} {spec.engine}/{spec.name:38} used by: {spec.used_by}")
        if state == "missing":
            typer.echo(f"           get it from {spec.origin}")


def _fail(command: str, exc: Exception) -> None:
    from audioprep.errors import AudioprepError

    code = exc.exit_code if isinstance(exc, AudioprepError) else 3
    typer.echo(f"audioprep {command}: error: {exc}", err=True)
    raise typer.Exit(code)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Chain config (YAML).", show_default=False)],
    workdir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Work folder: one NN-STAGE directory per stage (default: config's)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would run, skip or re-run, and why.")
    ] = False,
    stop_on_failure: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--stop-on-failure/--keep-going",
            help="Stop when a stage has failed items (default: the config's, else keep going).",
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Run a chain of stages from a config into numbered directories, skipping finished ones.

    A stage whose stage.json shows the same settings and input is skipped; one whose
    settings changed re-runs from scratch, and so does every stage after it; one killed
    earlier resumes. Presets to copy: configs/speech-tts.yaml, asmr.yaml, podcast-voice.yaml.

    Example: `audioprep run configs/speech-tts.yaml --workdir corpus/`
    """
    from audioprep.chain import load_chain, run_chain
    from audioprep.errors import AudioprepError

    try:
        chain = load_chain(config)
        target = workdir or chain.workdir
        if target is None:
            raise typer.BadParameter("give --workdir (or `workdir:` in the config)")
        result = run_chain(
            chain,
            target,
            stop_on_failure=stop_on_failure,
            dry_run=dry_run,
            progress=False if quiet else None,
            echo=lambda line: typer.echo(line, err=True),
        )
    except AudioprepError as exc:
        _fail("run", exc)
    except KeyboardInterrupt:
        typer.echo("audioprep run: interrupted; run the same command again to resume.", err=True)
        raise typer.Exit(130) from None
    if result.last_dir is not None and not dry_run:
        typer.echo(f"run: done; the result is in {result.last_dir}", err=True)
    raise typer.Exit(result.exit_code)


@app.command()
def makefile(
    config: Annotated[Path, typer.Argument(help="Chain config (YAML).", show_default=False)],
    workdir: Annotated[str, typer.Option(help="Default work folder (make W=... overrides).")] = (
        "corpus"
    ),
) -> None:
    """Print a Makefile that runs a chain config, one stage.json target per stage.

    Example: `audioprep makefile configs/asmr.yaml > Makefile && make -j2`
    """
    from audioprep.chain import load_chain
    from audioprep.chain import makefile as make_text
    from audioprep.errors import AudioprepError

    try:
        typer.echo(make_text(load_chain(config), workdir))
    except AudioprepError as exc:
        _fail("makefile", exc)


@app.command()
def export(
    in_dir: InDir,
    out: Annotated[Path, typer.Argument(help="Export folder (created).", show_default=False)],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="hf (audiofolder), nemo, ljspeech, csv or spectrogram-captions (imagefolder).",
        ),
    ] = "hf",
    caption: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="spectrogram-captions: caption template over record and source fields "
            '(default "{genre} {genre_keyword}, {title}").'
        ),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Export a manifest directory as a HF audiofolder, a NeMo manifest, LJSpeech or a CSV.

    The audio is hard-linked into OUT beside the metadata, so OUT stands alone.

    Example: `audioprep export corpus/08-speaker-filter hf-corpus/ --format hf`
    """
    from audioprep.errors import AudioprepError
    from audioprep.export import export as do_export

    try:
        stats = do_export(in_dir, out, fmt=format, overwrite=overwrite, caption=caption)
    except AudioprepError as exc:
        _fail("export", exc)
    note = f"; {stats['without_text']} without text" if stats["without_text"] else ""
    typer.echo(
        f"export: {stats['items']} items ({stats['seconds'] / 3600:.3f} h) "
        f"as {format}{note}: {out}",
        err=True,
    )


@app.command(name="tone-train")
def tone_train(
    labelled_dir: Annotated[
        Path,
        typer.Argument(help="Folders named by label (or RAVDESS file names).", show_default=False),
    ],
    model: Annotated[Path, typer.Argument(help="Model file to write.", show_default=False)],
    test_size: Annotated[float, typer.Option(help="Share held out for the accuracy.")] = 0.25,
    seed: Annotated[int, typer.Option(help="Random seed of the split and the MLP.")] = 0,
) -> None:
    """Train a tone classifier (scikit-learn MLP on tone vectors) for `audioprep tone --model`.

    Example: `audioprep tone-train labelled/ angry-neutral.tone.npz` (labelled/angry/*.wav, ...)
    """
    from audioprep.engines.tone import train_tone_model
    from audioprep.errors import AudioprepError

    try:
        result = train_tone_model(labelled_dir, model, test_size=test_size, seed=seed)
    except AudioprepError as exc:
        _fail("tone-train", exc)
    typer.echo(
        f"tone-train: {result['train']} training and {result['test']} held-out files, labels "
        f"{', '.join(result['labels'])}: held-out accuracy {result['accuracy']:.3f}; {model}",
        err=True,
    )


@app.command()
def report(
    in_dir: InDir,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="HTML file to write (default: IN_DIR/report.html; JSON beside it)."),
    ] = None,
    samples: Annotated[int, typer.Option(help="Clips shown with a player.", min=0)] = 6,
) -> None:
    """Write a self-contained HTML report (and its numbers as JSON) of a manifest directory.

    Hours per label and source, durations, rates and channels, rejected and failed items
    with their reasons, speaker similarity, and a few clips with spectrograms and players.

    Example: `audioprep report corpus/06-slice && xdg-open corpus/06-slice/report.html`
    """
    from audioprep.errors import AudioprepError
    from audioprep.report import write_report

    try:
        html_path, json_path, summary = write_report(
            in_dir,
            html_path=out,
            json_path=out.with_suffix(".json") if out else None,
            samples=samples,
        )
    except AudioprepError as exc:
        _fail("report", exc)
    typer.echo(f"report: {summary['items']} items, {summary['hours']:.3f} h: {html_path}", err=True)


@app.command()
def info(
    in_dir: InDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
) -> None:
    """Print a summary of a manifest directory: items, hours, labels, sources, rejects.

    Example: `audioprep info corpus/06-slice`
    """
    import json as _json

    from audioprep.errors import AudioprepError
    from audioprep.report import info_table, summarize

    try:
        summary = summarize(in_dir)
    except AudioprepError as exc:
        _fail("info", exc)
    typer.echo(_json.dumps(summary, indent=2) if as_json else info_table(summary))


if __name__ == "__main__":  # pragma: no cover
    app()
