"""slice: Cut labelled segments into clips by duration, or cut fixed-length chunks.

Cuts each item's chosen labels into clips (``--labels``), into chunks (``--chunk``), or into
random excerpts (``--random``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from audioprep.core.media import codec_fields, exact_dtype, output_format, sound_info
from audioprep.core.params import param
from audioprep.core.stage import ItemContext, MapStage
from audioprep.dsp.slicing import (
    Span,
    pad_span,
    plan_chunks,
    random_excerpts,
    select_and_merge,
    split_long,
    to_samples,
)
from audioprep.errors import ItemError, UsageError
from audioprep.manifests.offsets import child_offset
from audioprep.manifests.records import Record

HOP = 0.01  # energy frames for finding quiet split points
#: ``--random`` at most: excerpts per item (each a file and a record), checked before any work.
MAX_RANDOM = 10_000
#: ``--duration`` at least (s), so an excerpt holds samples at any rate.
MIN_DURATION = 0.01


class SliceStage(MapStage):
    """Each clip records `parent`, `offset` (start in the parent, s), `label` and its share of the
    parent's `segments`. Segments shorter than the minimum go to rejected.jsonl.

    Example: `audioprep slice labelled/ clips/ --labels male,female --max-duration 15`
    or `audioprep slice wav/ chunks/ --chunk 30 --keep-last`
    or `audioprep slice wav/ excerpts/ --random 3 --duration 10 --seed 1`
    """

    name = "slice"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        labels: tuple[str, ...] = param(
            ("speech", "male", "female"), help="Comma-separated labels to cut into clips."
        )
        min_duration: float = param(1.5, help="Drop shorter segments (to rejected.jsonl).", min=0.0)
        max_duration: float = param(
            15.0, help="Split longer ones at a quiet point (padding included).", above=0.0
        )
        merge_gap: float = param(0.0, help="Join same-label segments this close (s).", min=0.0)
        pad: float = param(0.0, help="Context kept on each side (s), never past the file.", min=0.0)
        chunk: float | None = param(
            None, help="Cut fixed-length chunks of this many seconds instead.", above=0.0
        )
        drop_last: bool = param(
            True, help="With --chunk: drop a short last chunk.", flags=("--drop-last/--keep-last",)
        )
        search: float = param(
            3.0, help="Seconds before --max-duration searched for a quiet split point.", min=0.0
        )
        random: int | None = param(
            None,
            help="Cut N random excerpts of --duration seconds per item instead (at most 10000).",
            min=1,
        )
        duration: float = param(10.0, help="With --random: excerpt length (s).", above=0.0)
        seed: int = param(0, help="With --random: seed (each item draws from it and its id).")
        overlap_ok: bool = param(False, help="With --random: excerpts may overlap.")
        short: str = param(
            "reject",
            help="With --random: items shorter than --duration are rejected, or kept whole.",
            choices=("reject", "keep"),
        )

    def check(self) -> None:
        p = self.params
        if p.random is not None:
            _check_random(p)
            return
        if p.chunk is not None:
            return
        if not p.max_duration > 2 * p.pad:
            raise UsageError("--max-duration must be longer than twice --pad.")
        if p.min_duration > p.max_duration - 2 * p.pad:
            raise UsageError("--min-duration must not exceed --max-duration minus twice --pad.")
        if not p.labels:
            raise UsageError("--labels needs at least one label.")

    def _spans(self, record: Record, total: float, energy: Any, ctx: ItemContext) -> list[Span]:
        p = self.params
        if p.chunk is not None:
            chunks, dropped = plan_chunks(total, chunk=p.chunk, drop_last=p.drop_last)
            if dropped is not None and dropped.duration > 0:
                ctx.reject(
                    {
                        "id": f"{record['id']}_{len(chunks):04d}",
                        "parent": record["id"],
                        "offset": round(dropped.start, 6),
                        **child_offset(record, dropped.start),
                        "duration": round(dropped.duration, 6),
                    },
                    f"last chunk is {dropped.duration:.2f} s, shorter than --chunk {p.chunk:g} s "
                    "(--keep-last keeps it)",
                )
            return chunks
        if "segments" not in record:
            raise ItemError("has no 'segments': run `audioprep segment` first, or use --chunk")
        segments = _checked_segments(record["segments"], total)
        budget = p.max_duration - 2 * p.pad
        spans: list[Span] = []
        chosen = select_and_merge(segments, labels=p.labels, merge_gap=p.merge_gap)
        if not chosen:
            ctx.reject(record, f"no segment labelled {', '.join(p.labels)}")
            return []
        for seg in chosen:
            for piece in split_long(
                seg,
                max_duration=budget,
                min_duration=p.min_duration,
                energy=energy,
                search=p.search,
            ):
                if piece.duration < p.min_duration:
                    ctx.reject(
                        {
                            "id": f"{record['id']}@{piece.start:.2f}",
                            "parent": record["id"],
                            "offset": round(piece.start, 6),
                            **child_offset(record, piece.start),
                            "duration": round(piece.duration, 6),
                            "label": piece.label,
                        },
                        f"{piece.label} segment of {piece.duration:.2f} s is shorter than "
                        f"--min-duration {p.min_duration:g} s",
                    )
                    continue
                spans.append(pad_span(piece, pad=p.pad, total=total))
        return spans

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        import numpy as np
        import soundfile as sf

        src = ctx.input_audio(record)
        info = sound_info(src)
        sr, n = info.samplerate, info.frames
        total = n / sr

        def energy(t0: float, t1: float) -> tuple[Any, float, float]:
            a, b = int(t0 * sr), min(n, int(np.ceil(t1 * sr)))
            with sf.SoundFile(str(src)) as fh:
                y = _read_span(fh, a, b - a, "float32")
                y = y.mean(axis=1) if y is not None else np.zeros(0, np.float32)
            hop = max(1, int(HOP * sr))
            frames = len(y) // hop
            rms = (
                np.sqrt(np.mean(y[: frames * hop].reshape(frames, hop) ** 2, axis=1))
                if frames
                else y[:0]
            )
            return rms, hop / sr, a / sr

        if self.params.random is not None:
            spans = _random_spans(record, n, sr, self.params, ctx)
        else:
            spans = self._spans(record, total, energy, ctx)
        fmt, subtype = output_format(info)
        dtype = exact_dtype(subtype)
        out: list[Record] = []
        base = {k: v for k, v in record.items() if k not in ("segments", "label_seconds")}
        with sf.SoundFile(str(src)) as fin:
            for index, span in enumerate(spans):
                a, b = to_samples(span, sr=sr, n=n)
                if b <= a:
                    continue
                clip_id = f"{record['id']}_{index:04d}"
                name = f"{clip_id}.{fmt}"
                data = _read_span(fin, a, b - a, dtype)
                if data is None or len(data) == 0:
                    # the header promised more than the file holds (a truncated file)
                    ctx.reject(
                        {
                            "id": clip_id,
                            "parent": record["id"],
                            "offset": round(a / sr, 6),
                            **child_offset(record, a / sr),
                            "duration": round((b - a) / sr, 6),
                        },
                        f"clip {a / sr:.2f}-{b / sr:.2f} s lies past the end of the audio that "
                        f"can be decoded: the file holds less than its header's {total:.2f} s "
                        "(truncated?)",
                    )
                    continue
                b = a + len(data)  # a truncated file: what was read, not what was asked
                with ctx.output(name) as tmp:
                    sf.write(
                        str(tmp),
                        data,
                        sr,
                        subtype=subtype,
                        format=fmt.upper(),
                    )
                clip: Record = {
                    **base,
                    "id": clip_id,
                    "audio": ctx.relpath(name),
                    "duration": round((b - a) / sr, 6),
                    "parent": record["id"],
                    "offset": round(a / sr, 6),
                    **child_offset(record, a / sr),
                    "label": span.label,
                    **codec_fields(fmt, subtype),
                    "slice": {"index": index, "start_sample": a, "end_sample": b},
                }
                if "segments" in record:
                    clip["segments"] = _rebase(record["segments"], a / sr, b / sr)
                out.append(clip)
        return out

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"soundfile": version("soundfile")}


def _read_span(fh: Any, start: int, frames: int, dtype: str) -> Any:
    """``frames`` frames from ``start`` as ``(m, channels)``, ``m`` shorter (or None) where the
    file ends before its header says (libsndfile's seek then fails with ``psf_fseek``)."""
    import soundfile as sf

    try:
        fh.seek(start)
        return fh.read(frames, dtype=dtype, always_2d=True)
    except (sf.LibsndfileError, RuntimeError):
        return None


def _rebase(segments: list[Record], start: float, end: float) -> list[Record]:
    """The parent's segments that overlap ``[start, end)``, clipped and shifted to clip time."""
    out = []
    for seg in segments:
        a, b = max(seg["start"], start), min(seg["end"], end)
        if b > a:
            out.append(
                {"label": seg["label"], "start": round(a - start, 6), "end": round(b - start, 6)}
            )
    return out


def _checked_segments(raw: Any, total: float) -> list[Span]:
    """The record's segments as spans, each checked: numbers, start < end, inside the audio
    (a little slack at the end for rounding); an ItemError names the first bad one."""
    if not isinstance(raw, list):
        raise ItemError("'segments' must be a list of {start, end, label}")
    spans = []
    for i, seg in enumerate(raw):
        try:
            start, end, label = float(seg["start"]), float(seg["end"]), str(seg["label"])
        except (TypeError, KeyError, ValueError):
            raise ItemError(f"segment {i} is not {{start, end, label}} with numbers") from None
        if not (0 <= start <= end) or end != end:
            raise ItemError(f"segment {i} ({start:g}-{end:g} s) is not a valid time span")
        if start >= total:
            raise ItemError(
                f"segment {i} ({label} {start:.2f}-{end:.2f} s) starts past the end of the "
                f"audio ({total:.2f} s): the segments do not belong to this file"
            )
        spans.append(Span(start, end, label))
    return spans


def _check_random(p: Any) -> None:
    if p.chunk is not None:
        raise UsageError("--random and --chunk cut in different ways: give one of them.")
    if p.random < 1:
        raise UsageError("--random must be at least 1 excerpt.")
    if p.random > MAX_RANDOM:
        raise UsageError(
            f"--random {p.random} is more than the {MAX_RANDOM} excerpts an item may give; "
            "cut fewer, or use --chunk for a whole file."
        )
    if not p.duration >= MIN_DURATION:
        raise UsageError(f"--duration must be at least {MIN_DURATION:g} seconds.")
    if p.short not in ("reject", "keep"):
        raise UsageError("--short must be reject or keep.")


def _random_spans(record: Record, n: int, sr: int, p: Any, ctx: ItemContext) -> list[Span]:
    """``--random N``: N excerpts of ``--duration`` s at random places (seeded per item id);
    an item shorter than that is rejected, or kept whole with ``--short keep``."""
    length = round(p.duration * sr)
    if n < length:
        if p.short == "keep":
            return [Span(0.0, n / sr, record.get("label"))]
        ctx.reject(
            record,
            f"{n / sr:.2f} s is shorter than --duration {p.duration:g} s (--short keep keeps it)",
        )
        return []
    bounds = random_excerpts(
        n,
        count=p.random,
        length=length,
        seed=p.seed,
        key=str(record["id"]),
        overlap_ok=p.overlap_ok,
    )
    return [Span(a / sr, b / sr, record.get("label")) for a, b in bounds]
