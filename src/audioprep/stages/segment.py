"""segment: Label speech, music, noise and silence (noEnergy) in every item with inaSpeechSegmenter.

Adds ``segments`` (label, start, end), ``label_seconds`` and the ASMR ``comment`` flag.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from audioprep.core.media import require_ffmpeg
from audioprep.core.params import device_param, param
from audioprep.core.stage import ItemContext, MapStage, RecordField, WorkerContext
from audioprep.engines import base as engines
from audioprep.engines.models import model_dir, model_dir_option
from audioprep.engines.segment.base import Segmenter
from audioprep.manifests.records import Record

SPEECH_LABELS = frozenset({"speech", "male", "female"})
#: Stage option -> the Settings option a segmenter reads (recorded only for engines that do).
ENGINE_OPTIONS = {
    "vad_engine": "vad_engine",
    "detect_gender": "detect_gender",
    "cnn_batch_size": "batch_size",
    "model_dir": "model_dir",
}


def label_seconds(segments: list[Record]) -> dict[str, float]:
    """Seconds per label of a segment list."""
    totals: dict[str, float] = {}
    for seg in segments:
        totals[seg["label"]] = totals.get(seg["label"], 0.0) + seg["end"] - seg["start"]
    return {k: round(v, 2) for k, v in sorted(totals.items())}


class SegmentStage(MapStage):
    """Adds `segments` ([{label, start, end}]), `label_seconds`, `speech_seconds` and the ASMR
    attribute `source.comment` (1 when the item contains speech). Long files are processed in
    windows with bounded memory and the same labels as a whole-file run.

    Example: `AUDIOPREP_MODEL_DIR=../shared/models audioprep segment wav16k/ labelled/`
    """

    name = "segment"
    version = "1"
    record_fields = (
        RecordField(
            "speech_seconds", "float", "Seconds labelled speech.", unit="s", histogram=True
        ),
        RecordField(
            "segments", "list", "The labelled segments [{label, start, end}].", export="none"
        ),
        RecordField("label_seconds", "object", "Seconds per label.", export="json"),
    )

    @dataclasses.dataclass(frozen=True)
    class Params:
        engine: str = param(
            "ina",
            help="ina (inaSpeechSegmenter) or silero (speech/nonspeech, faster).",
            choices=lambda: engines.names("segment"),
        )
        vad_engine: str = param(
            "smn", help="smn: speech/music/noise; sm: speech/music.", choices=("smn", "sm")
        )
        detect_gender: bool | None = param(  # None: when the gender model is in the model dir
            None,
            help="Label speech male/female (default: when the gender model is present).",
            flags=("--detect-gender/--no-detect-gender",),
        )
        cnn_batch_size: int = param(
            256,
            help="CNN patches per forward pass (ina). Items batched with --batch-size share "
            "these passes.",
            min=1,
        )
        device: str = device_param()
        window: float = param(
            300.0, help="Seconds of audio per CNN window (memory bound).", min=10.0
        )
        model_dir: str = model_dir_option()

    def _model_dir(self) -> Path:
        return model_dir(self.params.model_dir or None)

    def settings(self, threads: int = 1) -> engines.Settings:
        """The engine's settings (``detect_gender`` None: the engine decides)."""
        p = self.params
        return engines.Settings(
            device=p.device,
            model_dir=self._model_dir(),
            threads=threads,
            options={
                "vad_engine": p.vad_engine,
                "detect_gender": p.detect_gender,
                "batch_size": p.cnn_batch_size,
            },
        )

    def check(self) -> None:
        p = self.params
        engines.engine_class("segment", p.engine).check(self.settings())
        require_ffmpeg()

    def setup(self, ctx: WorkerContext) -> None:
        self.engine: Segmenter = engines.load(
            "segment", self.params.engine, self.settings(ctx.threads)
        )

    def teardown(self) -> None:
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.close()

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        src = ctx.input_audio(record)
        return self._output(record, ctx, src, self.engine.segment(src, window_s=self.params.window))

    def process_batch(self, records: list[Record], ctxs: list[ItemContext]) -> list[list[Record]]:
        """Several items at once: inaSpeechSegmenter predicts their CNN patches in shared
        batches (``--batch-size`` items per batch); labels equal those of one item at a time."""
        srcs = [c.input_audio(r) for r, c in zip(records, ctxs, strict=True)]
        segs = self.engine.segment_many(srcs, window_s=self.params.window)
        return [
            self._output(r, c, src, s)
            for r, c, src, s in zip(records, ctxs, srcs, segs, strict=True)
        ]

    def _output(
        self, record: Record, ctx: ItemContext, src: Path, found: list[tuple[str, float, float]]
    ) -> list[Record]:
        segments = [{"label": label, "start": start, "end": end} for label, start, end in found]
        seconds = label_seconds(segments)
        comment = int(any(seg["label"] in SPEECH_LABELS for seg in segments))
        source = record.get("source")
        source = (
            {**source, "comment": comment} if isinstance(source, dict) else {"comment": comment}
        )
        audio = ctx.link(src, f"{record['id']}{src.suffix}")
        return [
            {
                **record,
                "audio": audio,
                "segments": segments,
                "label_seconds": seconds,
                "speech_seconds": round(
                    sum(v for k, v in seconds.items() if k in SPEECH_LABELS), 2
                ),
                "source": source,
            }
        ]

    def params_dict(self) -> dict[str, Any]:
        """The parameters; of the engine options, only those the engine reads, resolved
        (``detect_gender`` as decided, the model directory as found)."""
        data = super().params_dict()
        used = engines.engine_class("segment", self.params.engine).used_options(self.settings())
        for key, option in ENGINE_OPTIONS.items():
            if option not in used:
                data.pop(key, None)
            else:
                value = used[option]
                data[key] = str(value) if isinstance(value, Path) else value
        return data

    def tool_versions(self) -> dict[str, str]:
        return engines.engine_class("segment", self.params.engine).versions()
