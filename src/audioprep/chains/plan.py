"""Chains: a YAML config of stages run in order into numbered directories of one work folder.

A config names its stages and their options with the command line's own option names::

    jobs: 2
    stages:
      - ingest: {sources: [raw/]}
      - convert: {sample-rate: 22050, channels: 1}
      - slice: {labels: speech, min-duration: 1.5, max-duration: 15}

Each stage writes ``WORKDIR/NN-STAGE``. A stage is skipped when its ``stage.json`` shows it
finished with the same parameters and input and nothing before it ran again; it runs afresh
(and so does every stage after it) when its parameters changed; a stage killed earlier is
resumed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from audioprep.chains import config as chain_config
from audioprep.core import params as schema
from audioprep.core import registry
from audioprep.core.stage import StageCall, kind_of
from audioprep.errors import AudioprepError, UsageError, from_os_error
from audioprep.manifests import layout
from audioprep.run.options import RunOptions

#: Options the chain sets itself.
RESERVED = {"overwrite", "quiet", "in_dir", "out_dir"}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclasses.dataclass
class Step:
    """One stage of a chain as the config gives it."""

    index: int
    command: str
    options: dict[str, Any]

    @property
    def dir_name(self) -> str:
        return f"{self.index:02d}-{self.command}"


@dataclasses.dataclass
class Chain:
    """A parsed config: its steps, defaults and where relative paths start."""

    path: Path
    steps: list[Step]
    base_dir: Path
    jobs: int = 0
    #: Other run options given at the top level for every stage (executor, ray-address,
    #: batch-size); a stage's own options win.
    run_defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    stop_on_failure: bool = False
    input: Path | None = None
    workdir: Path | None = None


def _expand_env(value: Any) -> Any:
    """``${VAR}`` and ``${VAR:-default}`` in strings, recursively."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            got = os.environ.get(m[1])
            if got is None:
                if m[2] is None:
                    raise UsageError(f"the config uses ${{{m[1]}}}, which is not set")
                return m[2]
            return got

        return _ENV.sub(sub, value)
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    return value


def load_chain(path: str | os.PathLike[str]) -> Chain:
    """Read and check a chain config (YAML); raise UsageError naming what is wrong."""
    path = Path(path)
    data = chain_config.load_yaml(path)  # bounded aliases, UTF-8 only
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
        raise UsageError(f"{path}: a config needs a `stages:` list")
    known = {"stages", "stop_on_failure", "input", "workdir", "name", "description"}
    known |= {k for k in RunOptions.CHAIN_DEFAULTS} | {
        k.replace("_", "-") for k in RunOptions.CHAIN_DEFAULTS
    }
    unknown = set(data) - known
    if unknown:
        raise UsageError(
            f"{path}: unknown top-level keys {sorted(unknown)} (known: {sorted(known)})"
        )
    data = _expand_env(data)
    chain_config.check_options(
        {k: data.get(k) for k in ("input", "workdir")}, str(path), positional=None
    )
    base = path.absolute().parent
    steps = []
    for i, raw in enumerate(data["stages"], start=1):
        if isinstance(raw, str):
            command, options = raw, {}
        elif isinstance(raw, dict) and "stage" in raw:
            command, options = raw["stage"], {k: v for k, v in raw.items() if k != "stage"}
        elif isinstance(raw, dict) and len(raw) == 1:
            ((command, options),) = raw.items()
            options = options or {}
        else:
            raise UsageError(f"{path}: stage {i} must be `- NAME: {{options}}`, not {raw!r}")
        if not isinstance(options, dict):
            raise UsageError(f"{path}: the options of stage {i} ({command}) must be a mapping")
        chain_config.check_options(
            {str(k).replace("-", "_"): v for k, v in options.items()},
            f"{path}: stage {i} ({command})",
            positional=_positional_keys(str(command)),
        )
        steps.append(
            Step(i, str(command), {str(k).replace("-", "_"): v for k, v in options.items()})
        )
    if not steps:
        raise UsageError(f"{path}: `stages:` is empty")
    chain = Chain(
        path=path.absolute(),
        steps=steps,
        base_dir=base,
        jobs=chain_config.as_jobs(data.get("jobs"), f"{path}: jobs"),
        run_defaults={
            k.replace("-", "_"): v
            for k, v in data.items()
            if k.replace("-", "_") in RunOptions.CHAIN_DEFAULTS and k != "jobs"
        },
        stop_on_failure=chain_config.as_bool(
            data.get("stop_on_failure", False), f"{path}: stop_on_failure"
        ),
        input=(base / str(data["input"])) if data.get("input") else None,
        workdir=(base / str(data["workdir"])) if data.get("workdir") else None,
    )
    return chain


def _positional_keys(command: str) -> frozenset[str]:
    """The config keys of a stage's positional arguments (crawl's urls, ingest's sources)."""
    try:
        return frozenset(
            f.name for f in schema.fields(registry.load(command).Params) if f.positional
        )
    except (AudioprepError, ImportError, AttributeError):  # an unknown stage: named later
        return frozenset()


def build_step(
    step: Step,
    *,
    in_dir: Path | None,
    out_dir: Path,
    base_dir: Path,
    jobs: int = 0,
    defaults: dict[str, Any] | None = None,
) -> StageCall:
    """The stage, directories and run options of one config step, checked as the command
    line checks them (the stage's Params schema), without going through the CLI."""
    info = registry.info(step.command)
    where = f"stage {step.index} (audioprep {step.command})"
    options = {k.replace("-", "_"): v for k, v in step.options.items()}
    bad = (RESERVED | RunOptions.CHAIN_RESERVED) & set(options)
    if bad:
        raise UsageError(f"{where}: {sorted(bad)} are set by `audioprep run`, not the config")
    stage_cls = registry.load(info.name)
    run_keys = {f.name for f in schema.fields(RunOptions)}
    run_values = {k: options.pop(k) for k in list(options) if k in run_keys}
    run_values.setdefault("jobs", jobs)
    for key, value in (defaults or {}).items():
        run_values.setdefault(key, value)
    try:
        params = schema.from_mapping(stage_cls.Params, options, base_dir=base_dir)
        run = schema.from_mapping(RunOptions, run_values)
    except UsageError as exc:
        message = str(exc)
        if message.startswith("no option"):
            valid = [f.key for f in schema.fields(stage_cls.Params)]
            reserved = RunOptions.CHAIN_RESERVED
            valid += [f.key for f in schema.fields(RunOptions) if f.name not in reserved]
            message = message.split(" (options:")[0] + f" (options: {', '.join(valid)})"
        raise UsageError(f"{where}: {message}") from None
    if kind_of(stage_cls) == "source":
        in_dir = None
    elif in_dir is None:
        raise UsageError(
            f"{where} needs an input: start the chain with crawl or ingest, or set `input:`"
        )
    return StageCall(stage_cls(params), out_dir, in_dir, run)


def call_argv(call: StageCall) -> list[str]:
    """The command line (without ``audioprep``) that runs ``call``: Params -> argv."""
    stage = call.stage
    argv = [stage.name, *schema.to_argv(stage.params)]
    positional = [f for f in schema.fields(type(stage.params)) if f.positional]
    n_pos = sum(len(getattr(stage.params, f.name) or ()) for f in positional)
    head, options = argv[: 1 + n_pos], argv[1 + n_pos :]
    dirs = [str(call.in_dir)] if call.in_dir is not None else []
    run = schema.to_argv(call.run)
    return [*head, *dirs, str(call.out_dir), *options, *run]


@dataclasses.dataclass
class Planned:
    """What ``audioprep run`` will do with one step, and why."""

    step: Step
    argv: list[str]
    call: StageCall
    out_dir: Path
    action: str  # "skip" | "run" | "resume" | "rerun"
    why: str


def plan(chain: Chain, workdir: Path) -> list[Planned]:
    """Decide, stage by stage, what a run into ``workdir`` has to do."""
    planned: list[Planned] = []
    upstream_ran = False
    upstream_finished = ""
    chain_config.check_input_dir(
        chain.input, [workdir.absolute() / step.dir_name for step in chain.steps]
    )
    for step, argv, call, out in _commands(chain, workdir.absolute(), jobs=chain.jobs):
        identity = layout.identity(call.stage, call.in_dir.resolve() if call.in_dir else None)
        done = layout.stage_info(out)
        started = layout.run_identity(out)
        if done is not None:
            same = {k: done.get(k) for k in identity} == identity
            if upstream_ran:
                action, why = "rerun", "an earlier stage ran again"
            elif not same:
                changed = "; ".join(layout.identity_changes(done, identity)) or "unknown"
                action, why = "rerun", f"settings changed ({changed})"
            elif upstream_finished and upstream_finished > str(done.get("started_at", "")):
                action, why = "rerun", "its input was rewritten since it ran"
            else:
                action, why = "skip", "finished with the same settings and input"
        elif started is not None:
            if started == identity and not upstream_ran:
                action, why = "resume", "an earlier run of it did not finish"
            else:
                action, why = "rerun", "an unfinished earlier run had other settings or input"
        else:
            action, why = "run", "not run yet"
        planned.append(Planned(step, argv, call, out, action, why))
        if action != "skip":
            upstream_ran = True
        upstream_finished = str((done or {}).get("finished_at", "")) if action == "skip" else ""
    return planned


@dataclasses.dataclass
class ChainResult:
    """What a chain run did: one line per stage, and the exit status."""

    lines: list[str]
    exit_code: int
    last_dir: Path | None


def run_chain(
    chain: Chain,
    workdir: Path,
    *,
    stop_on_failure: bool | None = None,
    dry_run: bool = False,
    progress: bool | None = None,
    echo: Callable[[str], None] = print,
) -> ChainResult:
    """Run (or with ``dry_run`` only plan) ``chain`` into ``workdir``."""
    from audioprep.run.runner import run_stage

    stop = chain.stop_on_failure if stop_on_failure is None else stop_on_failure
    steps = plan(chain, workdir)
    check_stages(steps)
    lines: list[str] = []
    exit_code = 0
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only or full disk: one sentence, exit 3
        raise from_os_error(exc, workdir) from None
    _warn_stale(workdir, steps, echo)
    for p in steps:
        head = f"[{p.step.dir_name}] {p.action}: {p.why}"
        if dry_run or p.action == "skip":
            lines.append(head)
            echo(head + ("" if p.action == "skip" else f"\n    audioprep {shlex.join(p.argv)}"))
            continue
        echo(head)
        try:
            options = dataclasses.replace(p.call.run, overwrite=p.action == "rerun")
            summary = run_stage(
                p.call.stage,
                p.out_dir,
                in_dir=p.call.in_dir,
                **{**options.runner_kwargs(), "progress": progress},
            )
        except AudioprepError as exc:
            echo(f"[{p.step.dir_name}] stopped: {exc}")
            lines.append(f"{head}; stopped: {exc}")
            return ChainResult(lines, exc.exit_code, p.out_dir)
        echo("    " + summary.line())
        lines.append(f"{head}; {summary.line()}")
        if summary.exit_code:
            exit_code = summary.exit_code
            if stop:
                echo(f"[{p.step.dir_name}] some items failed and stop_on_failure is set: stopping")
                return ChainResult(lines, exit_code, p.out_dir)
    return ChainResult(lines, exit_code, steps[-1].out_dir if steps else None)


def check_stages(steps: list[Planned]) -> None:
    """Each stage's own checks (option combinations, models, tools), as its run makes them,
    before anything runs: a dry run refuses what the run would, and a run refuses a bad stage
    3 before stage 1 starts. UsageError names the stage."""
    for p in steps:
        try:
            p.call.stage.check()
        except UsageError as exc:
            raise UsageError(f"stage {p.step.index} (audioprep {p.step.command}): {exc}") from None


def _warn_stale(workdir: Path, steps: list[Planned], echo: Callable[[str], None]) -> None:
    names = {p.step.dir_name for p in steps}
    for path in sorted(workdir.iterdir()):
        if re.match(r"^\d\d-", path.name) and path.name not in names and path.is_dir():
            echo(f"note: {path} is not a stage of this chain (any more); left as it is")


def makefile(chain: Chain, workdir: str = "corpus") -> str:
    """A Makefile that runs ``chain`` with make: one target per stage, its stage.json.

    A stage re-runs when the stage before it did or its command line changed (a stamp per
    stage holds a hash of its command); a target whose stage.json exists is re-run with
    ``--overwrite``, a missing one resumes. Exit status 1 (some items failed, stage.json
    written) does not stop make, as it does not stop ``audioprep run``. make never builds one
    target twice at once, and the runner's lock refuses a second writer into a directory anyway.
    """
    import hashlib

    placeholder = "/__audioprep_workdir__"
    steps = plan_argv(chain, Path(placeholder))
    lines = [
        f"# Made by `audioprep makefile {chain.path.name}`: the chain as make targets.",
        "# `make` runs what is missing or out of date; `make W=other` picks another work folder.",
        "AP ?= audioprep",
        f"W ?= {workdir}",
        "",
        ".PHONY: all FORCE",
        f"all: $(W)/{steps[-1][0].dir_name}/stage.json",
        "FORCE:",
        "",
    ]
    previous = ""
    for step, argv in steps:
        cmd = shlex.join(argv).replace("$", "$$").replace(placeholder, "$(W)")
        digest = hashlib.sha1(cmd.encode()).hexdigest()[:12]
        target = f"$(W)/{step.dir_name}/stage.json"
        stamp = f"$(W)/.make/{step.dir_name}.cmd"
        lines += [
            f"{stamp}: FORCE",
            f"\t@mkdir -p $(@D); echo {digest} | cmp -s - $@ || echo {digest} > $@",
            f"{target}: {stamp}{' ' + previous if previous else ''}",
            f"\t$(AP) {cmd} -q $(if $(wildcard $@),--overwrite) || test $$? -eq 1",
            "",
        ]
        previous = target
    return "\n".join(lines)


def _commands(
    chain: Chain, workdir: Path, *, jobs: int
) -> Iterator[tuple[Step, list[str], StageCall, Path]]:
    """Each step with its command line into ``workdir``, its checked StageCall and its output
    directory; each step reads the directory of the one before."""
    in_dir = chain.input.absolute() if chain.input else None
    for step in chain.steps:
        out = workdir / step.dir_name
        call = build_step(
            step,
            in_dir=in_dir,
            out_dir=out,
            base_dir=chain.base_dir,
            jobs=jobs,
            defaults=chain.run_defaults,
        )
        yield step, call_argv(call), call, out
        in_dir = out


def plan_argv(chain: Chain, workdir: Path) -> list[tuple[Step, list[str]]]:
    """Each step with the command line that runs it in ``workdir`` (checked, not run)."""
    return [(step, argv) for step, argv, _, _ in _commands(chain, workdir, jobs=0)]
