"""``audioprep run CONFIG --estimate N``: run N sampled items through the chain and project.

The N items are spread evenly over the chain's input manifest (``input:``, or the output of
a first ``ingest`` step, which is run whole: it only probes files). They go through every
remaining stage, with the chain's own options and executor, into a scratch work folder. For
each stage the projection scales what the sample did by the ratio of the input's audio
duration to the sample's:

- hours kept (the stage's output audio),
- wall time (the sample's wall time, set-up included, so short samples over-estimate),
- disk (the bytes the stage wrote under ``audio/``).

A chain that starts with ``crawl`` has no input to sample before downloading: crawl first,
then estimate the rest with ``input:`` set to the crawl's directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audioprep.core.stage import link_or_copy
from audioprep.errors import UsageError
from audioprep.manifests.records import MANIFEST, dumps, resolve_audio


@dataclasses.dataclass
class StageEstimate:
    """One stage of the projection (sample figures and projected ones)."""

    name: str
    sample_hours_in: float
    sample_hours_out: float
    sample_wall_s: float
    sample_bytes: int
    hours_kept: float
    wall_s: float
    disk_bytes: int


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sample_manifest(src: Path, dest: Path, n: int) -> tuple[float, float, int]:
    """Write ``n`` records spread evenly over ``src``'s manifest into ``dest`` (audio linked).

    Only valid records whose audio is a file inside ``src`` are sampled (an absolute, missing
    or escaping ``audio`` is left out); each sampled file is linked into ``dest/audio/`` under
    a name of the sample's own (``audio/000003.wav``), never the record's path, so nothing of
    ``src`` (its manifest, say) can be reached through the sample. Returns (input seconds,
    sample seconds, input item count).
    """
    from audioprep.manifests.records import iter_checked

    records = [
        r
        for _, r, _ in iter_checked(src)
        if r is not None and resolve_audio(src, r["audio"]).is_file()
    ]
    if not records:
        raise UsageError(f"{src} has no items with audio to sample")
    total = sum(float(r.get("duration") or 0.0) for r in records)
    n = max(1, min(n, len(records)))
    picked = [records[(i * len(records)) // n] for i in range(n)]
    (dest / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for number, r in enumerate(picked):
        source = resolve_audio(src, r["audio"])
        ext = source.suffix.lower() if _SAFE_EXT.match(source.suffix.lower()) else ".media"
        name = f"audio/{number:06d}{ext}"
        link_or_copy(source, dest / name)  # a symlink would point outside the sample's folder
        rows.append({**r, "audio": name})
    manifest = dest / MANIFEST
    manifest.unlink(missing_ok=True)  # written afresh, never through a link
    manifest.write_text("".join(dumps(r) + "\n" for r in rows), encoding="utf-8")
    return total, sum(float(r.get("duration") or 0.0) for r in picked), len(records)


#: Scratch folders of estimates, in the temporary folder: ``audioprep-estimate-PID-XXXX``.
SCRATCH_PREFIX = "audioprep-estimate-"
_SAFE_EXT = re.compile(r"^\.[a-z0-9]{1,5}$")


def _scratch() -> Path:
    """A new scratch folder named after this process; the folders of estimates whose process
    is gone (killed with -9, so its ``finally`` never ran) are removed first."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{SCRATCH_PREFIX}*"):
        m = re.fullmatch(rf"{SCRATCH_PREFIX}(\d+)-.*", old.name)
        if not m or not old.is_dir() or old.is_symlink():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (PermissionError, OverflowError):
            pass  # another user's live process
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))


def estimate_chain(
    chain: Any,
    n: int,
    *,
    scratch: Path | None = None,
    echo: Callable[[str], None] = print,
) -> list[StageEstimate]:
    """Run ``n`` sampled items of ``chain`` (a loaded :class:`~audioprep.chains.plan.Chain`) and
    project every stage to the whole input; print a table with ``echo``."""
    from audioprep.chains.plan import build_step
    from audioprep.run.runner import run_stage

    if n < 1:
        raise UsageError("--estimate needs a number of items of at least 1")
    own = scratch is None
    work = _scratch() if own else scratch
    try:
        steps = list(chain.steps)
        in_dir = chain.input.absolute() if chain.input else None
        if in_dir is None:
            first = steps[0]
            if first.command != "ingest":
                raise UsageError(
                    f"--estimate samples the chain's input, and {first.command} has to download "
                    "it first: run that stage, then estimate with `input:` set to its directory"
                )
            call = build_step(
                first,
                in_dir=None,
                out_dir=work / first.dir_name,
                base_dir=chain.base_dir,
                jobs=chain.jobs,
                defaults=chain.run_defaults,
            )
            run_stage(call.stage, call.out_dir, progress=False, jobs=chain.jobs)
            in_dir = call.out_dir
            steps = steps[1:]
        sample = work / "00-sample"
        total_s, sample_s, n_items = sample_manifest(in_dir, sample, n)
        if sample_s <= 0:
            raise UsageError("the sampled items have no duration; convert or ingest them first")
        factor = total_s / sample_s
        echo(
            f"estimate: {min(n, n_items)} of {n_items} items ({sample_s / 3600:.3f} h of "
            f"{total_s / 3600:.2f} h); figures scaled by {factor:.1f}"
        )
        rows: list[StageEstimate] = []
        prev = sample
        for step in steps:
            call = build_step(
                step,
                in_dir=prev,
                out_dir=work / step.dir_name,
                base_dir=chain.base_dir,
                jobs=chain.jobs,
                defaults=chain.run_defaults,
            )
            summary = run_stage(
                call.stage,
                call.out_dir,
                in_dir=prev,
                **{**call.run.runner_kwargs(), "progress": False, "overwrite": True},
            )
            used = _du(call.out_dir / "audio")
            rows.append(
                StageEstimate(
                    name=step.dir_name,
                    sample_hours_in=summary.seconds_in / 3600,
                    sample_hours_out=summary.seconds_out / 3600,
                    sample_wall_s=summary.wall_time_s,
                    sample_bytes=used,
                    hours_kept=summary.seconds_out / 3600 * factor,
                    wall_s=summary.wall_time_s * factor,
                    disk_bytes=int(used * factor),
                )
            )
            prev = call.out_dir
        echo(render(rows))
        return rows
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def render(rows: list[StageEstimate]) -> str:
    """The projection as a table (hours kept, wall time, disk per stage, and the total).

    >>> print(render([StageEstimate("01-convert", 0.1, 0.1, 6.0, 2**20, 10.0, 600.0, 2**30)]))
    stage          hours kept      wall time         disk
    01-convert           10.0         0.17 h      1.0 GB
    total                             0.17 h      1.0 GB
    """
    lines = [f"{'stage':14} {'hours kept':>10} {'wall time':>14} {'disk':>12}"]
    for r in rows:
        lines.append(
            f"{r.name:14} {r.hours_kept:10.1f} {r.wall_s / 3600:12.2f} h "
            f"{r.disk_bytes / 2**30:8.1f} GB"
        )
    wall = sum(r.wall_s for r in rows)
    disk = sum(r.disk_bytes for r in rows)
    lines.append(f"{'total':14} {'':10} {wall / 3600:12.2f} h {disk / 2**30:8.1f} GB")
    return "\n".join(lines)


def as_json(rows: list[StageEstimate]) -> str:
    return json.dumps([dataclasses.asdict(r) for r in rows], indent=2)
