"""denoise: Filter hiss, rumble and tonal whine: low-pass, high-pass and notch filters in one pass.

Butterworth low-pass / high-pass and IIR notches (scipy), zero-phase or causal, streamed in
blocks, never clipping. With ``--engine dfn3`` a neural enhancer (DeepFilterNet3) runs first,
at 48 kHz (resampled there and back, streamed), and the filters, if any, after it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audioprep.core.media import codec_fields, output_format, sound_info
from audioprep.core.params import param
from audioprep.core.stage import ItemContext, MapStage, WorkerContext
from audioprep.engines import base as engines
from audioprep.errors import ItemError, UsageError
from audioprep.manifests.records import MANIFEST, Record, iter_raw

BLOCK_FRAMES = 1 << 16
#: Items up to this many samples (all channels) are filtered as one array: same result, faster.
IN_MEMORY_SAMPLES = 1 << 21
#: Channels an enhancement engine is run on, one model state each.
MAX_ENHANCE_CHANNELS = 2
NOT_FINITE = (
    "the audio holds NaN or infinite samples (a broken float file), which cannot be filtered"
)


def _blocks(path: Path, frames: int = BLOCK_FRAMES) -> Iterator[Any]:
    """Blocks of a sound file as float64 arrays of shape ``(channels, m)``."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as fh:
        while True:
            block = fh.read(frames, dtype="float64", always_2d=True)
            if not len(block):
                return
            yield block.T


class DenoiseStage(MapStage):
    """Files are processed in blocks (bounded memory at any length); when filtering would push a
    peak past full scale the item is scaled down and the gain recorded under `denoise`.

    Example: `audioprep denoise wav/ clean/ --lowpass 5000 --rolloff 36 --passes 2 --notch 6000`
    """

    name = "denoise"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        lowpass: float | None = param(
            None, help="Low-pass cut-off in Hz (hiss, crackle).", above=0.0
        )
        highpass: float | None = param(None, help="High-pass cut-off in Hz (rumble).", above=0.0)
        rolloff: float = param(
            36.0, help="Roll-off in dB per octave, as applied (sets the order).", above=0.0
        )
        passes: int = param(1, help="Apply the filters this many times.", min=1)
        zero_phase: bool = param(
            True,
            help="Forward-backward (no phase shift) or causal.",
            flags=("--zero-phase/--causal",),
        )
        notch: tuple[float, ...] = param(
            (),
            help="Notch out a tonal whine at this frequency (repeatable).",
            repeatable=True,
            above=0.0,
        )
        q: float = param(30.0, help="Quality of the notches (bandwidth = f / Q).", above=0.0)
        notch_auto: int = param(
            0, help="Find and notch the N strongest tonal peaks per item.", min=0
        )
        engine: str | None = param(
            None,
            help="Neural enhancement before the filters (engines: dfn3; default: none).",
            choices=lambda: engines.names("enhance"),
            metavar="ENGINE",
        )
        atten_limit: float | None = param(
            None,
            help="Most attenuation the enhancer applies, in dB (default: no limit).",
            above=0.0,
            max=100.0,
        )

    def check(self) -> None:
        p = self.params
        if not p.engine and p.atten_limit is not None:
            raise UsageError("--atten-limit applies to an enhancement engine: add --engine dfn3.")
        if (
            not p.engine
            and p.lowpass is None
            and p.highpass is None
            and not p.notch
            and not p.notch_auto
        ):
            raise UsageError(
                "denoise needs at least one of --engine, --lowpass, --highpass, --notch, "
                "--notch-auto."
            )
        if p.lowpass is not None and p.highpass is not None and p.highpass >= p.lowpass:
            raise UsageError(
                f"--highpass {p.highpass:g} Hz must be below --lowpass {p.lowpass:g} Hz."
            )

    def check_input(self, in_dir: Path) -> None:
        """Every cut-off and notch must lie below the Nyquist frequency of every item."""
        rates: dict[int, str] = {}
        for _, record, _ in iter_raw(in_dir / MANIFEST):
            if record and isinstance(record.get("sample_rate"), int):
                rates.setdefault(record["sample_rate"], str(record.get("id")))
        for sr, item in sorted(rates.items()):
            try:
                self.design(sr)
            except ValueError as exc:
                raise UsageError(f"{exc} (item {item} is sampled at {sr} Hz).") from None

    def design(self, sr: int, auto_notches: tuple[float, ...] = ()) -> tuple[Any, list[Record]]:
        """The cascaded sos for sample rate ``sr`` and a description of each filter."""
        from audioprep.dsp.filters import butter_sos, chain_sos, notch_sos, order_for_rolloff

        p = self.params
        sections, described = [], []
        order = order_for_rolloff(p.rolloff, zero_phase=p.zero_phase)
        for kind, cutoff in (("highpass", p.highpass), ("lowpass", p.lowpass)):
            if cutoff is not None:
                sections.append(butter_sos(kind, cutoff, sr=sr, order=order))
                described.append(
                    {
                        "type": kind,
                        "cutoff_hz": cutoff,
                        "order": order,
                        "rolloff_db_per_octave": p.rolloff,
                    }
                )
        for freq, auto in [(f, False) for f in p.notch] + [(f, True) for f in auto_notches]:
            sections.append(notch_sos(freq, sr=sr, q=p.q))
            described.append({"type": "notch", "freq_hz": round(freq, 2), "q": p.q, "auto": auto})
        if not sections:
            return None, []
        return chain_sos(sections, passes=p.passes), described

    def setup(self, ctx: WorkerContext) -> None:
        self.enhancer = None
        if self.params.engine:
            from audioprep.engines.base import Settings, load

            options = {"atten_limit": self.params.atten_limit}
            self.enhancer = load("enhance", self.params.engine, Settings(options=options))

    def teardown(self) -> None:
        enhancer = self.__dict__.pop("enhancer", None)
        if enhancer is not None:
            enhancer.close()

    def _enhance(self, src: Path, ctx: ItemContext, info: Any, item: str) -> tuple[Path, Record]:
        """Run the enhancement engine over ``src`` into a float scratch file at the item's own
        rate and length: resampled to the engine's rate and back (dsp.resample), in blocks, one
        model state per channel."""
        import numpy as np
        import soundfile as sf

        from audioprep.dsp.resample import StreamResampler

        sr, channels, n = info.samplerate, info.channels, info.frames
        engine = self.enhancer
        if channels > MAX_ENHANCE_CHANNELS:
            raise ItemError(
                f"the {self.params.engine} engine enhances mono or stereo speech, and this item "
                f"has {channels} channels: downmix it first (e.g. ffmpeg -ac 1)"
            )
        up = StreamResampler(sr_in=sr, sr_out=engine.SR)
        down = StreamResampler(sr_in=engine.SR, sr_out=sr)
        streams = [engine.stream() for _ in range(channels)]
        ctx.tmp_dir.mkdir(parents=True, exist_ok=True)
        scratch = ctx.tmp_dir / f"{item}.{self.params.engine}.wav"
        written = 0

        def run(x: Any, fh: Any, last: bool = False) -> None:
            nonlocal written
            if x.shape[1] or last:
                y = [s.feed(x[c]) for c, s in enumerate(streams)]
                if last:
                    y = [np.concatenate([a, s.flush()]) for a, s in zip(y, streams, strict=True)]
                z = down.feed(np.stack(y).astype(np.float64))
                if last:
                    z = np.concatenate([z, down.flush()], axis=1)
                z = z[:, : n - written]
                fh.write(z.T.astype(np.float32))
                written += z.shape[1]

        try:
            with sf.SoundFile(
                str(scratch), "w", samplerate=sr, channels=channels, subtype="FLOAT", format="WAV"
            ) as fh:
                for block in _blocks(src):
                    if not np.isfinite(block).all():
                        raise ItemError(NOT_FINITE)
                    run(up.feed(block), fh)
                run(up.flush(), fh, last=True)
                if written < n:
                    fh.write(np.zeros((n - written, channels), np.float32))
        finally:
            for s in streams:
                engine.release(s)
        lsnr = [v for s in streams for v in s.frames_lsnr]
        described = {
            "engine": self.params.engine,
            "rate_hz": engine.SR,
            "atten_limit_db": self.params.atten_limit,
            "mean_lsnr_db": round(float(np.mean(lsnr)), 2) if lsnr else None,
        }
        return scratch, described

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        import numpy as np
        import soundfile as sf

        from audioprep.dsp.filters import LongTermSpectrum, apply_sos, find_tonal_peaks

        p = self.params
        src = ctx.input_audio(record)
        info = sound_info(src)
        sr, channels, n = info.samplerate, info.channels, info.frames
        enhanced: Record | None = None
        if getattr(self, "enhancer", None) is not None:
            src, enhanced = self._enhance(src, ctx, info, str(record["id"]))
        found: list[tuple[float, float]] = []
        if p.notch_auto:
            spectrum = LongTermSpectrum(sr=sr)
            for block in _blocks(src):
                spectrum.feed(block)
            found = find_tonal_peaks(*spectrum.result(), n=p.notch_auto)
        sos, described = self.design(sr, tuple(f for f, _ in found))
        fmt, subtype = output_format(info)
        limit = 1.0 if subtype in ("FLOAT", "DOUBLE") else 32767 / 32768
        name = f"{record['id']}.{fmt}"
        if n * channels <= IN_MEMORY_SAMPLES:
            y = sf.read(str(src), dtype="float64", always_2d=True)[0].T
            if not np.isfinite(y).all():
                raise ItemError(NOT_FINITE)
            filtered = y if sos is None else apply_sos(y, sos, zero_phase=p.zero_phase)
            peak = float(np.abs(filtered).max(initial=0.0))
            gain = limit / peak if peak > limit else 1.0
            with ctx.output(name) as tmp:
                sf.write(
                    str(tmp),
                    (filtered * gain if gain != 1.0 else filtered).T,
                    sr,
                    subtype=subtype,
                    format=fmt.upper(),
                )
        else:
            peak, gain = self._filter_streamed(src, ctx, name, sos, info, fmt, subtype, limit)
            if not np.isfinite(peak):
                raise ItemError(NOT_FINITE)
        if enhanced is not None:
            src.unlink(missing_ok=True)  # the enhancer's scratch file
        return [
            {
                **record,
                "audio": ctx.relpath(name),
                "duration": round(n / sr, 6),
                "sample_rate": sr,
                "channels": channels,
                **codec_fields(fmt, subtype),
                "denoise": {
                    "filters": described,
                    "passes": p.passes,
                    "zero_phase": p.zero_phase,
                    "peak_before": round(peak, 6),
                    "gain": round(gain, 6),
                    "scaled_to_avoid_clipping": gain != 1.0,
                    "tonal_peaks": [
                        {"freq_hz": round(f, 2), "prominence_db": round(d, 1)} for f, d in found
                    ],
                    **({"enhance": enhanced} if enhanced else {}),
                },
            }
        ]

    def _filter_streamed(
        self,
        src: Path,
        ctx: ItemContext,
        name: str,
        sos: Any,
        info: Any,
        fmt: str,
        subtype: str,
        limit: float,
    ) -> tuple[float, float]:
        """Filter block by block through scratch files; returns ``(peak, gain)``."""
        import numpy as np
        import soundfile as sf

        from audioprep.dsp.filters import CausalStream, RawBuffer, ZeroPhaseStream

        p = self.params
        sr, channels, n = info.samplerate, info.channels, info.frames
        ctx.tmp_dir.mkdir(parents=True, exist_ok=True)
        peak = 0.0
        with RawBuffer(channels, tmp_dir=str(ctx.tmp_dir)) as out:
            if sos is None:  # --notch-auto found nothing: pass the audio through unchanged
                for pos, block in _enumerate_blocks(_blocks(src)):
                    out.write_at(pos, block)
                    peak = max(peak, float(np.abs(block).max(initial=0.0)))
            elif p.zero_phase:
                with ZeroPhaseStream(
                    sos, channels=channels, n=n, block=BLOCK_FRAMES, tmp_dir=str(ctx.tmp_dir)
                ) as zp:
                    for block in _blocks(src):
                        zp.feed(block)
                    for start, block in zp.backward():
                        out.write_at(start, block)
                        peak = max(peak, float(np.abs(block).max(initial=0.0)))
            else:
                stream = CausalStream(sos, channels=channels)
                for pos, block in _enumerate_blocks(_blocks(src)):
                    filtered = stream.process(block)
                    out.write_at(pos, filtered)
                    peak = max(peak, float(np.abs(filtered).max(initial=0.0)))
            gain = limit / peak if peak > limit else 1.0
            with (
                ctx.output(name) as tmp,
                sf.SoundFile(
                    str(tmp),
                    "w",
                    samplerate=sr,
                    channels=channels,
                    subtype=subtype,
                    format=fmt.upper(),
                ) as fout,
            ):
                for pos in range(0, n, BLOCK_FRAMES):
                    block = out.read(pos, BLOCK_FRAMES)
                    fout.write((block * gain if gain != 1.0 else block).T)
        return peak, gain

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        versions = {"scipy": version("scipy"), "soundfile": version("soundfile")}
        if self.params.engine:
            from audioprep.engines.base import engine_class

            versions.update(engine_class("enhance", self.params.engine).versions())
        return versions


def _enumerate_blocks(blocks: Iterator[Any]) -> Iterator[tuple[int, Any]]:
    pos = 0
    for block in blocks:
        yield pos, block
        pos += block.shape[-1]
