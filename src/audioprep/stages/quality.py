"""quality: Score items with DNSMOS and signal metrics (under `quality`); optional filters."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioprep.core.params import device_param, param
from audioprep.core.stage import ItemContext, MapStage, RecordField, WorkerContext
from audioprep.errors import UsageError
from audioprep.manifests.records import Record

if TYPE_CHECKING:
    from audioprep.engines.quality.base import Scorer

#: The scorer behind --dnsmos (a name in the engine registry, family "quality").
ENGINE = "dnsmos"

#: (record key, option, direction, unit) of every filter, in the order they are checked; the
#: first that fails names the rejection.
FILTERS = (
    ("ovrl", "min_ovrl", "min", ""),
    ("sig", "min_sig", "min", ""),
    ("bak", "min_bak", "min", ""),
    ("p808", "min_p808", "min", ""),
    ("snr_db", "min_snr", "min", " dB"),
    ("bandwidth_hz", "min_bandwidth", "min", " Hz"),
    ("clipping", "max_clipping", "max", ""),
    ("loudness_lufs", "min_loudness", "min", " LUFS"),
    ("silence_share", "max_silence", "max", ""),
    ("dc_offset", "max_dc_offset", "max", ""),
    ("duration", "min_duration", "min", " s"),
)
DNSMOS_KEYS = ("sig", "bak", "ovrl", "p808")
#: Metrics drawn in the report: key, title, unit, fixed span (or None for the data's range).
REPORT_METRICS = (
    ("ovrl", "DNSMOS OVRL", "", (1.0, 5.0)),
    ("sig", "DNSMOS SIG", "", (1.0, 5.0)),
    ("bak", "DNSMOS BAK", "", (1.0, 5.0)),
    ("p808", "DNSMOS P.808", "", (1.0, 5.0)),
    ("snr_db", "WADA-SNR", "dB", None),
    ("bandwidth_hz", "Effective bandwidth", "Hz", None),
    ("clipping", "Clipping ratio", "", None),
    ("loudness_lufs", "Integrated loudness", "LUFS", None),
    ("true_peak_db", "True peak", "dBTP", None),
    ("silence_share", "Silence share", "", (0.0, 1.0)),
    ("dc_offset", "DC offset", "", None),
    ("duration", "Duration", "s", None),
)
#: The ``quality`` object's members (all numbers; DNSMOS ones only with --dnsmos).
QUALITY_FIELD = RecordField(
    "quality",
    "object",
    "Signal metrics and DNSMOS scores of the item.",
    export="flatten",
    members=tuple(
        RecordField(key, "float", title, unit=unit, histogram=True)
        for key, title, unit, _span in REPORT_METRICS
    )
    + (RecordField("sample_peak_db", "float", "Sample peak", unit="dBFS"),),
)
#: Clips shown with a player at each end of the OVRL ranking.
REPORT_CLIPS = 6


@dataclasses.dataclass(frozen=True)
class QualityParams:
    min_ovrl: float | None = param(
        None,
        help="Drop items whose DNSMOS OVRL is below this (MOS 1-5; Emilia keeps 3.0).",
        min=1.0,
        max=5.0,
    )
    min_sig: float | None = param(
        None, help="Drop items whose DNSMOS SIG (speech quality) is below this.", min=1.0, max=5.0
    )
    min_bak: float | None = param(
        None,
        help="Drop items whose DNSMOS BAK (background noise) is below this.",
        min=1.0,
        max=5.0,
    )
    min_p808: float | None = param(
        None, help="Drop items whose DNSMOS P.808 MOS is below this.", min=1.0, max=5.0
    )
    min_snr: float | None = param(
        None, help="Drop items whose WADA-SNR estimate is below this many dB (-10..60)."
    )
    min_bandwidth: float | None = param(
        None,
        help="Drop items whose effective bandwidth is below this many Hz (8 kHz phone "
        "audio upsampled reads under 4000).",
        above=0.0,
    )
    max_clipping: float | None = param(
        None,
        help="Drop items with more than this share of samples clipped (at full scale, in "
        "runs of 3 or more).",
        min=0.0,
        max=1.0,
    )
    min_loudness: float | None = param(
        None, help="Drop items whose integrated loudness is below this many LUFS."
    )
    max_silence: float | None = param(
        None,
        help="Drop items with more than this share of 20 ms frames under -50 dBFS.",
        min=0.0,
        max=1.0,
    )
    max_dc_offset: float | None = param(
        None, help="Drop items whose DC offset (mean sample, full scale 1) exceeds this.", min=0.0
    )
    min_duration: float | None = param(
        None,
        help="Drop items shorter than this many seconds (DNSMOS repeats short clips).",
        min=0.0,
    )
    dnsmos: bool = param(
        True, help="Score with DNSMOS (--no-dnsmos: the signal metrics only, far faster)."
    )
    dnsmos_hop: float = param(
        1.0,
        help="Seconds between DNSMOS windows of 9.01 s: 1 as the reference (Emilia, speechmos); "
        "longer is faster (9.01: each second scored once, see docs/stages/quality.md).",
        min=0.1,
        max=60.0,
    )
    device: str = device_param("Where the DNSMOS models run.")
    annotate_only: bool = param(
        False,
        help="Drop nothing: record the filters' decision as quality_pass (and the reason as "
        "quality_reason) for `audioprep select` to apply later.",
        flags=("--annotate-only",),
    )


class QualityStage(MapStage):
    """Scores every item with DNSMOS (P.835 SIG, BAK, OVRL and P.808, from the ONNX models of
    the speechmos package) and signal metrics computed in one streamed pass (loudness, true
    peak, clipping, WADA-SNR, effective bandwidth, DC offset, silence share), and records them
    under `quality`. Without filter options it only annotates; each filter drops the items
    that fail it into rejected.jsonl, naming the metric, its value and the threshold.

    Example: `audioprep quality clips/ scored/ --min-ovrl 3.0 --min-bandwidth 6000`
    """

    name = "quality"
    version = "1"
    record_fields = (QUALITY_FIELD,)
    Params = QualityParams
    #: The DNSMOS scorer, once ``setup`` made it (None: signal metrics only).
    engine: Scorer | None = None

    def check(self) -> None:
        p = self.params
        for key in ("min_ovrl", "min_sig", "min_bak", "min_p808"):
            value = getattr(p, key)
            if value is not None and not p.dnsmos:
                raise UsageError(f"--{key.replace('_', '-')} needs DNSMOS: drop --no-dnsmos.")
        if p.dnsmos:
            from audioprep.engines import base as engines

            engines.engine_class("quality", ENGINE).check(engines.Settings(device=p.device))

    def setup(self, ctx: WorkerContext) -> None:
        self.engine = None
        if self.params.dnsmos:
            from audioprep.engines import base as engines

            settings = engines.Settings(
                device=self.params.device,
                threads=ctx.threads,
                options={"hop": self.params.dnsmos_hop},
            )
            self.engine = engines.load("quality", ENGINE, settings)

    def teardown(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.close()

    def measure_file(self, src: Path, record: Record) -> dict[str, Any] | str:
        """The ``quality`` dict of a file, or the reason it cannot be measured."""
        import numpy as np

        from audioprep.dsp.dnsmos import SR
        from audioprep.dsp.metrics import SignalMeter
        from audioprep.dsp.resample import StreamResampler
        from audioprep.stages.loudness import audio_blocks, audio_format

        sr, channels, _, _ = audio_format(src, record)
        meter = SignalMeter(sr=sr, channels=channels)
        stream = self.engine.stream() if self.engine is not None else None
        resampler = StreamResampler(sr_in=sr, sr_out=SR) if stream is not None else None
        for block in audio_blocks(src, record):
            if not np.isfinite(block).all():
                return "audio holds NaN or infinite samples: no metric can be computed"
            meter.feed(block)
            if stream is not None:
                stream.feed(resampler.feed(block.mean(axis=0, keepdims=True))[0])
        if meter.frames == 0:
            return "empty audio (0 samples)"
        quality = meter.result()
        if stream is not None:
            stream.feed(resampler.flush()[0])
            quality = {**stream.result(), **quality}
        return quality

    def failures(self, quality: dict[str, Any]) -> list[dict[str, Any]]:
        """Every filter the item fails: metric, value, threshold, option."""
        out = []
        for key, option, direction, unit in FILTERS:
            threshold = getattr(self.params, option)
            if threshold is None:
                continue
            value = quality.get(key)
            if key == "dc_offset" and value is not None:
                value = abs(value)
            if value is None:  # undefined (silence): fails a minimum, passes a maximum
                bad = direction == "min"
            else:
                bad = value < threshold if direction == "min" else value > threshold
            if bad:
                out.append(
                    {
                        "metric": key,
                        "value": value,
                        "threshold": threshold,
                        "option": "--" + option.replace("_", "-"),
                        "unit": unit,
                        "direction": direction,
                    }
                )
        return out

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        src = ctx.input_audio(record)
        quality = self.measure_file(src, record)
        if isinstance(quality, str):
            ctx.reject(record, quality)
            return []
        quality = with_before(quality, record.get("quality"))
        failed = self.failures(quality)
        if self.params.annotate_only:
            audio = ctx.link(src, f"{record['id']}{src.suffix}")
            verdict = {"quality_pass": not failed}
            if failed:
                verdict["quality_reason"] = _reason(failed[0])
            return [{**record, "audio": audio, "quality": quality, **verdict}]
        if failed:
            f = failed[0]
            ctx.reject(
                record,
                _reason(f),
                metric=f["metric"],
                value=f["value"],
                threshold=f["threshold"],
                failed=[{k: x[k] for k in ("metric", "value", "threshold")} for x in failed],
                quality=quality,
            )
            return []
        audio = ctx.link(src, f"{record['id']}{src.suffix}")
        return [{**record, "audio": audio, "quality": quality}]

    @classmethod
    def report_section(cls, out_dir: Path) -> str | None:
        """Histograms per metric (kept in blue over filtered-out in grey, the threshold in red),
        a table per source, and the worst and best clips by OVRL with players."""
        import html
        import json

        from audioprep.manifests.records import MANIFEST, REJECTED, STAGE_FILE, resolve_audio
        from audioprep.reports.widgets import clip_media, hist_svg, histogram, source_key

        esc = html.escape
        stage = (
            json.loads((out_dir / STAGE_FILE).read_text())
            if (out_dir / STAGE_FILE).exists()
            else {}
        )
        params = stage.get("params") or {}
        in_dir = Path(stage["input"]) if stage.get("input") else None
        items: list[tuple[Record, bool]] = []  # (record, kept)
        for name, kept in ((MANIFEST, True), (REJECTED, False)):
            path = out_dir / name
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                record = (
                    entry
                    if kept
                    else {**(entry.get("record") or {}), "quality": entry.get("quality")}
                )
                if isinstance(record.get("quality"), dict):
                    items.append((record, kept))
        if not items:
            return None
        thresholds = {key: params.get(option) for key, option, _, _ in FILTERS}
        parts = [
            "<h2>Quality</h2>",
            f"<p>{sum(k for _, k in items)} kept, {sum(not k for _, k in items)} filtered out. "
            "Blue: kept, grey: filtered out, red line: the threshold.</p><div class=samples>",
        ]
        for key, title, unit, span in REPORT_METRICS:
            kept_v = [r["quality"][key] for r, k in items if k and _num(r["quality"].get(key))]
            lost_v = [r["quality"][key] for r, k in items if not k and _num(r["quality"].get(key))]
            if not kept_v and not lost_v:
                continue
            mark = thresholds.get(key)
            every = kept_v + lost_v + ([mark] if _num(mark) else [])
            lo, hi = span if span else (min(every), max(every))
            parts.append(
                f"<div class=metric data-metric='{key}'><b>{esc(title)}</b>"
                + (f" · threshold {mark:g} {unit}" if _num(mark) else "")
                + hist_svg(
                    histogram(kept_v, span=(lo, hi)),
                    unit=unit,
                    width=340,
                    mark=mark if _num(mark) else None,
                    under=histogram(lost_v, span=(lo, hi)),
                )
                + "</div>"
            )
        parts.append("</div>")
        # per source
        by_source: dict[str, list[tuple[Record, bool]]] = {}
        for record, kept in items:
            by_source.setdefault(source_key(record), []).append((record, kept))
        rows = []
        # the mean of DNSMOS OVRL, or of WADA-SNR when DNSMOS was off (never a column of nan)
        rank = "ovrl" if any(_num(r["quality"].get("ovrl")) for r, _ in items) else "snr_db"
        for src, group in sorted(by_source.items(), key=lambda kv: -len(kv[1])):
            got = [r["quality"][rank] for r, _ in group if _num(r["quality"].get(rank))]
            hours = sum(float(r.get("duration") or 0) for r, _ in group) / 3600
            kept_h = sum(float(r.get("duration") or 0) for r, k in group if k) / 3600
            rows.append(
                f"<tr><td>{esc(src)}</td><td>{len(group)}</td>"
                f"<td>{f'{sum(got) / len(got):.2f}' if got else '–'}</td>"
                f"<td>{hours:.3f}</td><td>{kept_h:.3f}</td></tr>"
            )
        parts.append(
            "<h3>Per source</h3><table class=sources><tr><th>source</th><th>items</th>"
            f"<th>mean {'OVRL' if rank == 'ovrl' else 'WADA-SNR (dB)'}</th><th>hours</th>"
            "<th>hours kept</th></tr>" + "".join(rows) + "</table>"
        )
        parts.append(change_section(items))
        # worst and best clips
        ranked = sorted(
            (x for x in items if _num(x[0]["quality"].get(rank))),
            key=lambda x: x[0]["quality"][rank],
        )
        worst = ranked[: min(REPORT_CLIPS, (len(ranked) + 1) // 2)]
        best = ranked[::-1][: min(REPORT_CLIPS, len(ranked) // 2)]  # never the same clip twice
        parts.append("<div class=pair style='display:grid;grid-template-columns:1fr 1fr;gap:1em'>")
        for title, chosen in (("Worst", worst), ("Best", best)):
            cells = []
            for record, kept in chosen:
                base = out_dir if kept else in_dir
                try:
                    path = resolve_audio(base, record["audio"]) if base else None
                except Exception:  # noqa: BLE001 - a moved input folder only loses the player
                    path = None
                if path is None or not path.is_file():
                    continue
                png, mp3 = clip_media(base, record)
                q = record["quality"]
                cells.append(
                    f'<div class=sample><img src="{png}" alt="{esc(record["id"])}">'
                    f'<audio controls preload=none src="{mp3}"></audio>'
                    f"<div class=muted>{esc(record['id'])} · {rank} {q[rank]:g}"
                    f"{'' if kept else ' · filtered out'}</div></div>"
                )
            parts.append(
                f"<div data-clips='{title.lower()}'><h3>{title} {len(cells)} by {rank}</h3>"
                f"{''.join(cells)}</div>"
            )
        parts.append("</div>")
        return "".join(parts)

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        out = {}
        for pkg in ("onnxruntime", "speechmos", "scipy"):
            try:
                out[pkg] = version(pkg)
            except PackageNotFoundError:
                out[pkg] = "missing"
        return out


def _reason(f: dict[str, Any]) -> str:
    """``"snr_db 3 dB is below --min-snr 10 dB"`` for one failed filter."""
    word = "below" if f["direction"] == "min" else "above"
    value = "undefined" if f["value"] is None else f"{f['value']:g}{f['unit']}"
    return f"{f['metric']} {value} is {word} {f['option']} {f['threshold']:g}{f['unit']}"


def _num(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: DNSMOS scores carried over from an earlier quality run, under ``quality.before``.
BEFORE_KEYS = ("ovrl", "sig", "bak", "p808")
#: Most clips listed in the report's before-and-after table (the largest changes first).
CHANGE_ROWS = 200


def with_before(quality: dict[str, Any], earlier: Any) -> dict[str, Any]:
    """``quality`` with ``before``: the DNSMOS scores of an earlier quality run that the
    input record still carries (what enhancement in between changed), when both have OVRL.

    >>> with_before({"ovrl": 3.0}, {"ovrl": 2.1, "sig": 3.0, "snr_db": 9})
    {'ovrl': 3.0, 'before': {'ovrl': 2.1, 'sig': 3.0}}
    >>> with_before({"ovrl": 3.0}, None)
    {'ovrl': 3.0}
    """
    if not isinstance(earlier, dict) or not _num(earlier.get("ovrl")) or "ovrl" not in quality:
        return quality
    return {**quality, "before": {k: earlier[k] for k in BEFORE_KEYS if _num(earlier.get(k))}}


def change_section(items: list[tuple[Record, bool]]) -> str:
    """The report's before-and-after table: per clip, DNSMOS from the earlier quality run and
    from this one, and the change; empty when no clip carries an earlier score.

    >>> clip = {"id": "a", "quality": {"ovrl": 3.0, "before": {"ovrl": 2.5}}}
    >>> html = change_section([(clip, True)])
    >>> "+0.50" in html and "<td>a</td>" in html
    True
    """
    import html

    rows = [
        (r, k, r["quality"]["ovrl"] - r["quality"]["before"]["ovrl"])
        for r, k in items
        if isinstance(r["quality"].get("before"), dict)
        and _num(r["quality"].get("ovrl"))
        and _num(r["quality"]["before"].get("ovrl"))
    ]
    if not rows:
        return ""
    rows.sort(key=lambda x: -abs(x[2]))
    mean = sum(d for _, _, d in rows) / len(rows)
    better = sum(1 for _, _, d in rows if d > 0)

    def cell(q: dict[str, Any], key: str) -> str:
        return f"{q[key]:.2f}" if _num(q.get(key)) else ""

    body = []
    for r, kept, delta in rows[:CHANGE_ROWS]:
        q, b = r["quality"], r["quality"]["before"]
        sig = f"{q['sig'] - b['sig']:+.2f}" if _num(q.get("sig")) and _num(b.get("sig")) else ""
        bak = f"{q['bak'] - b['bak']:+.2f}" if _num(q.get("bak")) and _num(b.get("bak")) else ""
        body.append(
            f"<tr><td>{html.escape(str(r['id']))}</td><td>{cell(b, 'ovrl')}</td>"
            f"<td>{cell(q, 'ovrl')}</td><td>{delta:+.2f}</td><td>{sig}</td><td>{bak}</td>"
            f"<td>{'' if kept else 'filtered out'}</td></tr>"
        )
    more = f" (the {CHANGE_ROWS} largest changes shown)" if len(rows) > CHANGE_ROWS else ""
    return (
        f"<h3>Before and after</h3><p data-change='{mean:+.3f}'>{len(rows)} clips carry DNSMOS "
        f"from an earlier quality run: OVRL changed by {mean:+.2f} on average, {better} "
        f"improved{more}.</p><table class=change><tr><th>clip</th><th>OVRL before</th>"
        "<th>OVRL after</th><th>change</th><th>SIG change</th><th>BAK change</th><th></th></tr>"
        + "".join(body)
        + "</table>"
    )
