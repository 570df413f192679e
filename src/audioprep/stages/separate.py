"""separate: Remove background music: keep the speech (or vocals) of every item.

DeepFilterNet3 in-process (default) or Spleeter's pretrained model in its own environment,
windowed with cross-fades, output at the item's own format, at any length.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

from audioprep.core.media import codec_fields, decode_chunks, last_line, require_ffmpeg, sound_info
from audioprep.core.params import device_param, param
from audioprep.core.stage import ItemContext, MapStage, WorkerContext
from audioprep.engines import base as engines
from audioprep.engines.models import model_dir, model_dir_option
from audioprep.engines.separate.base import model_choices
from audioprep.errors import ItemError, UsageError
from audioprep.manifests.records import Record

SR = 44100


def _encoder(
    path: Path, sr: int, channels: int, codec: str, in_sr: int = SR, in_channels: int = 2
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "f32le",
            "-ar",
            str(in_sr),
            "-ac",
            str(in_channels),
            "-i",
            "pipe:0",
            "-ar",
            str(sr),
            "-ac",
            str(channels),
            "-c:a",
            codec,
            "-f",
            "wav",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


class SeparateStage(MapStage):
    """The separator (DeepFilterNet3 in-process, or Spleeter in its own environment: `make
    spleeter`) runs in windows cross-faded together, so files of any length separate with
    bounded memory; the output has the item's own rate, channels and length to the sample.

    Example: `audioprep separate wav/ vocals/ --keep-accompaniment`
    """

    name = "separate"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        model: str = param(
            "spleeter:2stems",
            help="spleeter:2stems, 4stems or 5stems (vocals kept).",
            choices=model_choices,
        )
        keep_accompaniment: bool = param(
            False, help="Also write the accompaniment.", flags=("--keep-accompaniment",)
        )
        window: float = param(
            30.0, help="Seconds per separator call (bounds memory).", min=5.0, max=600.0
        )
        overlap: float = param(2.0, help="Seconds cross-faded between windows.", min=0.0)
        device: str = device_param()
        model_dir: str = model_dir_option()
        engine: str = param(
            "dfn3",
            help="dfn3 (DeepFilterNet3: speech kept, no TensorFlow; default, see the docs) or "
            "spleeter (--model, its own TensorFlow environment).",
            choices=lambda: engines.names("separate"),
            metavar="ENGINE",
        )

    def _model_dir(self) -> Path:
        return model_dir(self.params.model_dir or None)

    def _engine(self) -> str:
        """The separator ``--engine`` names (``--model ENGINE:MODEL`` is that engine's model)."""
        return self.params.engine

    def settings(self, threads: int = 1) -> engines.Settings:
        p = self.params
        return engines.Settings(
            device=p.device,
            model_dir=self._model_dir(),
            threads=threads,
            options={"model": p.model},
        )

    def check(self) -> None:
        p = self.params
        default_model = type(self).Params.__dataclass_fields__["model"].default
        if p.model != default_model and p.model.partition(":")[0] != p.engine:
            raise UsageError(
                f"--model {p.model} is a model of the {p.model.partition(':')[0]} engine: "
                f"add --engine {p.model.partition(':')[0]}."
            )
        if not p.overlap < p.window / 2:
            raise UsageError("--overlap must be under half of --window.")
        require_ffmpeg()
        engines.engine_class("separate", self._engine()).check(self.settings())

    def setup(self, ctx: WorkerContext) -> None:
        self.worker = engines.load("separate", self._engine(), self.settings(ctx.threads))

    def teardown(self) -> None:
        worker = self.__dict__.pop("worker", None)
        if worker is not None:
            worker.close()

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        import numpy as np
        import soundfile as sf

        from audioprep.dsp.overlap import crossfade_windows

        p = self.params
        src = ctx.input_audio(record)
        try:
            info = sound_info(src)
            sr, channels, n = info.samplerate, info.channels, info.frames
        except ItemError:  # compressed containers: trust the manifest
            sr, channels = int(record["sample_rate"]), int(record["channels"])
            n = int(round(float(record["duration"]) * sr))
        stems = ["vocals"] + (["accompaniment"] if p.keep_accompaniment else [])
        names = {s: f"{record['id']}{'' if s == 'vocals' else '.' + s}.wav" for s in stems}
        tmp = {s: ctx.tmp_dir / f"{record['id']}.{s}.44k.wav" for s in stems}
        ctx.tmp_dir.mkdir(parents=True, exist_ok=True)
        codec = "pcm_s16le"
        rate = int(self.worker.sample_rate)  # the engine's own rate and channels
        ch = int(self.worker.channels)
        encoders = {s: _encoder(tmp[s], sr, channels, codec, rate, ch) for s in stems}
        blocks = decode_chunks(
            src, chunk_frames=rate * 10, sample_rate=rate, channels=ch, sample_format="f32"
        )
        window, overlap = int(p.window * rate), int(p.overlap * rate)

        def run(x: Any) -> Any:
            result = self.worker.separate(x)
            accompaniment = result.get("accompaniment")
            if accompaniment is None:  # 4 and 5 stems: everything that is not the voice
                accompaniment = sum(v for k, v in result.items() if k != "vocals")
            return np.concatenate([result["vocals"], accompaniment], axis=1)

        try:
            for out in crossfade_windows(blocks, run, window=window, overlap=overlap):
                out = out.astype("<f4")
                encoders["vocals"].stdin.write(out[:, :ch].tobytes())
                if p.keep_accompaniment:
                    encoders["accompaniment"].stdin.write(out[:, ch:].tobytes())
        finally:  # a decoding failure raises here, after the encoders are closed
            blocks.close()
            for enc in encoders.values():
                enc.stdin.close()
                enc.wait()
        for s, enc in encoders.items():
            if enc.returncode != 0:
                raise ItemError(f"ffmpeg could not write the {s}: {last_line(enc.stderr.read())}")
        result: dict[str, str] = {}
        for s in stems:  # exactly the input's length, to the sample
            with (
                ctx.output(names[s]) as final,
                sf.SoundFile(str(tmp[s])) as fin,
                sf.SoundFile(
                    str(final), "w", samplerate=sr, channels=channels, subtype="PCM_16"
                ) as fout,
            ):
                left = n
                while left > 0:
                    block = fin.read(min(left, 1 << 18), dtype="int16", always_2d=True)
                    if not len(block):
                        fout.write(np.zeros((left, channels), dtype="int16"))
                        break
                    fout.write(block)
                    left -= len(block)
            tmp[s].unlink()
            result[s] = ctx.relpath(names[s])
        out_record = {
            **record,
            "audio": result["vocals"],
            "duration": round(n / sr, 6),
            "sample_rate": sr,
            "channels": channels,
            **codec_fields("wav", "PCM_16"),
            "separate": {
                "model": p.model if p.engine == "spleeter" else p.engine,
                "stem": "vocals",
                "engine": p.engine,
            },
        }
        if p.keep_accompaniment:
            out_record["accompaniment"] = result["accompaniment"]
        return [out_record]

    def params_dict(self) -> dict[str, Any]:
        data = super().params_dict()
        data["model_dir"] = str(self._model_dir())
        return data

    def tool_versions(self) -> dict[str, str]:
        return engines.engine_class("separate", self._engine()).versions()
