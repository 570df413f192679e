"""``audioprep run CONFIG --estimate N``: run N sampled items through the chain and project.

The N items are spread evenly over the chain's input manifest (``input:``, or the output of
a first ``ingest`` step, which is run whole: it only probes files). They go through every
remaining stage, with the chain's own options and executor, into a scratch work folder. For
each stage the projection scales what the sample did by the ratio of the input's audio
duration to the sample's:

- hours kept (the stage's output audio),
- wall time: the stage's start-up (loading models, starting workers: the sample's wall time
  less its per-item work) counted once, plus the per-item work scaled. An item's work is the
  median of the sample's per-item seconds: the first item of each worker also pays what the
  stage loads lazily (a model on first use, compiled kernels), which is start-up too;
- disk (the bytes the stage wrote under ``audio/``).

Figures are shown in the unit that fits them (s, min, h; KB, MB, GB).

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
    startup_s: float = 0.0  # counted once, not scaled
    work_s: float = 0.0  # the projected per-item work (wall time, workers in parallel)


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
            f"estimate: {min(n, n_items)} of {n_items} items ({span(sample_s)} of "
            f"{span(total_s)}); per-item figures scaled by {factor:.1f}, start-up counted once"
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
            startup, per_item = split_wall_time(
                summary.wall_time_s,
                summary.item_times or [summary.item_seconds / max(1, summary.items_in)],
                jobs=summary.jobs,
                factor=factor,
            )
            rows.append(
                StageEstimate(
                    name=step.dir_name,
                    sample_hours_in=summary.seconds_in / 3600,
                    sample_hours_out=summary.seconds_out / 3600,
                    sample_wall_s=summary.wall_time_s,
                    sample_bytes=used,
                    hours_kept=summary.seconds_out / 3600 * factor,
                    wall_s=startup + per_item,
                    disk_bytes=int(used * factor),
                    startup_s=startup,
                    work_s=per_item,
                )
            )
            prev = call.out_dir
        echo(render(rows))
        return rows
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def split_wall_time(
    wall_s: float, item_times: list[float], *, jobs: int, factor: float
) -> tuple[float, float]:
    """(start-up, projected per-item work) in seconds from one sample run of a stage.

    ``item_times`` are the sample's per-item seconds. A typical item takes their median (the
    first item of each worker also pays lazy loading: start-up, not work); the sample's
    ``len(item_times)`` items ran on ``min(jobs, items)`` workers at once, and what its wall
    time holds beyond that is start-up, paid once however many items follow. The whole
    input is ``factor`` times the sample's items, on ``jobs`` workers.

    >>> split_wall_time(30.0, [2.0, 2.0, 2.0, 9.0], jobs=2, factor=100.0)  # 26 s of loading
    (26.0, 400.0)
    """
    import statistics

    jobs = max(1, jobs)
    items = len(item_times)
    if not items:
        return wall_s, 0.0
    typical = statistics.median(item_times)
    sample_work = min(wall_s, typical * items / min(jobs, items))
    return max(0.0, wall_s - sample_work), typical * items * factor / jobs


def span(seconds: float) -> str:
    """A duration in the unit that fits it.

    >>> span(4.0), span(95.0), span(5400.0), span(36 * 3600.0)
    ('4.0 s', '1.6 min', '1.5 h', '36.0 h')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def size(n: float) -> str:
    """Bytes in the unit that fits them.

    >>> size(0), size(2048), size(3.5 * 2**30)
    ('0 B', '2.0 KB', '3.5 GB')
    """
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def render(rows: list[StageEstimate]) -> str:
    """The projection as a table: audio kept, start-up, per-item work, wall time and disk per
    stage, and the total; columns as wide as their longest entry.

    >>> row = StageEstimate("01-convert", 0.1, 0.1, 6.0, 2**20, 10.0, 600.0, 2**30, 5.0, 595.0)
    >>> print(render([row]))
    stage       audio kept  start-up  per-item  wall time    disk
    01-convert      10.0 h     5.0 s   9.9 min   10.0 min  1.0 GB
    total                      5.0 s   9.9 min   10.0 min  1.0 GB
    """
    head = ("stage", "audio kept", "start-up", "per-item", "wall time", "disk")
    table = [
        (
            r.name,
            span(r.hours_kept * 3600),
            span(r.startup_s),
            span(r.work_s),
            span(r.wall_s),
            size(r.disk_bytes),
        )
        for r in rows
    ]
    total = (
        "total",
        "",
        span(sum(r.startup_s for r in rows)),
        span(sum(r.work_s for r in rows)),
        span(sum(r.wall_s for r in rows)),
        size(sum(r.disk_bytes for r in rows)),
    )
    every = [head, *table, total]
    widths = [max(len(line[i]) for line in every) for i in range(len(head))]
    out = []
    for line in every:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def as_json(rows: list[StageEstimate]) -> str:
    return json.dumps([dataclasses.asdict(r) for r in rows], indent=2)
