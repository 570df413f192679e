"""repeats: Find and cut the jingles, ads and outros that recur across a source's items.

Groups items by their feed, playlist or channel (``--group-by``), fingerprints them (landmark
hashes of spectral peak pairs), finds the audio that at least ``--min-items`` items of a group
share, wherever it sits, and cuts it out sample-exactly; each cut is recorded in the item's
``repeats`` field. A repeat must match as audio (the same recording), not as words.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

from audioprep.core.params import param
from audioprep.core.stage import CorpusStage, DecideContext, ItemContext, Output, WorkerContext
from audioprep.errors import ItemError, UsageError
from audioprep.manifests.layout import DECISION_FILE
from audioprep.manifests.offsets import child_offset, seconds_field
from audioprep.manifests.records import Record

WHERE = ("head", "tail", "any")
#: Containers read with libsndfile (sample-exact seeking); anything else is decoded by ffmpeg,
#: as the fingerprints were (audioprep.engines.fingerprint.landmarks).
SNDFILE_FORMATS = ("WAV", "WAVEX", "RF64", "FLAC", "AIFF")
BLOCK_FRAMES = 1 << 18
#: Fields tried in turn for the default grouping: the feed, playlist or channel of an item.
GROUP_FIELDS = (
    "source.playlist_url",
    "source.playlist",
    "source.uploader_url",
    "source.author",
    "source.url",
)


def field_value(record: Record, dotted: str) -> Any:
    """``record["a"]["b"]`` for ``"a.b"``; None where a part is missing.

    >>> field_value({"source": {"author": "Ann"}}, "source.author")
    'Ann'
    >>> field_value({"source": {}}, "source.author") is None
    True
    """
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def group_key(record: Record, group_by: str | None) -> str:
    """The group an item's repeats are looked for in.

    >>> group_key({"source": {"author": "Ann", "url": "u"}}, None)
    'source.author=Ann'
    >>> group_key({"source": {"path": "/a/b.wav"}}, None), group_key({"x": 1}, "all")
    ('all', 'all')
    """
    if group_by == "all":
        return "all"
    for name in (group_by,) if group_by else GROUP_FIELDS:
        value = field_value(record, name)
        if value not in (None, ""):
            return f"{name}={value}"
    return "all" if not group_by else f"{group_by}=(missing)"


def position(start: float, end: float, duration: float, edge: float) -> str:
    """``head``, ``tail`` or ``middle`` for a stretch ``start..end`` of an item: head when it
    starts within ``edge`` seconds (at most a quarter of the item) of the start, tail when it
    ends that close to the end.

    >>> position(3.0, 9.0, 60.0, 30.0), position(50.0, 60.0, 60.0, 5.0), position(20, 25, 60, 30)
    ('head', 'tail', 'middle')
    """
    edge = min(edge, duration / 4)
    at_head = start <= edge
    at_tail = end >= duration - edge
    if at_head and at_tail:
        return "head" if start <= duration - end else "tail"
    return "head" if at_head else "tail" if at_tail else "middle"


class RepeatsStage(CorpusStage):
    """Each cut is listed under the item's `repeats` field (where, which recurring segment it
    matched); `decision.json` lists every recurring segment with its occurrences. Items of a
    group with nothing recurring are passed on unchanged (hard-linked).

    Example: `audioprep repeats wav16k/ no-jingles/ --min-items 3 --where head,tail`
    """

    name = "repeats"
    outputs = (
        Output("fingerprints", "each item's fingerprint (ID.npz)", folder=True, pruned=True),
    )
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        group_by: str | None = param(
            None,
            help="Field that groups items (dotted, e.g. source.author), or all; "
            "default: the feed, playlist or channel.",
            metavar="FIELD",
        )
        min_items: int = param(2, help="Cut audio recurring in at least this many items.", min=2)
        min_duration: float = param(2.0, help="Shortest repeat to cut (s).", min=0.1)
        max_duration: float = param(
            120.0,
            help="Longest repeat to cut (s); longer shared audio is dedupe's business.",
            min=0.1,
        )
        where: tuple[str, ...] = param(
            ("any",), help="Where repeats are cut: head, tail and/or any.", choices=WHERE
        )
        edge: float = param(
            30.0,
            help="Head/tail: within this many seconds (at most a quarter of the item).",
            min=0.0,
        )
        similarity: float = param(
            0.7, help="Frame check: aligned frames agree at this correlation.", min=0.05, max=0.99
        )
        dry_run: bool = param(
            False, help="Annotate the repeats found, cut nothing.", flags=("--dry-run",)
        )
        min_keep: float = param(
            0.5, help="Reject an item with less audio left than this (s).", min=0.0
        )

    def check(self) -> None:
        p = self.params
        if p.max_duration < p.min_duration:
            raise UsageError("--min-duration must be at most --max-duration.")
        if not p.where:
            raise UsageError("--where takes head, tail and/or any.")

    # -- workers ---------------------------------------------------------------------------
    def setup(self, ctx: WorkerContext) -> None:
        from audioprep.engines import base as engines

        self.fingerprinter = engines.load("fingerprint", "landmarks")

    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        from audioprep.engines.fingerprint.landmarks import FINGERPRINT_DIR

        ctx.folder(FINGERPRINT_DIR)  # a real folder (a symlink there is replaced)
        m = self.fingerprinter.fingerprint_file(
            ctx.input_audio(record), ctx.out_dir, record["id"], features=True
        )
        m["group"] = group_key(record, self.params.group_by)
        m["duration"] = float(record.get("duration") or m["seconds"])
        return m

    # -- main process ----------------------------------------------------------------------
    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        from audioprep.dsp.fingerprint import FPS, FRAME_SECONDS
        from audioprep.dsp.repeats import recurring_segments
        from audioprep.engines.fingerprint.landmarks import load_fingerprint

        p = self.params
        out = Path(ctx.out_dir)
        groups: dict[str, list[str]] = {}
        for item_id, m in measurements.items():
            groups.setdefault(m["group"], []).append(item_id)
        segments: list[dict[str, Any]] = []
        cuts: dict[str, list[dict[str, Any]]] = {}
        for group, ids in groups.items():
            if len(ids) < p.min_items:
                continue
            fps = [load_fingerprint(out, measurements[i]) for i in ids]
            found = recurring_segments(
                fps,
                min_items=p.min_items,
                min_frames=int(round(p.min_duration * FPS)),
                max_frames=int(round(p.max_duration * FPS)),
                similarity=p.similarity,
            )
            del fps
            for seg in found:
                label = f"R{len(segments) + 1}"
                occ = [
                    {
                        "id": ids[k],
                        "start": round(s * FRAME_SECONDS, 3),
                        "end": round(min(e * FRAME_SECONDS, measurements[ids[k]]["duration"]), 3),
                    }
                    for k, s, e in seg["occurrences"]
                ]
                for o in occ:
                    o["where"] = position(
                        o["start"], o["end"], measurements[o["id"]]["duration"], p.edge
                    )
                rep = max(occ, key=lambda o: (o["end"] - o["start"], -ids.index(o["id"])))
                segments.append(
                    {
                        "segment": label,
                        "group": group,
                        "items": seg["items"],
                        "seconds": round(rep["end"] - rep["start"], 3),
                        "similarity": seg["similarity"],
                        "occurrences": occ,
                    }
                )
                for o in occ:
                    if "any" not in p.where and o["where"] not in p.where:
                        continue
                    other = (
                        rep
                        if rep["id"] != o["id"]
                        else next((x for x in occ if x["id"] != o["id"]), rep)
                    )
                    cuts.setdefault(o["id"], []).append(
                        {
                            "start": o["start"],
                            "end": o["end"],
                            "where": o["where"],
                            "segment": label,
                            "matched": {k: other[k] for k in ("id", "start", "end")},
                        }
                    )
        for item_cuts in cuts.values():
            item_cuts.sort(key=lambda c: c["start"])
        decision = {
            "groups": {g: len(ids) for g, ids in groups.items()},
            "segments": segments,
            "cuts": cuts,
            "dry_run": p.dry_run,
        }
        return decision

    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        src = ctx.input_audio(record)
        cuts = decision["cuts"].get(record["id"], [])
        if not cuts or decision["dry_run"]:
            name = f"{record['id']}{src.suffix}"
            return [
                {
                    **record,
                    "audio": ctx.link(src, name),
                    "repeats": {"cuts": cuts, "removed": 0.0, "applied": False},
                }
            ]
        return self._cut(record, src, cuts, ctx)

    def _cut(
        self, record: Record, src: Path, cuts: list[dict[str, Any]], ctx: ItemContext
    ) -> list[Record]:
        import soundfile as sf

        from audioprep.core.media import codec_fields, exact_dtype, output_format

        seconds_field(record, "offset")  # a bad time field is this item's error, before any write
        child_offset(record)
        try:
            info = sf.info(str(src))
            readable = info.frames > 0 and info.format in SNDFILE_FORMATS
        except (sf.LibsndfileError, RuntimeError):
            readable = False
        if readable:
            sr, n, channels = info.samplerate, info.frames, info.channels
            fmt, subtype = output_format(info)
        else:
            sr, channels = int(record["sample_rate"]), int(record["channels"])
            n = None
            fmt, subtype = "wav", "PCM_16"
        ranges = merge_ranges([(c["start"], c["end"]) for c in cuts], sr=sr, n=n)
        name = f"{record['id']}.{fmt}"
        with ctx.output(name) as tmp:
            with sf.SoundFile(
                str(tmp),
                "w",
                samplerate=sr,
                channels=channels,
                subtype=subtype,
                format=fmt.upper(),
            ) as fout:
                if readable:
                    with sf.SoundFile(str(src)) as fin:
                        _copy_keeping(fin, fout, ranges, n, exact_dtype(subtype))
                else:
                    _copy_decoded(src, fout, ranges, sr, channels)
            kept = sf.info(str(tmp)).frames
        if kept < self.params.min_keep * sr:
            ctx.reject(
                record,
                f"only {kept / sr:.2f} s left after cutting {len(cuts)} repeat(s)",
                repeats={"cuts": cuts},
            )
            return []
        removed = sum(b - a for a, b in ranges)
        head = ranges[0][1] if ranges and ranges[0][0] == 0 else 0
        out = {
            **record,
            "audio": ctx.relpath(name),
            "duration": round(kept / sr, 6),
            "offset": round(seconds_field(record, "offset") + head / sr, 6),
            "repeats": {
                "cuts": cuts,
                "removed": round(removed / sr, 6),
                "applied": True,
                "samples": [[a, b] for a, b in ranges],
            },
            **codec_fields(fmt, subtype),
            **child_offset(record, head / sr),
        }
        return [out]

    def tool_versions(self) -> dict[str, str]:
        from audioprep.engines import base as engines

        return engines.engine_class("fingerprint", "landmarks").versions()

    @classmethod
    def report_section(cls, out_dir: str | Path) -> str | None:
        """HTML: the recurring segments found and what was cut from each item."""
        path = Path(out_dir) / DECISION_FILE
        if not path.is_file():
            return None
        decision = json.loads(path.read_text(encoding="utf-8"))
        segs = decision.get("segments", [])

        def occurrences(seg: dict[str, Any]) -> str:
            return ", ".join(
                f"{o['id']} {o['where']} {o['start']:.2f}-{o['end']:.2f} s"
                for o in seg["occurrences"]
            )

        rows = "".join(
            f"<tr><td>{html.escape(s['segment'])}</td><td>{html.escape(s['group'])}</td>"
            f"<td>{s['items']}</td><td>{s['seconds']:.2f}</td><td>{s['similarity']:.2f}</td>"
            f"<td>{html.escape(occurrences(s))}</td></tr>"
            for s in segs
        )
        removed = sum(c["end"] - c["start"] for cs in decision.get("cuts", {}).values() for c in cs)
        verb = "would be cut (dry run)" if decision.get("dry_run") else "cut"
        return (
            f"<h2>Repeats</h2><p>{len(segs)} recurring segment(s) in "
            f"{len(decision.get('groups', {}))} group(s); {removed:.1f} s {verb} from "
            f"{len(decision.get('cuts', {}))} item(s).</p>"
            "<table><thead><tr><th>segment</th><th>group</th><th>items</th><th>seconds</th>"
            f"<th>similarity</th><th>occurrences</th></tr></thead><tbody>{rows}</tbody></table>"
        )


def merge_ranges(
    spans: list[tuple[float, float]], *, sr: int, n: int | None
) -> list[tuple[int, int]]:
    """Seconds to sorted, non-overlapping sample ranges ``[(start, stop), ...]`` clipped to
    ``n`` samples (when known).

    >>> merge_ranges([(1.0, 2.0), (0.0, 1.5), (3, 4)], sr=10, n=35)
    [(0, 20), (30, 35)]
    """
    out: list[list[int]] = []
    for s, e in sorted(spans):
        a, b = int(round(s * sr)), int(round(e * sr))
        if n is not None:
            a, b = min(a, n), min(b, n)
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _copy_keeping(fin: Any, fout: Any, ranges: list[tuple[int, int]], n: int, dtype: str) -> int:
    """Copy ``fin`` to ``fout`` in blocks, leaving out the sample ranges; returns frames read."""
    pos = 0
    for a, b in [*ranges, (n, n)]:
        fin.seek(pos)
        remaining = a - pos
        while remaining > 0:
            block = fin.read(min(BLOCK_FRAMES, remaining), dtype=dtype, always_2d=True)
            if len(block) == 0:
                raise ItemError(f"file ended {remaining} frames early: truncated or corrupt")
            fout.write(block)
            remaining -= len(block)
        pos = b
    return n


def _copy_decoded(
    src: Path, fout: Any, ranges: list[tuple[int, int]], sr: int, channels: int
) -> int:
    """For containers libsndfile cannot read: ffmpeg decodes, the ranges are left out."""
    from audioprep.core.media import decode_chunks

    pos = 0
    for chunk in decode_chunks(src, chunk_frames=BLOCK_FRAMES, sample_rate=sr, channels=channels):
        start, stop = pos, pos + len(chunk)
        keep_from = start
        for a, b in ranges:
            if b <= keep_from or a >= stop:
                continue
            if a > keep_from:
                fout.write(chunk[keep_from - start : a - start])
            keep_from = max(keep_from, b)
        if keep_from < stop:
            fout.write(chunk[keep_from - start :])
        pos = stop
    return pos
