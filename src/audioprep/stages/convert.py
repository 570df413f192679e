"""convert: Convert any media ffmpeg reads (mp4, m4a, webm, mp3, ogg, flac, wav) to PCM wav or flac.

Decodes with ffmpeg (through ffmpeg-python) at a chosen rate and channel count.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from audioprep.core.media import ffmpeg_version, last_line, require_ffmpeg
from audioprep.core.params import param
from audioprep.core.stage import ItemContext, MapStage
from audioprep.errors import ItemError, UsageError
from audioprep.manifests.offsets import child_offset
from audioprep.manifests.records import Record

FORMATS = ("wav", "flac")
SAMPLE_FORMATS = ("s16", "s24", "f32")
_WAV_CODECS = {"s16": "pcm_s16le", "s24": "pcm_s24le", "f32": "pcm_f32le"}


class ConvertStage(MapStage):
    """Example: `audioprep convert raw/ wav16k/ --sample-rate 16000 --channels 1`"""

    name = "convert"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        sample_rate: int | None = param(
            None,
            help="Output rate in Hz (default: keep).",
            flags=("--sample-rate", "-r"),
            min=1000,
            max=384000,
        )
        channels: int | None = param(
            None,
            help="Output channels, 1 = mono (default: keep).",
            flags=("--channels", "-c"),
            min=1,
            max=32,
        )
        format: str = param("wav", help="wav or flac.", flags=("--format", "-f"), choices=FORMATS)
        sample_format: str = param(
            "s16", help="s16, s24 or f32 (f32: wav only).", choices=SAMPLE_FORMATS
        )

    def check(self) -> None:
        p = self.params
        if p.format == "flac" and p.sample_format == "f32":
            raise UsageError("flac stores integers only: use --sample-format s16 or s24 with flac.")
        require_ffmpeg()

    def _output_args(self) -> dict[str, Any]:
        p = self.params
        args: dict[str, Any] = {"map": "0:a:0", "map_metadata": -1, "f": p.format}
        if p.format == "wav":
            args["acodec"] = _WAV_CODECS[p.sample_format]
            args["rf64"] = "auto"  # files over 4 GiB stay valid
        else:
            args["acodec"] = "flac"
            args["sample_fmt"] = "s16" if p.sample_format == "s16" else "s32"
            if p.sample_format == "s24":
                args["bits_per_raw_sample"] = 24
        if p.sample_rate:
            args["ar"] = p.sample_rate
        if p.channels:
            args["ac"] = p.channels
        return args

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        import ffmpeg
        import soundfile as sf

        src = ctx.input_audio(record)
        name = f"{record['id']}.{self.params.format}"
        args = self._output_args()
        with ctx.output(name) as tmp:
            stream = (
                ffmpeg.input(str(src))
                .output(str(tmp), **args)
                .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
                .overwrite_output()
            )
            try:
                stream.run(capture_stdout=True, capture_stderr=True)
            except ffmpeg.Error as exc:
                raise ItemError(f"ffmpeg could not convert it: {last_line(exc.stderr)}") from None
            info = sf.info(str(tmp))
            decoded = info.frames / info.samplerate
            declared = float(record.get("duration") or 0.0)
            if declared > 0 and decoded < declared - max(0.5, 0.02 * declared):
                raise ItemError(
                    f"truncated or corrupt: decoded {decoded:.2f} s of the {declared:.2f} s "
                    "the file declares"
                )
            if info.frames == 0:
                raise ItemError("decoded to no audio at all (empty or corrupt stream)")
        return [
            {
                **record,
                "audio": ctx.relpath(name),
                "duration": round(decoded, 6),
                "sample_rate": info.samplerate,
                "channels": info.channels,
                "codec": args["acodec"],
                "container": self.params.format,
                **child_offset(record),
            }
        ]

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"ffmpeg": ffmpeg_version(), "ffmpeg-python": version("ffmpeg-python")}
