"""loudness: Normalise items to a loudness (LUFS) or peak target under a true-peak ceiling."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audioprep.core.media import codec_fields, decode_chunks, output_format
from audioprep.core.params import param
from audioprep.core.stage import ItemContext, MapStage, RecordField
from audioprep.errors import ItemError
from audioprep.manifests.records import Record

BLOCK_FRAMES = 1 << 16
#: Gains closer to 0 dB than this leave the file untouched (hard-linked).
UNITY_DB = 0.005
#: Headroom kept under the ceiling for integer outputs: rounding to 16 bits moves a sample by
#: at most half a step, 0.00015 dB at -1 dBFS; 0.01 dB covers it many times over.
QUANTISE_MARGIN_DB = 0.01


def audio_blocks(path: Path, record: Record, *, frames: int = BLOCK_FRAMES) -> Iterator[Any]:
    """Blocks of float64 samples, shape ``(channels, m)``: libsndfile where it can read the
    file, else ffmpeg decoding at the record's rate and channels."""
    import numpy as np
    import soundfile as sf

    try:
        fh = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError):
        sr, ch = int(record.get("sample_rate") or 0), int(record.get("channels") or 0)
        if not sr or not ch:
            raise ItemError("libsndfile cannot read it and the record has no sample_rate") from None
        for chunk in decode_chunks(
            path, chunk_frames=frames, sample_rate=sr, channels=ch, sample_format="f32"
        ):
            yield chunk.T.astype(np.float64)
        return
    with fh:
        while True:
            block = fh.read(frames, dtype="float64", always_2d=True)
            if not len(block):
                return
            yield block.T


def audio_format(path: Path, record: Record) -> tuple[int, int, str, str]:
    """``(sample_rate, channels, ext, subtype)`` of a file and of what to write from it."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        sr, ch = int(record.get("sample_rate") or 0), int(record.get("channels") or 0)
        if not sr or not ch:
            raise ItemError("libsndfile cannot read it and the record has no sample_rate") from None
        return sr, ch, "wav", "PCM_16"
    ext, subtype = output_format(info)
    return info.samplerate, info.channels, ext, subtype


@dataclasses.dataclass(frozen=True)
class LoudnessParams:
    target: float = param(
        -23.0, help="Integrated loudness target in LUFS (EBU R128: -23).", min=-70.0, max=0.0
    )
    true_peak: float = param(
        -1.0,
        help="True-peak ceiling in dBTP: a gain that would pass it is lowered.",
        min=-30.0,
        max=0.0,
    )
    mode: str = param(
        "lufs",
        help="lufs: loudness to --target; peak: sample peak to --peak.",
        choices=("lufs", "peak"),
    )
    peak: float = param(-1.0, help="Sample-peak target in dBFS (--mode peak).", min=-30.0, max=0.0)


class LoudnessStage(MapStage):
    """Two streamed passes per item: measure (BS.1770 integrated loudness and 4x-oversampled
    true peak), then apply one gain. A gain that would lift the true peak over the ceiling is
    lowered to meet it (no limiter: the waveform is never reshaped) and the record says so.
    Silent items, items under 0.4 s and items holding NaN go to rejected.jsonl with the reason.

    Example: `audioprep loudness clips/ normalised/ --target -23 --true-peak -1`
    """

    name = "loudness"
    version = "1"
    record_fields = (
        RecordField(
            "loudness",
            "object",
            "What the normalisation measured and applied.",
            export="flatten",
            members=(
                RecordField("mode", "str", "lufs or peak."),
                RecordField("target_lufs", "float", "Loudness target (--mode lufs).", unit="LUFS"),
                RecordField("target_peak_db", "float", "Peak target (--mode peak).", unit="dBFS"),
                RecordField("ceiling_dbtp", "float", "True-peak ceiling.", unit="dBTP"),
                RecordField("measured_lufs", "float", "Loudness before.", unit="LUFS"),
                RecordField("measured_true_peak_db", "float", "True peak before.", unit="dBTP"),
                RecordField("measured_sample_peak_db", "float", "Sample peak before.", unit="dBFS"),
                RecordField("gain_db", "float", "Gain applied.", unit="dB", histogram=True),
                RecordField("wanted_gain_db", "float", "Gain the target asked for.", unit="dB"),
                RecordField("limited", "bool", "The gain was lowered to meet the ceiling."),
                RecordField("output_lufs", "float", "Loudness after.", unit="LUFS"),
                RecordField("output_true_peak_db", "float", "True peak after.", unit="dBTP"),
            ),
        ),
    )
    Params = LoudnessParams

    # -- pass 1 ------------------------------------------------------------------------------
    def measure_file(self, src: Path, record: Record) -> dict[str, Any]:
        """Loudness, true peak and sample peak of a file in one streamed pass."""
        import numpy as np

        from audioprep.dsp.loudness import MIN_SECONDS, LoudnessMeter, TruePeakMeter, to_db

        sr, channels, _, _ = audio_format(src, record)
        loud = LoudnessMeter(sr=sr, channels=channels) if channels <= 5 else None
        tp = TruePeakMeter(sr=sr)
        peak, frames, finite = 0.0, 0, True
        for block in audio_blocks(src, record):
            frames += block.shape[1]
            if finite and not np.isfinite(block).all():
                finite = False
            if not finite:
                continue  # count the frames, measure nothing
            if loud is not None:
                loud.feed(block)
            tp.feed(block)
            peak = max(peak, float(np.abs(block).max(initial=0.0)))
        if loud is None and self.params.mode == "lufs":
            raise ItemError(f"BS.1770 loudness is defined for up to 5 channels, not {channels}")
        return {
            "sr": sr,
            "seconds": frames / sr,
            "finite": finite,
            "too_short": frames / sr < MIN_SECONDS,
            # --mode peak on 6+ channels: no loudness (BS.1770 stops at 5), peaks only
            "lufs": loud.result() if finite and loud is not None else float("nan"),
            "true_peak_db": to_db(tp.result()) if finite else float("nan"),
            "sample_peak_db": to_db(peak) if finite else float("nan"),
        }

    def reject_reason(self, m: dict[str, Any]) -> str | None:
        """Why an item cannot be normalised, or None."""
        from audioprep.dsp.loudness import ABSOLUTE_GATE, MIN_SECONDS

        if not m["finite"]:
            return "audio holds NaN or infinite samples: loudness cannot be measured"
        if m["seconds"] == 0:
            return "empty audio (0 samples)"
        if self.params.mode == "lufs" and m["too_short"]:
            return (
                f"too short to measure loudness: {m['seconds']:.2f} s is under the "
                f"{MIN_SECONDS} s gating block of BS.1770"
            )
        if m["sample_peak_db"] == float("-inf"):
            return "silent: every sample is zero"
        if self.params.mode == "lufs" and m["lufs"] == float("-inf"):
            return f"silent: no 400 ms block reaches the {ABSOLUTE_GATE:g} LUFS gate"
        return None

    def gain(self, m: dict[str, Any], *, integer_output: bool) -> tuple[float, float, bool]:
        """``(applied_db, wanted_db, limited)``: the gain to the target, lowered where it would
        lift the true peak over the ceiling."""
        p = self.params
        wanted = p.target - m["lufs"] if p.mode == "lufs" else p.peak - m["sample_peak_db"]
        ceiling = p.true_peak - m["true_peak_db"] - (QUANTISE_MARGIN_DB if integer_output else 0)
        applied = min(wanted, ceiling)
        return applied, wanted, applied < wanted

    # -- pass 2 ------------------------------------------------------------------------------
    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        import soundfile as sf

        p = self.params
        src = ctx.input_audio(record)
        m = self.measure_file(src, record)
        reason = self.reject_reason(m)
        if reason:
            ctx.reject(record, reason, duration=round(m["seconds"], 6))
            return []
        sr, channels, ext, subtype = audio_format(src, record)
        gain_db, wanted_db, limited = self.gain(m, integer_output=subtype.startswith("PCM"))
        name = f"{record['id']}.{ext}"
        if abs(gain_db) < UNITY_DB and src.suffix == f".{ext}":
            audio = ctx.link(src, name)
            gain_db = 0.0
        else:
            scale = 10 ** (gain_db / 20)
            with (
                ctx.output(name) as tmp,
                sf.SoundFile(
                    str(tmp),
                    "w",
                    samplerate=sr,
                    channels=channels,
                    subtype=subtype,
                    format=ext.upper(),
                ) as out,
            ):
                for block in audio_blocks(src, record):
                    out.write((block * scale).T)
            audio = ctx.relpath(name)
        # one gain scales loudness and true peak exactly (rounding to the output's sample type
        # aside: under 0.001 dB at 16 bits), so the results are not measured a third time
        out_lufs, out_tp = m["lufs"] + gain_db, m["true_peak_db"] + gain_db
        info: dict[str, Any] = {
            "mode": p.mode,
            "target_lufs" if p.mode == "lufs" else "target_peak_db": (
                p.target if p.mode == "lufs" else p.peak
            ),
            "ceiling_dbtp": p.true_peak,
            "measured_lufs": _r(m["lufs"]),
            "measured_true_peak_db": _r(m["true_peak_db"]),
            "measured_sample_peak_db": _r(m["sample_peak_db"]),
            "gain_db": round(gain_db, 3),
            "wanted_gain_db": round(wanted_db, 3),
            "limited": limited,
            "output_lufs": _r(out_lufs),
            "output_true_peak_db": _r(out_tp),
        }
        return [
            {
                **record,
                "audio": audio,
                "duration": round(m["seconds"], 6),
                "loudness": info,
                **codec_fields(ext, subtype),
            }
        ]

    @classmethod
    def report_section(cls, out_dir: Path) -> str | None:
        """Measured loudness against the target, applied gains, and how many were lowered."""
        import json

        from audioprep.manifests.records import read_manifest
        from audioprep.reports.widgets import hist_svg, histogram

        infos = [
            r["loudness"] for r in read_manifest(out_dir) if isinstance(r.get("loudness"), dict)
        ]
        if not infos:
            return None
        measured = [i["measured_lufs"] for i in infos if i.get("measured_lufs") is not None]
        gains = [i["gain_db"] for i in infos]
        limited = sum(bool(i.get("limited")) for i in infos)
        target = infos[0].get("target_lufs")
        parts = [
            "<h2>Loudness</h2>",
            f"<p>{len(infos)} items; mode {json.dumps(infos[0].get('mode'))}; "
            f"{limited} had their gain lowered to keep the true peak under "
            f"{infos[0].get('ceiling_dbtp')} dBTP.</p>",
        ]
        charts = []  # each title in one figure with its chart: never beside the other chart
        if measured:
            charts.append(
                (
                    "Measured loudness (LUFS), target in red",
                    hist_svg(histogram(measured), unit="LUFS", mark=target),
                )
            )
        charts.append(("Applied gain (dB)", hist_svg(histogram(gains), unit="dB")))
        parts += [
            f"<figure class=chart><figcaption><b>{title}</b></figcaption>{svg}</figure>"
            for title, svg in charts
        ]
        return "".join(parts)

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"soundfile": version("soundfile"), "scipy": version("scipy")}


def _r(value: float) -> float | None:
    return round(value, 2) if isinstance(value, float) and math.isfinite(value) else None
