"""trim: Strip a fixed intro and outro from every item, sample-accurately.

Drops ``head`` seconds from the start and ``tail`` seconds from the end, streaming in blocks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from audioprep.core.media import codec_fields, exact_dtype, ffmpeg_version, last_line, output_format
from audioprep.core.params import param
from audioprep.core.stage import ItemContext, MapStage
from audioprep.dsp.trim import trim_bounds
from audioprep.errors import ItemError
from audioprep.manifests.offsets import child_offset
from audioprep.manifests.records import Record

BLOCK_FRAMES = 1 << 18  # 262144 frames: about 16 s at 16 kHz, 6 s at 44.1 kHz


class TrimStage(MapStage):
    """Items not longer than head + tail go to OUT_DIR/rejected.jsonl with the reason.

    Example: `audioprep trim wav16k/ trimmed/ --head 5 --tail 2`
    """

    name = "trim"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        head: float = param(0.0, help="Seconds to cut from the start.", min=0.0)
        tail: float = param(0.0, help="Seconds to cut from the end.", min=0.0)

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        import soundfile as sf

        src = ctx.input_audio(record)
        p = self.params
        try:
            info = sf.info(str(src))
        except (sf.LibsndfileError, RuntimeError):
            return self._trim_with_ffmpeg(record, src, ctx)
        start, stop = trim_bounds(info.frames, sr=info.samplerate, head=p.head, tail=p.tail)
        if stop <= start:
            ctx.reject(
                record,
                f"duration {info.frames / info.samplerate:.2f} s is not longer than "
                f"head + tail = {p.head + p.tail:.2f} s",
                duration=info.frames / info.samplerate,
            )
            return []
        fmt, subtype = output_format(info)
        name = f"{record['id']}.{fmt}"
        if start == 0 and stop == info.frames and src.suffix == f".{fmt}":
            audio = ctx.link(src, name)
        else:
            dtype = exact_dtype(subtype)
            with (
                ctx.output(name) as tmp,
                sf.SoundFile(str(src)) as fin,
                sf.SoundFile(
                    str(tmp),
                    "w",
                    samplerate=info.samplerate,
                    channels=info.channels,
                    subtype=subtype,
                    format=fmt.upper(),
                ) as fout,
            ):
                fin.seek(start)
                remaining = stop - start
                while remaining > 0:
                    block = fin.read(min(BLOCK_FRAMES, remaining), dtype=dtype, always_2d=True)
                    if len(block) == 0:
                        raise ItemError(
                            f"file ended {remaining} frames early: truncated or corrupt"
                        )
                    fout.write(block)
                    remaining -= len(block)
            audio = ctx.relpath(name)
        out = self._record(record, audio, start, stop, info.frames, info.samplerate)
        return [{**out, **codec_fields(fmt, subtype)}]

    def _record(self, record: Record, audio: str, start: int, stop: int, n: int, sr: int) -> Record:
        return {
            **record,
            "audio": audio,
            "duration": round((stop - start) / sr, 6),
            "offset": round(float(record.get("offset") or 0.0) + start / sr, 6),
            "trim": {"head": round(start / sr, 6), "tail": round((n - stop) / sr, 6)},
            **child_offset(record, start / sr),
        }

    def _trim_with_ffmpeg(self, record: Record, src: Path, ctx: ItemContext) -> list[Record]:
        """For containers libsndfile cannot read (m4a, mp4, webm): ffmpeg's sample-exact atrim."""
        import ffmpeg

        sr = int(record["sample_rate"])
        n = int(round(float(record["duration"]) * sr))
        start, stop = trim_bounds(n, sr=sr, head=self.params.head, tail=self.params.tail)
        if stop <= start:
            ctx.reject(
                record,
                f"duration {record['duration']:.2f} s is not longer than head + tail = "
                f"{self.params.head + self.params.tail:.2f} s",
                duration=record["duration"],
            )
            return []
        name = f"{record['id']}.wav"
        with ctx.output(name) as tmp:
            stream = (
                ffmpeg.input(str(src))["a:0"]
                .filter("atrim", start_sample=start, end_sample=stop)
                .output(str(tmp), acodec="pcm_s16le", f="wav", ar=sr)
                .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
                .overwrite_output()
            )
            try:
                stream.run(capture_stdout=True, capture_stderr=True)
            except ffmpeg.Error as exc:
                raise ItemError(f"ffmpeg could not trim it: {last_line(exc.stderr)}") from None
            import soundfile as sf

            frames = sf.info(str(tmp)).frames
        out = self._record(record, ctx.relpath(name), start, start + frames, n, sr)
        return [{**out, **codec_fields("wav", "PCM_16")}]

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"soundfile": version("soundfile"), "ffmpeg": ffmpeg_version()}
