"""The ``audioprep`` command: one generated subcommand per registered stage, plus chains,
exports, reports and the model list. This file only parses options.

Stage commands come from :mod:`audioprep.cli.stage_commands` (generated from each stage's Params);
heavy modules (numpy, soundfile, models) are imported only when a command runs, so
``audioprep --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from audioprep import __version__
from audioprep.core import registry


class StageGroup(TyperGroup):
    """The command group: the registered stages (built when used) and the other commands."""

    _resolving = False

    def list_commands(self, ctx: Any) -> list[str]:
        own = [n for n in super().list_commands(ctx) if n not in registry.available()]
        return [*registry.names(), *own]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in registry.available():
            return cmd
        from audioprep.cli.stage_commands import stage_command, stage_stub

        return stage_command(cmd_name) if self._resolving else stage_stub(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        self._resolving = True
        try:
            return super().resolve_command(ctx, args)
        finally:
            self._resolving = False


app = typer.Typer(
    name="audioprep",
    cls=StageGroup,
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
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Discard what OUT_DIR holds and start afresh.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
ModelDir = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--model-dir",
        help="Model weights folder (default: $AUDIOPREP_MODEL_DIR or ~/.cache/audioprep/models).",
    ),
]


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
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Show the engines' own start-up and log lines (TensorFlow, absl), hidden "
            "by default.",
        ),
    ] = False,
) -> None:
    """Turn raw web audio into clean speech and ASMR training corpora."""
    if verbose:  # read by every worker (spawned workers inherit the environment)
        import os

        from audioprep.run.executors.base import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"


@app.command()
def models(model_dir: ModelDir = None) -> None:
    """List the model files every engine needs, whether each is present, and where it comes from.

    Example: `AUDIOPREP_MODEL_DIR=../shared/models audioprep models`
    """
    from audioprep.engines.models import ENV, known_weights
    from audioprep.engines.models import model_dir as resolve

    directory = resolve(model_dir)
    source = "--model-dir" if model_dir else (ENV if ENV in __import__("os").environ else "default")
    typer.echo(f"model directory: {directory} (from {source})")
    from audioprep.engines import base as engines

    for engine, weights in known_weights():
        dirs = engines.engine_class(engine.family, engine.name).weight_dirs(directory)
        where = next((d for d in dirs if weights.present(d)), None)
        state = "present" if where else "missing"
        used_by = weights.used_by or f"{engine.family} --engine {engine.name}"
        typer.echo(f"  {state:8} {weights.label:38} used by: {used_by}")
        if where is not None and where != directory:
            typer.echo(f"           in {where / weights.path}")
        if where is None:
            typer.echo(f"           get it from {weights.origin}")


@app.command()
def doctor() -> None:
    """Say, per engine, which devices (cpu, cuda) it can use here, and why not.

    Each engine is probed in its own process (TensorFlow, torch, Spleeter's environment);
    `make setup-gpu` installs the CUDA builds. Example: `audioprep doctor`
    """
    from audioprep.cli.doctor import main as doctor_main

    raise typer.Exit(doctor_main())


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
    executor: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="local or ray, for every stage (default: the config's, else local)."),
    ] = None,
    ray_address: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="With --executor ray: the cluster's HOST:PORT (default $AUDIOPREP_RAY_ADDRESS).",
            metavar="HOST:PORT",
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="Items per worker call, for every stage (default: the config's).", min=1),
    ] = None,
    estimate: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            help="Run N sampled items through the chain (in a scratch folder) and project, per "
            "stage, the hours kept, the wall time and the disk for the whole input.",
            min=1,
            metavar="N",
        ),
    ] = None,
) -> None:
    """Run a chain of stages from a config into numbered directories, skipping finished ones.

    A stage whose stage.json shows the same settings and input is skipped; one whose
    settings changed re-runs from scratch, and so does every stage after it; one killed
    earlier resumes. Presets to copy: configs/speech-tts.yaml, asmr.yaml, podcast-voice.yaml.

    Example: `audioprep run configs/speech-tts.yaml --workdir corpus/`
    """
    from audioprep.chains.plan import load_chain, run_chain
    from audioprep.errors import AudioprepError

    try:
        chain = load_chain(config)
        given = {"executor": executor, "ray_address": ray_address, "batch_size": batch_size}
        chain.run_defaults.update({k: v for k, v in given.items() if v is not None})
        if estimate is not None:
            from audioprep.chains.estimate import estimate_chain

            estimate_chain(chain, estimate, echo=lambda line: typer.echo(line))
            raise typer.Exit(0)
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
    if result.last_dir is not None and not dry_run and result.exit_code in (0, 1):
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
    from audioprep.chains.plan import load_chain
    from audioprep.chains.plan import makefile as make_text
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
            help="hf (audiofolder), nemo, ljspeech, csv, spectrogram-captions (imagefolder), "
            "lhotse, webdataset or vctk (wav/<speaker>/).",
        ),
    ] = "hf",
    caption: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="spectrogram-captions: caption template over record and source fields "
            '(default "{genre} {genre_keyword}, {title}").'
        ),
    ] = None,
    shard_size: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--shard-size",
            help="webdataset: items per tar shard (default 1000).",
            show_default=False,
        ),
    ] = None,
    split_by: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="hf, lhotse: OUT/train, dev, test; speaker: each speaker's clips in one "
            "split; within-speaker: each speaker's clips split by --split-ratio."
        ),
    ] = None,
    split_ratio: Annotated[
        str, typer.Option(help="With --split-by: train,dev,test shares.")
    ] = "0.8,0.1,0.1",
    overwrite: Overwrite = False,
) -> None:
    """Export a manifest directory as a HF audiofolder, a NeMo manifest, LJSpeech or a CSV.

    The audio is hard-linked into OUT beside the metadata, so OUT stands alone.

    Example: `audioprep export corpus/08-speaker-filter hf-corpus/ --format hf`
    """
    from audioprep.errors import AudioprepError
    from audioprep.exports import export as do_export

    try:
        stats = do_export(
            in_dir,
            out,
            fmt=format,
            overwrite=overwrite,
            caption=caption,
            shard_size=shard_size,
            split_by=split_by,
            split_ratio=split_ratio,
        )
    except AudioprepError as exc:
        _fail("export", exc)
    note = f"; {stats['without_text']} without text" if stats["without_text"] else ""
    if stats.get("skipped"):
        note += f"; {stats['skipped']} skipped (see {out / 'export-errors.jsonl'})"
    typer.echo(
        f"export: {stats['items']} items ({stats['seconds'] / 3600:.3f} h) "
        f"as {format}{note}: {out}",
        err=True,
    )
    raise typer.Exit(stats.get("exit_code", 0))


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
    from audioprep.engines.tone.model import train_tone_model
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
    from audioprep.reports.html import write_report

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
    from audioprep.reports.html import info_table, summarize

    try:
        summary = summarize(in_dir)
    except AudioprepError as exc:
        _fail("info", exc)
    typer.echo(_json.dumps(summary, indent=2) if as_json else info_table(summary))


if __name__ == "__main__":  # pragma: no cover
    app()
