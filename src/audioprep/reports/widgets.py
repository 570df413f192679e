"""The report's widgets: histograms, bar charts, tables and clip players, as HTML strings.

Stage sections (a stage's ``report_section`` classmethod) and the report itself build their
pages from these; they read nothing but the records and audio they are given.

>>> hist_svg(histogram([1, 2, 2, 3], bins=3), unit="s").startswith("<svg")
True
"""

from __future__ import annotations

import base64
import html
import io
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audioprep.errors import AudioprepError
from audioprep.manifests.records import resolve_audio

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


def bars_svg(labels: list[str], values: list[float], *, unit: str, width: int = 560) -> str:
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


def hist_svg(
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


def clip_media(in_dir: Path, record: dict[str, Any]) -> tuple[str, str]:
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


def table_html(rows: list[tuple[str, str]], head: tuple[str, str]) -> str:
    if not rows:
        return "<p class=empty>none</p>"
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>"
