"""separate: Remove background music: keep the speech (or vocals) of every item.

DeepFilterNet3 in-process (default) or Spleeter's pretrained model in its own environment,
windowed with cross-fades, output at the item's own format, at any length.
"""

from __future__ import annotations

import atexit
import dataclasses
import subprocess
from pathlib import Path
from typing import Any

from audioprep.core.media import codec_fields, decode_chunks, last_line, require_ffmpeg, sound_info
from audioprep.core.params import param
from audioprep.core.stage import ItemContext, MapStage, WorkerContext
from audioprep.engines.models import MODEL_DIR_HELP, model_dir
from audioprep.errors import ItemError, UsageError
from audioprep.manifests.records import Record

SR = 44100
MODELS = ("spleeter:2stems", "spleeter:4stems", "spleeter:5stems")


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
    """Spleeter runs in its own environment (`make spleeter`), in windows cross-faded together, so
    files of any length separate with bounded memory; the output has the item's own rate,
    channels and length to the sample.

    Example: `audioprep separate wav/ vocals/ --keep-accompaniment`
    """

    name = "separate"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        model: str = param(
            "spleeter:2stems",
            help="spleeter:2stems, 4stems or 5stems (vocals kept).",
            choices=MODELS,
        )
        keep_accompaniment: bool = param(
            False, help="Also write the accompaniment.", flags=("--keep-accompaniment",)
        )
        window: float = param(30.0, help="Seconds per Spleeter call (bounds memory).")
        overlap: float = param(2.0, help="Seconds cross-faded between windows.")
        device: str = param("cpu", help="cpu or cuda.", choices=("cpu", "cuda"))
        model_dir: str = param("", help=MODEL_DIR_HELP, path=True)
        engine: str = param(
            "dfn3",
            help="dfn3 (DeepFilterNet3: speech kept, no TensorFlow; default, see the docs) or "
            "spleeter (--model, its own TensorFlow environment).",
            metavar="ENGINE",
        )

    def _model_dir(self) -> Path:
        return model_dir(self.params.model_dir or None)

    def check(self) -> None:
        from audioprep.engines.separate.spleeter import check_model, spleeter_python

        p = self.params
        if p.engine != "spleeter":  # engines on the engine seam (Spleeter's own checks below)
            from audioprep.engines.base import engine_class, info

            info("separate", p.engine)  # UsageError naming the engines
            if p.model != MODELS[0]:
                raise UsageError(
                    f"--model {p.model} chooses Spleeter's model: add --engine spleeter."
                )
            if p.device not in engine_class("separate", p.engine).devices:
                raise UsageError(
                    f"--device {p.device}: the {p.engine} engine runs on the CPU only."
                )
            if not 5 <= p.window <= 600 or not 0 <= p.overlap < p.window / 2:
                raise UsageError("--window must be 5 to 600 s and --overlap under half of it.")
            require_ffmpeg()
            return
        if p.model not in MODELS:
            raise UsageError(f"--model must be one of {', '.join(MODELS)}.")
        if not 5 <= p.window <= 600 or not 0 <= p.overlap < p.window / 2:
            raise UsageError("--window must be 5 to 600 s and --overlap under half of it.")
        if p.device not in ("cpu", "cuda"):
            raise UsageError("--device must be cpu or cuda.")
        require_ffmpeg()
        check_model(self._model_dir(), p.model)
        if not spleeter_python().is_file():
            from audioprep.engines.separate.spleeter import SpleeterWorker

            SpleeterWorker(model_dir=self._model_dir(), model=p.model)  # raises the message

    def setup(self, ctx: WorkerContext) -> None:
        from audioprep.engines.separate.spleeter import SpleeterWorker

        if self.params.engine != "spleeter":
            from audioprep.engines.base import Settings, load

            settings = Settings(device=self.params.device, threads=ctx.threads)
            self.worker = load("separate", self.params.engine, settings)
            atexit.register(self.worker.close)
            return

        self.worker = SpleeterWorker(
            model_dir=self._model_dir(),
            model=self.params.model,
            threads=ctx.threads,
            device=self.params.device,
        )
        atexit.register(self.worker.close)

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
        rate = getattr(self.worker, "SR", SR)  # the engine's own rate and channels
        ch = getattr(self.worker, "CHANNELS", 2)
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
        if self.params.engine != "spleeter":
            from audioprep.engines.base import engine_class

            return engine_class("separate", self.params.engine).versions()
        return {"spleeter": "2.4.2 (own environment)"}
