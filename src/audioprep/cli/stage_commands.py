"""The stage commands of the CLI, generated from each stage's Params (its one schema).

``audioprep STAGE`` takes IN_DIR OUT_DIR (a source stage: its positional arguments, then
OUT_DIR), one option per Params field, and the common options of
:class:`~audioprep.run.options.RunOptions` declared once. Nothing here is written per stage.

>>> ctx = stage_command("convert").make_context("convert", ["raw", "wav", "--sample-rate", "16000"])
>>> call = build_call(registry.load("convert"), dict(ctx.params))
>>> call.stage.name, call.stage.params.sample_rate, call.in_dir.name
('convert', 16000, 'raw')
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand

from audioprep.core import params as schema
from audioprep.core import registry
from audioprep.core.stage import StageCall
from audioprep.errors import AudioprepError, UsageError
from audioprep.run.options import RunOptions

IN_DIR_HELP = "Input manifest directory."
OUT_DIR_HELP = "Output manifest directory (created)."
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
MARKUP = "markdown"


def command_help(stage_cls: type) -> str:
    """The command's help: the module docstring's first line, then the class docstring."""
    name = stage_cls.name
    short = registry.info(name).short_help if name in registry.available() else ""
    body = inspect.cleandoc(stage_cls.__doc__ or "") if "__doc__" in vars(stage_cls) else ""
    return "\n\n".join(x for x in (short, body) if x)


def _option_annotation(f: schema.Field) -> tuple[Any, Any]:
    """(annotation, default) of a field's typer parameter."""
    if f.parse is not None:
        return str, (f.render(f.default) if f.render else str(f.default))
    if f.many and (f.repeatable or f.positional):
        return Optional[list[f.base]], None  # noqa: UP045 - typer needs Optional
    if f.many:
        return str, ",".join(schema.text(f, v) for v in f.default)
    if f.optional or (f.path and f.default == ""):  # an empty path: no value
        return Optional[f.base], None if f.default == "" else f.default  # noqa: UP045
    return f.base, f.default


def _typer_param(f: schema.Field) -> inspect.Parameter:
    annotation, default = _option_annotation(f)
    extra: dict[str, Any] = {}
    if f.min is not None:
        extra["min"] = f.min
    if f.max is not None:
        extra["max"] = f.max
    if f.metavar:
        extra["metavar"] = f.metavar
    if f.positional:
        info = typer.Argument(help=f.help, show_default=False, **extra)
    else:
        decls = list(f.flags)
        if f.is_flag and f.off_flag:
            decls[0] = f"{f.flags[0]}/{f.off_flag}"
        if f.is_flag and f.default is None:
            extra["show_default"] = False
        info = typer.Option(*decls, help=f.help, **extra)
    return inspect.Parameter(
        f.name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[annotation, info],
        default=default,
    )


def _dir_param(name: str, help_text: str) -> inspect.Parameter:
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[Path, typer.Argument(help=help_text, show_default=False)],
    )


def build_call(stage_cls: type, values: dict[str, Any]) -> StageCall:
    """The stage and options a generated command's parsed values give (nothing runs)."""
    values = dict(values)
    run_names = [f.name for f in schema.fields(RunOptions)]
    run = schema.from_cli(RunOptions, {k: values.pop(k) for k in run_names if k in values})
    in_dir = values.pop("in_dir", None)
    out_dir = values.pop("out_dir")
    params = schema.from_cli(stage_cls.Params, values, stage=stage_cls.name)
    return StageCall(stage_cls(params), Path(out_dir), Path(in_dir) if in_dir else None, run)


def execute(call: StageCall) -> None:
    """Run a parsed stage command; exit with the run's status (see ``audioprep --help``)."""
    from audioprep.run.runner import run_stage

    name = call.stage.name
    try:
        summary = run_stage(
            call.stage, call.out_dir, in_dir=call.in_dir, **call.run.runner_kwargs()
        )
    except AudioprepError as exc:
        typer.echo(f"audioprep {name}: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo(
            f"audioprep {name}: interrupted; run the same command again to resume.", err=True
        )
        raise typer.Exit(130) from None
    typer.echo(summary.line(), err=True)
    raise typer.Exit(summary.exit_code)


def _callback(stage_cls: type) -> Any:
    from audioprep.core.stage import kind_of

    fields = schema.fields(stage_cls.Params)
    run_fields = schema.fields(RunOptions)
    taken = {f.name for f in run_fields} | {"in_dir", "out_dir"}
    clash = taken & {f.name for f in fields}
    if clash:
        raise TypeError(f"{stage_cls.__name__}.Params may not name a field {sorted(clash)}")
    params: list[inspect.Parameter] = []
    if kind_of(stage_cls) == "source":
        params += [_typer_param(f) for f in fields if f.positional]
    else:
        params.append(_dir_param("in_dir", IN_DIR_HELP))
    params.append(_dir_param("out_dir", OUT_DIR_HELP))
    params += [_typer_param(f) for f in fields if not f.positional]
    params += [_typer_param(f) for f in run_fields]

    def callback(**values: Any) -> None:
        try:
            call = build_call(stage_cls, values)
        except UsageError as exc:
            message = str(exc)
            if not message.startswith("audioprep "):
                message = f"audioprep {stage_cls.name}: error: {message}"
            typer.echo(message, err=True)
            raise typer.Exit(exc.exit_code) from None
        execute(call)

    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__annotations__ = {p.name: p.annotation for p in params}
    callback.__name__ = stage_cls.name.replace("-", "_")
    return callback


#: Terminals narrower than this get the compact help layout (below).
WIDE_HELP = 120


class StageCommand(TyperCommand):
    """A stage command whose ``--help`` reads in a narrow terminal.

    Rich's option table splits its width over five columns (names, negative names, type,
    range, help); with 25 options in 80 columns the help column is left ~18 characters and
    wraps at three words a line. Below :data:`WIDE_HELP` columns the help is click's plain
    two-column layout instead: each option's help on the rest of its line, or on the next
    lines (indented) where the option's name is long.
    """

    def format_help(self, ctx: Any, formatter: Any) -> None:
        import shutil

        if shutil.get_terminal_size().columns >= WIDE_HELP:
            return super().format_help(ctx, formatter)
        mode, self.rich_markup_mode = self.rich_markup_mode, None
        try:
            return super().format_help(ctx, formatter)
        finally:
            self.rich_markup_mode = mode


def _single(name: str, callback: Any, help_text: str) -> Any:
    sub = typer.Typer(
        add_completion=False, rich_markup_mode=MARKUP, context_settings=CONTEXT_SETTINGS
    )
    sub.command(name=name, help=help_text, cls=StageCommand)(callback)
    cmd = typer.main.get_command(sub)
    cmd.name = name
    return cmd


@functools.cache
def stage_command(name: str) -> Any:
    """The (click) command of stage ``name``, generated from its Params."""
    stage_cls = registry.load(name)
    return _single(name, _callback(stage_cls), command_help(stage_cls))


@functools.cache
def stage_stub(name: str) -> Any:
    """A stand-in for the listing of ``audioprep --help``: name and one line, nothing imported."""

    def stub() -> None:  # pragma: no cover - never invoked
        raise AssertionError("a listing stub was run")

    return _single(name, stub, registry.info(name).short_help)
