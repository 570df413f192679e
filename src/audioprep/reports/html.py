"""Summaries of a manifest directory: numbers (JSON), a terminal table, a self-contained HTML page.

:func:`summarize` streams the manifest once and returns plain numbers; :func:`write_report`
adds spectrogram thumbnails and short audio players for a few clips and writes one HTML file
with everything inlined (no network, no external files).
"""

from __future__ import annotations

import base64
import collections
import html
import io
import json
import re
import statistics
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audioprep.errors import AudioprepError, from_os_error
from audioprep.manifests.layout import (
    ERRORS,
    MANIFEST,
    REJECTED,
    REPORT_FILE,
    REPORT_JSON,
    STAGE_FILE,
)
from audioprep.manifests.records import iter_checked, iter_raw, resolve_audio

HIST_BINS = 20
SAMPLE_SECONDS = 10.0


def source_key(record: dict[str, Any]) -> str:
    """Which source an item counts under: its author, playlist, host or folder.

    >>> source_key({"source": {"url": "https://feeds.example.org/x.xml"}})
    'feeds.example.org'
    >>> source_key({"source": {"path": "/data/talks/a.mp3"}})
    'talks'
    """
    source = record.get("source")
    if not isinstance(source, dict):  # a hand-made record may hold anything there
        return str(source)[:80] if isinstance(source, str) and source else "unknown"
    for key in ("author", "playlist"):
        if source.get(key):
            return str(source[key])
    if source.get("url") and "://" in str(source["url"]):
        return urllib.parse.urlparse(str(source["url"])).netloc or str(source["url"])
    if source.get("path"):
        return Path(str(source["path"])).parent.name or "/"
    return "unknown"


def _reason_key(reason: str) -> str:
    """Group reasons that differ only in their numbers or quoted names."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    text = re.sub(r"\d+(?:\.\d+)?", "N", text)
    return text[:160]


def _reasons(path: Path) -> dict[str, Any]:
    counts: collections.Counter[str] = collections.Counter()
    scores: list[float] = []
    if path.is_file():
        for _lineno, entry, _problem in iter_raw(path):  # never raises on bad content
            if entry is None:
                counts["(unreadable line)"] += 1
                continue
            counts[_reason_key(str(entry.get("reason", "")))] += 1
            similarity = entry.get("speaker_similarity")
            if isinstance(similarity, int | float) and not isinstance(similarity, bool):
                scores.append(float(similarity))
    return {
        "count": sum(counts.values()),
        "reasons": [{"reason": r, "count": n} for r, n in counts.most_common(20)],
        "scores": scores,
    }


def histogram(
    values: Iterable[float], *, bins: int = HIST_BINS, span: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Equal-width bins over the values' range (or ``span``).

    >>> histogram([0, 1, 2, 3], bins=2)
    {'edges': [0.0, 1.5, 3.0], 'counts': [2, 2]}
    """
    values = list(values)
    if not values and span is None:
        return {"edges": [], "counts": []}
    lo, hi = span if span is not None else (min(values), max(values))
    if hi == lo:
        hi = lo + 1.0
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    return {"edges": [round(lo + i * width, 6) for i in range(bins + 1)], "counts": counts}


def summarize(in_dir: str | Path) -> dict[str, Any]:
    """The numbers of a manifest directory (JSON-able), streaming its manifest once."""
    in_dir = Path(in_dir)
    durations: list[float] = []
    labels: collections.Counter[str] = collections.Counter()
    sources: collections.Counter[str] = collections.Counter()
    source_items: collections.Counter[str] = collections.Counter()
    rates: collections.Counter[int] = collections.Counter()
    channels: collections.Counter[int] = collections.Counter()
    similarity: list[float] = []
    ids: list[str] = []
    invalid: list[str] = []
    for _lineno, record, problem in iter_checked(in_dir):  # bad records are counted, not fatal
        if record is None:
            invalid.append(problem)
            continue
        d = float(record["duration"])
        durations.append(d)
        ids.append(record["id"])
        if isinstance(record.get("label_seconds"), dict):
            for label, secs in record["label_seconds"].items():
                if isinstance(secs, int | float) and not isinstance(secs, bool):
                    labels[str(label)] += float(secs)
        elif record.get("label"):
            labels[str(record["label"])] += d
        key = source_key(record)
        sources[key] += d
        source_items[key] += 1
        rates[record["sample_rate"]] += 1
        channels[record["channels"]] += 1
        if isinstance(record.get("speaker_similarity"), (int, float)):
            similarity.append(float(record["speaker_similarity"]))
    stage = _read_json(in_dir / STAGE_FILE) or {}
    decision = _read_json(in_dir / "decision.json") or {}
    rejected = _reasons(in_dir / REJECTED)
    total = sum(durations)
    return {
        "directory": str(in_dir.absolute()),
        "stage": {
            k: stage.get(k)
            for k in ("stage", "version", "params", "input", "finished_at", "wall_time_s", "tools")
        },
        "items": len(durations),
        "hours": round(total / 3600, 6),
        "duration": {
            "min": round(min(durations), 3) if durations else None,
            "median": round(statistics.median(durations), 3) if durations else None,
            "mean": round(total / len(durations), 3) if durations else None,
            "max": round(max(durations), 3) if durations else None,
            "histogram": histogram(durations),
        },
        "hours_per_label": {k: round(v / 3600, 6) for k, v in labels.most_common()},
        "hours_per_source": {k: round(v / 3600, 6) for k, v in sources.most_common(25)},
        "items_per_source": dict(source_items.most_common(25)),
        "sources": len(sources),
        "sample_rates": {str(k): v for k, v in sorted(rates.items())},
        "channels": {str(k): v for k, v in sorted(channels.items())},
        "rejected": {k: v for k, v in rejected.items() if k != "scores"},
        "failed": {k: v for k, v in _reasons(in_dir / ERRORS).items() if k != "scores"},
        "speaker_similarity": _similarity(similarity, rejected["scores"], decision),
        "sample_ids": _pick(ids, 6),
        "invalid_records": {"count": len(invalid), "first": invalid[:5]},
    }


def _similarity(
    kept: list[float], rejected: list[float], decision: dict[str, Any]
) -> dict[str, Any] | None:
    """Kept and rejected scores on one axis, with the threshold."""
    every = kept + rejected
    if not every:
        return None
    threshold = decision.get("threshold")
    lo = min(every + ([threshold] if threshold is not None else []))
    hi = max(every + ([threshold] if threshold is not None else []))
    return {
        "kept": histogram(kept, span=(lo, hi)),
        "rejected": histogram(rejected, span=(lo, hi)),
        "threshold": threshold,
    }


def _pick(ids: list[str], n: int) -> list[str]:
    """``n`` ids spread evenly through the manifest (first, last and between)."""
    if len(ids) <= n:
        return list(ids)
    step = (len(ids) - 1) / (n - 1)
    return [ids[round(i * step)] for i in range(n)]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# -- terminal ------------------------------------------------------------------------------
def info_table(summary: dict[str, Any]) -> str:
    """The summary as aligned text for the terminal."""
    s = summary
    d = s["duration"]
    lines = [
        f"{s['directory']}",
        f"  stage        {s['stage'].get('stage') or '?'} "
        f"(finished {s['stage'].get('finished_at')})",
        f"  items        {s['items']}   hours {s['hours']:.3f}   sources {s['sources']}",
    ]
    if s["items"]:
        lines.append(
            f"  duration     min {d['min']:.2f} s   median {d['median']:.2f} s   "
            f"mean {d['mean']:.2f} s   max {d['max']:.2f} s"
        )
    lines.append(
        "  sample rate  " + ", ".join(f"{k} Hz: {v}" for k, v in s["sample_rates"].items())
    )
    lines.append("  channels     " + ", ".join(f"{k}: {v}" for k, v in s["channels"].items()))
    for title, table in (
        ("hours/label", s["hours_per_label"]),
        ("hours/source", s["hours_per_source"]),
    ):
        if table:
            lines.append(f"  {title}")
            lines += [f"    {v:10.3f}  {k}" for k, v in list(table.items())[:10]]
    for title in ("rejected", "failed"):
        block = s[title]
        lines.append(f"  {title:12} {block['count']}")
        lines += [f"    {r['count']:6d}  {r['reason']}" for r in block["reasons"][:5]]
    if s.get("invalid_records", {}).get("count"):
        lines.append(f"  invalid      {s['invalid_records']['count']} records left out")
        lines += [f"    {why[:150]}" for why in s["invalid_records"]["first"][:3]]
    sim = s["speaker_similarity"]
    if sim:
        kept = sum(sim["kept"]["counts"])
        lines.append(f"  speaker similarity: {kept} kept, threshold {sim['threshold']}")
    return "\n".join(lines)


# -- HTML ----------------------------------------------------------------------------------
def _svg_bars(labels: list[str], values: list[float], *, unit: str, width: int = 560) -> str:
    if not values:
        return "<p class=empty>none</p>"
    top = max(values) or 1.0
    row = 22
    height = row * len(values) + 4
    parts = [f'<svg class=bars width="{width}" height="{height}" role="img">']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        w = max(1.0, (width - 260) * value / top)
        y = i * row + 2
        parts.append(
            f'<text x="0" y="{y + 15}">{html.escape(label[:32])}</text>'
            f'<rect x="200" y="{y + 3}" width="{w:.1f}" height="{row - 8}"></rect>'
            f'<text x="{205 + w:.1f}" y="{y + 15}">{value:.3g} {unit}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _svg_hist(
    hist: dict[str, Any],
    *,
    unit: str,
    width: int = 560,
    mark: float | None = None,
    under: dict[str, Any] | None = None,
) -> str:
    """An SVG histogram; ``under`` (same edges) is stacked below in grey."""
    counts, edges = hist["counts"], hist["edges"]
    if not counts:
        return "<p class=empty>none</p>"
    below = under["counts"] if under else [0] * len(counts)
    height, pad = 150, 24
    top = max(a + b for a, b in zip(counts, below, strict=True)) or 1
    bw = (width - 2 * pad) / len(counts)
    parts = [f'<svg class=hist width="{width}" height="{height + 30}" role="img">']
    for i, (c, b) in enumerate(zip(counts, below, strict=True)):
        hb = (height - 10) * b / top
        h = (height - 10) * c / top
        span = f"{edges[i]:.3g}–{edges[i + 1]:.3g} {unit}"
        if b:
            parts.append(
                f'<rect class=under x="{pad + i * bw:.1f}" y="{height - hb:.1f}" '
                f'width="{bw - 1:.1f}" height="{hb:.1f}"><title>{span}: {b} rejected</title></rect>'
            )
        if c:
            parts.append(
                f'<rect x="{pad + i * bw:.1f}" y="{height - hb - h:.1f}" width="{bw - 1:.1f}" '
                f'height="{h:.1f}"><title>{span}: {c}</title></rect>'
            )
    parts.append(
        f'<text x="{pad}" y="{height + 18}">{edges[0]:.3g} {unit}</text>'
        f'<text x="{width - pad}" y="{height + 18}" text-anchor="end">{edges[-1]:.3g} {unit}</text>'
    )
    if mark is not None and edges[-1] > edges[0]:
        x = pad + (width - 2 * pad) * (mark - edges[0]) / (edges[-1] - edges[0])
        if pad <= x <= width - pad:
            parts.append(f'<line class=mark x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}"></line>')
    parts.append("</svg>")
    return "".join(parts)


def _sample(in_dir: Path, record: dict[str, Any]) -> tuple[str, str]:
    """A spectrogram PNG and an mp3 of the first seconds of a clip, as data URIs."""
    try:
        import matplotlib
    except ImportError:
        raise AudioprepError(
            "the report's spectrograms need matplotlib: run `pip install 'audioprep[report]'` "
            "(or `make setup`), or pass --samples 0."
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from pydub import AudioSegment

    path = resolve_audio(in_dir, record["audio"])
    seconds = min(SAMPLE_SECONDS, float(record.get("duration") or SAMPLE_SECONDS))
    clip = AudioSegment.from_file(str(path), duration=seconds).set_channels(1)
    samples = np.array(clip.get_array_of_samples(), dtype=np.float32)
    samples /= float(1 << (8 * clip.sample_width - 1))
    fig, ax = plt.subplots(figsize=(3.2, 1.4), dpi=100)
    if samples.size >= 256:
        with np.errstate(divide="ignore"):  # a silent clip: log10(0) is -inf, drawn black
            ax.specgram(samples, NFFT=512, Fs=clip.frame_rate, noverlap=384, cmap="magma")
    ax.set_axis_off()
    fig.subplots_adjust(0, 0, 1, 1)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    mp3 = io.BytesIO()
    clip.export(mp3, format="mp3", bitrate="64k")
    return (
        "data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
        "data:audio/mpeg;base64," + base64.b64encode(mp3.getvalue()).decode(),
    )


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}
h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
.kpis{display:flex;gap:1em;flex-wrap:wrap}
.kpi{background:#f4f6fa;border-radius:8px;padding:.6em 1em}
.kpi b{display:block;font-size:1.4em} table{border-collapse:collapse}
td,th{padding:2px 10px;text-align:left}
tr:nth-child(even){background:#f7f7f7} svg text{font-size:12px;fill:#333} svg rect{fill:#4a78c2}
svg.hist rect:hover{fill:#2a4f8c} svg rect.under{fill:#bbb}
line.mark{stroke:#d33;stroke-width:2} .empty{color:#888}
.samples{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1em}
.sample{border:1px solid #ddd;border-radius:8px;padding:.5em} .sample img{width:100%;display:block}
.sample audio{width:100%;margin-top:.4em} .muted{color:#777;font-size:.9em} code{font-size:.92em}
"""

_SCRIPT = """
(function(){
  var bad = [];
  document.querySelectorAll('img').forEach(function(i){
    if(!i.complete || i.naturalWidth === 0){ bad.push('image ' + i.alt); }
  });
  document.querySelectorAll('audio').forEach(function(a){
    if(!a.getAttribute('src')){ bad.push('audio without source'); }
  });
  if(bad.length){ console.error('report: ' + bad.join(', ')); }
  document.body.setAttribute('data-rendered', bad.length ? 'broken' : 'ok');
})();
"""


def _table(rows: list[tuple[str, str]], head: tuple[str, str]) -> str:
    if not rows:
        return "<p class=empty>none</p>"
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>"


def render_html(
    in_dir: Path, summary: dict[str, Any], samples: list[dict[str, Any]], *, sections: str = ""
) -> str:
    """The report page; ``samples`` are dicts with id, duration, label, png and mp3 data URIs;
    ``sections`` is the stage's own HTML (see :func:`stage_section`)."""
    s = summary
    esc = html.escape
    stage = s["stage"].get("stage") or "?"
    kpis = [
        ("items", f"{s['items']}"),
        ("hours", f"{s['hours']:.3f}"),
        ("sources", f"{s['sources']}"),
        ("rejected", f"{s['rejected']['count']}"),
        ("failed", f"{s['failed']['count']}"),
    ]
    d = s["duration"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>audioprep report: {esc(Path(s['directory']).name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(Path(s['directory']).name)}</h1>",
        f"<p class=muted><code>{esc(s['directory'])}</code> · stage <b>{esc(stage)}</b>"
        f" · finished {esc(str(s['stage'].get('finished_at')))}</p>",
        "<div class=kpis>"
        + "".join(f"<div class=kpi><b>{v}</b>{k}</div>" for k, v in kpis)
        + "</div>",
        "<h2>Durations</h2>",
    ]
    if s["items"]:
        parts.append(
            f"<p>min {d['min']:.2f} s · median {d['median']:.2f} s · mean {d['mean']:.2f} s · "
            f"max {d['max']:.2f} s</p>"
        )
    parts.append(_svg_hist(d["histogram"], unit="s"))
    labels = s["hours_per_label"]
    parts += ["<h2>Hours per label</h2>", _svg_bars(list(labels), list(labels.values()), unit="h")]
    srcs = s["hours_per_source"]
    parts += ["<h2>Hours per source</h2>", _svg_bars(list(srcs), list(srcs.values()), unit="h")]
    parts += [
        "<h2>Sample rates and channels</h2>",
        _table([(f"{k} Hz", str(v)) for k, v in s["sample_rates"].items()], ("rate", "items")),
        "<br>",
        _table([(k, str(v)) for k, v in s["channels"].items()], ("channels", "items")),
    ]
    for title, key in (("Rejected", "rejected"), ("Failed", "failed")):
        block = s[key]
        parts += [
            f"<h2>{title}: {block['count']}</h2>",
            _table([(r["reason"], str(r["count"])) for r in block["reasons"]], ("reason", "items")),
        ]
    invalid = s.get("invalid_records") or {}
    if invalid.get("count"):
        parts += [
            f"<h2>Invalid records left out: {invalid['count']}</h2>",
            _table([(why[:300], "") for why in invalid["first"]], ("first ones", "")),
        ]
    sim = s["speaker_similarity"]
    if sim:
        parts += [
            "<h2>Speaker similarity</h2>",
            f"<p>kept: {sum(sim['kept']['counts'])}, rejected: "
            f"{sum(sim['rejected']['counts'])}, threshold (red line): {sim['threshold']}</p>",
            _svg_hist(sim["kept"], unit="", mark=sim["threshold"], under=sim["rejected"]),
        ]
    parts.append(sections)
    parts.append(f"<h2>Samples ({len(samples)})</h2><div class=samples>")
    for sample in samples:
        parts.append(
            f'<div class=sample><img src="{sample["png"]}" alt="{esc(sample["id"])}">'
            f'<audio controls preload=none src="{sample["mp3"]}"></audio>'
            f"<div class=muted>{esc(sample['id'])} · {sample['duration']:.2f} s"
            f"{' · ' + esc(str(sample['label'])) if sample.get('label') else ''}</div></div>"
        )
    parts.append("</div>")
    parts.append(
        "<h2>Stage</h2><pre>" + esc(json.dumps(s["stage"], indent=2, ensure_ascii=False)) + "</pre>"
    )
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "".join(parts)


def write_report(
    in_dir: str | Path,
    *,
    html_path: Path | None = None,
    json_path: Path | None = None,
    samples: int = 6,
) -> tuple[Path, Path, dict[str, Any]]:
    """Write report.html and report.json (by default into ``in_dir``); return their paths.

    ``in_dir`` is a manifest directory, or a chain's work folder (numbered stage directories,
    as ``audioprep run`` makes): then the page is the funnel of the chain.
    """
    in_dir = Path(in_dir)
    if is_chain_dir(in_dir):
        return write_funnel_report(in_dir, html_path=html_path, json_path=json_path)
    summary = summarize(in_dir)
    wanted = set(_pick(summary["sample_ids"], samples)) if samples else set()
    picked = []
    if wanted:
        for _lineno, record, _problem in iter_checked(in_dir):
            if record is not None and record["id"] in wanted:
                try:
                    png, mp3 = _sample(in_dir, record)
                except AudioprepError:
                    raise
                except Exception:  # noqa: BLE001 - an unreadable clip gets no player, no crash
                    continue
                picked.append(
                    {
                        "id": record["id"],
                        "duration": float(record.get("duration") or 0.0),
                        "label": record.get("label"),
                        "png": png,
                        "mp3": mp3,
                    }
                )
    html_path = html_path or in_dir / REPORT_FILE
    json_path = json_path or in_dir / REPORT_JSON
    sections = stage_section(in_dir, summary["stage"].get("stage"))
    try:  # IN_DIR may be read-only (a shared corpus): one sentence, exit 3
        html_path.write_text(
            render_html(in_dir, summary, picked, sections=sections), encoding="utf-8"
        )
        json_path.write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    except OSError as exc:
        raise from_os_error(exc, html_path.parent) from None
    return html_path, json_path, summary


# -- stage sections ------------------------------------------------------------------------
# A stage adds its own part to the report of its output directory with a classmethod
# ``report_section(out_dir) -> str | None`` (HTML). The helpers below are for those sections.
hist_svg = _svg_hist
table_html = _table
clip_media = _sample
bars_svg = _svg_bars


def stage_class(name: str | None) -> type | None:
    """The Stage class called ``name`` (from the stage registry), or None when there is none."""
    from audioprep.core import registry

    if not name:
        return None
    try:
        return registry.load(name)
    except (AudioprepError, ImportError):
        return None


def stage_section(out_dir: Path, name: str | None) -> str:
    """The HTML a stage adds to the report of its output directory ('' when none). A section
    that fails says so in the page instead of breaking the report."""
    cls = stage_class(name)
    hook = getattr(cls, "report_section", None)
    if hook is None:
        return ""
    try:
        return hook(out_dir) or ""
    except AudioprepError:
        raise
    except Exception as exc:  # noqa: BLE001 - a stage's section must not sink the report
        return (
            f"<h2>{html.escape(str(name))}</h2>"
            f"<p class=empty>section failed: {html.escape(repr(exc))}</p>"
        )


# -- chain funnel --------------------------------------------------------------------------
_STEP = re.compile(r"^\d{2,}-")


def chain_steps(work_dir: Path) -> list[Path]:
    """The numbered stage directories of a chain's work folder, in order."""
    if not work_dir.is_dir():
        return []
    return sorted(p for p in work_dir.iterdir() if p.is_dir() and _STEP.match(p.name))


def is_chain_dir(path: Path) -> bool:
    """A folder with numbered stage directories and no manifest of its own."""
    return not (path / MANIFEST).exists() and bool(chain_steps(path))


def _hours_items(path: Path) -> tuple[int, float]:
    n, seconds = 0, 0.0
    if (path / MANIFEST).exists():
        for _lineno, record, _problem in iter_checked(path):  # bad lines are not counted
            if record is None:
                continue
            n += 1
            seconds += float(record.get("duration") or 0.0)
    return n, seconds / 3600


def _lost(path: Path) -> tuple[int, float, list[dict[str, Any]]]:
    """Items, hours and reasons (grouped, with hours) of a rejected.jsonl or errors.jsonl."""
    counts: collections.Counter[str] = collections.Counter()
    hours: collections.Counter[str] = collections.Counter()
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = {"reason": "(unreadable line)"}
                key = _reason_key(str(entry.get("reason", "")))
                counts[key] += 1
                record = entry.get("record") if isinstance(entry.get("record"), dict) else {}
                duration = entry.get("duration", record.get("duration"))
                if isinstance(duration, (int, float)):
                    hours[key] += float(duration) / 3600
    reasons = [
        {"reason": r, "count": n, "hours": round(hours[r], 6)} for r, n in counts.most_common(12)
    ]
    return sum(counts.values()), round(sum(hours.values()), 6), reasons


def summarize_chain(work_dir: str | Path) -> dict[str, Any]:
    """Items and hours into and out of every stage of a chain, and what each one dropped."""
    work_dir = Path(work_dir)
    steps = []
    prev: tuple[int, float] | None = None
    for step in chain_steps(work_dir):
        stage = _read_json(step / STAGE_FILE) or {}
        items_out, hours_out = _hours_items(step)
        rejected, rejected_h, reasons = _lost(step / REJECTED)
        failed, failed_h, failures = _lost(step / ERRORS)
        if prev is None:  # a source stage: what it was given is what it kept or lost
            items_in, hours_in = items_out + rejected + failed, hours_out + rejected_h + failed_h
        else:
            items_in, hours_in = prev
        steps.append(
            {
                "directory": step.name,
                "stage": stage.get("stage") or step.name.split("-", 1)[-1],
                "finished": bool(stage),
                "items_in": items_in,
                "items_out": items_out,
                "hours_in": round(hours_in, 6),
                "hours_out": round(hours_out, 6),
                "rejected": rejected,
                "rejected_hours": rejected_h,
                "failed": failed,
                "failed_hours": failed_h,
                "reasons": reasons,
                "failures": failures,
                "report": (step / REPORT_FILE).exists(),
            }
        )
        prev = (items_out, hours_out)
    last = steps[-1] if steps else {}
    return {
        "directory": str(work_dir.absolute()),
        "chain": True,
        "steps": steps,
        "items": last.get("items_out", 0),
        "hours": last.get("hours_out", 0.0),
    }


def render_funnel(summary: dict[str, Any], sections: list[tuple[str, str]]) -> str:
    """The funnel page: hours in and out per stage (bars), a table, reasons per stage."""
    esc = html.escape
    steps = summary["steps"]
    top = max([s["hours_in"] for s in steps] + [s["hours_out"] for s in steps] + [1e-9])
    width, row, left = 760, 34, 190
    bars = [f'<svg class=funnel width="{width}" height="{row * len(steps) + 6}" role="img">']
    for i, s in enumerate(steps):
        y = i * row + 3
        w_in = max(1.0, (width - left - 170) * s["hours_in"] / top)
        w_out = max(1.0 if s["hours_out"] else 0.0, (width - left - 170) * s["hours_out"] / top)
        bars.append(
            f'<text x="0" y="{y + 19}">{esc(s["directory"])}</text>'
            f'<rect class=under x="{left}" y="{y + 4}" width="{w_in:.1f}" height="{row - 10}">'
            f"<title>in: {s['hours_in']:.3f} h</title></rect>"
            f'<rect x="{left}" y="{y + 4}" width="{w_out:.1f}" height="{row - 10}">'
            f"<title>out: {s['hours_out']:.3f} h</title></rect>"
            f'<text x="{left + w_in + 6:.1f}" y="{y + 19}">{s["hours_out"]:.3f} of '
            f"{s['hours_in']:.3f} h</text>"
        )
    bars.append("</svg>")
    head = (
        "<tr><th>stage</th><th>items in</th><th>items out</th><th>hours in</th>"
        "<th>hours out</th><th>rejected</th><th>failed</th></tr>"
    )
    rows = "".join(
        f"<tr class=step><td>{esc(s['directory'])}"
        + ("" if s["finished"] else " <i>(unfinished)</i>")
        + f"</td><td>{s['items_in']}</td><td>{s['items_out']}</td><td>{s['hours_in']:.3f}</td>"
        f"<td>{s['hours_out']:.3f}</td><td>{s['rejected']} ({s['rejected_hours']:.3f} h)</td>"
        f"<td>{s['failed']} ({s['failed_hours']:.3f} h)</td></tr>"
        for s in steps
    )
    why = []
    for s in steps:
        lost = [(r, "rejected") for r in s["reasons"]] + [(r, "failed") for r in s["failures"]]
        if not lost:
            continue
        items = "".join(
            f"<tr><td>{esc(kind)}</td><td>{esc(r['reason'])}</td><td>{r['count']}</td>"
            f"<td>{r['hours']:.3f}</td></tr>"
            for r, kind in lost
        )
        why.append(
            f"<h3>{esc(s['directory'])}</h3><table class=reasons><tr><th></th><th>reason</th>"
            f"<th>items</th><th>hours</th></tr>{items}</table>"
        )
    name = Path(summary["directory"]).name
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>audioprep chain: {esc(name)}</title><style>{_CSS}"
        "svg.funnel text{font-size:13px} h3{font-size:1em;margin-bottom:.2em}</style></head><body>",
        f"<h1>{esc(name)}</h1><p class=muted><code>{esc(summary['directory'])}</code> · "
        f"{len(steps)} stages · {summary['items']} items, {summary['hours']:.3f} h at the end</p>",
        "<h2>Funnel: hours into (grey) and out of (blue) every stage</h2>",
        "".join(bars),
        f"<table class=funnel>{head}{rows}</table>",
        "<h2>Where the hours went</h2>",
        "".join(why) or "<p class=empty>nothing was rejected or failed</p>",
    ]
    for step_name, section in sections:
        parts.append(f"<div class=stage-section data-step='{esc(step_name)}'>{section}</div>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "".join(parts)


def write_funnel_report(
    work_dir: Path, *, html_path: Path | None = None, json_path: Path | None = None
) -> tuple[Path, Path, dict[str, Any]]:
    """The funnel of a chain's work folder, plus each stage's own section, as one page."""
    summary = summarize_chain(work_dir)
    sections = []
    for step in chain_steps(work_dir):
        name = (_read_json(step / STAGE_FILE) or {}).get("stage")
        section = stage_section(step, name) if (step / MANIFEST).exists() else ""
        if section:
            sections.append((step.name, section))
    html_path = html_path or work_dir / REPORT_FILE
    json_path = json_path or work_dir / REPORT_JSON
    try:
        html_path.write_text(render_funnel(summary, sections), encoding="utf-8")
        json_path.write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    except OSError as exc:
        raise from_os_error(exc, html_path.parent) from None
    return html_path, json_path, summary
