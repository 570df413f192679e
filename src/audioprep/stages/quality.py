"""quality: Score items with DNSMOS and signal metrics (under `quality`); optional filters."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from audioprep.core.params import param
from audioprep.core.stage import ItemContext, MapStage, WorkerContext
from audioprep.errors import AudioprepError, UsageError
from audioprep.manifests.records import Record

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
        min=0.0,
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
    device: str = param("cpu", help="Where the DNSMOS models run.", choices=("cpu", "cuda"))


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
    Params = QualityParams

    def check(self) -> None:
        p = self.params
        for key in ("min_ovrl", "min_sig", "min_bak", "min_p808"):
            value = getattr(p, key)
            if value is not None and not 1.0 <= value <= 5.0:
                raise UsageError(f"--{key.replace('_', '-')} is a MOS from 1 to 5, not {value:g}.")
            if value is not None and not p.dnsmos:
                raise UsageError(f"--{key.replace('_', '-')} needs DNSMOS: drop --no-dnsmos.")
        for key in ("max_clipping", "max_silence"):
            value = getattr(p, key)
            if value is not None and not 0.0 <= value <= 1.0:
                raise UsageError(
                    f"--{key.replace('_', '-')} is a share from 0 to 1, not {value:g}."
                )
        if p.min_bandwidth is not None and p.min_bandwidth <= 0:
            raise UsageError(f"--min-bandwidth must be above 0 Hz, not {p.min_bandwidth:g}.")
        if p.max_dc_offset is not None and p.max_dc_offset < 0:
            raise UsageError(f"--max-dc-offset must be 0 or more, not {p.max_dc_offset:g}.")
        if p.device not in ("cpu", "cuda"):
            raise UsageError(f"--device must be cpu or cuda, not {p.device!r}.")
        if not 0.1 <= p.dnsmos_hop <= 60:
            raise UsageError(f"--dnsmos-hop must be 0.1 to 60 seconds, not {p.dnsmos_hop:g}.")
        if p.dnsmos:
            from audioprep.engines.quality.dnsmos import check_device, model_dir

            try:
                check_device(p.device)
                model_dir()
            except AudioprepError as exc:
                raise UsageError(str(exc)) from None

    def setup(self, ctx: WorkerContext) -> None:
        self.engine = None
        if self.params.dnsmos:
            from audioprep.engines.quality.dnsmos import DnsmosEngine

            self.engine = DnsmosEngine(device=self.params.device, threads=ctx.threads)

    def measure_file(self, src: Path, record: Record) -> dict[str, Any] | str:
        """The ``quality`` dict of a file, or the reason it cannot be measured."""
        import numpy as np

        from audioprep.dsp.dnsmos import SR
        from audioprep.dsp.metrics import SignalMeter
        from audioprep.dsp.resample import StreamResampler
        from audioprep.stages.loudness import audio_blocks, audio_format

        sr, channels, _, _ = audio_format(src, record)
        meter = SignalMeter(sr=sr, channels=channels)
        engine = getattr(self, "engine", None)
        stream = engine.stream(self.params.dnsmos_hop) if engine is not None else None
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
        failed = self.failures(quality)
        if failed:
            f = failed[0]
            word = "below" if f["direction"] == "min" else "above"
            value = "undefined" if f["value"] is None else f"{f['value']:g}{f['unit']}"
            reason = f"{f['metric']} {value} is {word} {f['option']} {f['threshold']:g}{f['unit']}"
            ctx.reject(
                record,
                reason,
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
        from audioprep.reports.html import clip_media, hist_svg, histogram, source_key

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
        for src, group in sorted(by_source.items(), key=lambda kv: -len(kv[1])):
            ovrl = [r["quality"]["ovrl"] for r, _ in group if _num(r["quality"].get("ovrl"))]
            hours = sum(float(r.get("duration") or 0) for r, _ in group) / 3600
            kept_h = sum(float(r.get("duration") or 0) for r, k in group if k) / 3600
            rows.append(
                f"<tr><td>{esc(src)}</td><td>{len(group)}</td>"
                f"<td>{(sum(ovrl) / len(ovrl)) if ovrl else float('nan'):.2f}</td>"
                f"<td>{hours:.3f}</td><td>{kept_h:.3f}</td></tr>"
            )
        parts.append(
            "<h3>Per source</h3><table class=sources><tr><th>source</th><th>items</th>"
            "<th>mean OVRL</th><th>hours</th><th>hours kept</th></tr>" + "".join(rows) + "</table>"
        )
        # worst and best clips
        rank = "ovrl" if any(_num(r["quality"].get("ovrl")) for r, _ in items) else "snr_db"
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


def _num(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
