"""dedupe: Keep one copy of audio that is in the corpus twice: re-encoded, cut or contained.

Fingerprints every item (landmark hashes of spectral peak pairs) into one inverted index, finds
the items holding the same audio as another (re-encoded, resampled, at another gain, cut at
either end, or inside a longer item), keeps the best copy of each group and rejects the others
with "duplicate of ID (overlap N s)". The index is saved in OUT_DIR; ``--against DIR`` checks
a new corpus against an earlier one.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

from audioprep.core.params import param
from audioprep.core.stage import CorpusStage, DecideContext, ItemContext, Output, WorkerContext
from audioprep.errors import UsageError
from audioprep.manifests.layout import DECISION_FILE
from audioprep.manifests.records import Record

INDEX_FILE = "dedupe_index.npz"
LOSSLESS = ("pcm", "flac", "alac", "wavpack", "ape", "tta", "mlp", "truehd")


def _score(record: Record, field: str | None) -> float | None:
    if not field:
        return None
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class DedupeStage(CorpusStage):
    """Kept items that others duplicate list them under `dedupe.duplicates`; rejected ones go
    to rejected.jsonl with `dedupe.duplicate_of`, the overlap, the coverage and the offset.
    The longest copy is kept (so a compilation keeps its parts), then the best by `--prefer`,
    then a lossless one, the one with more bandwidth, the louder, the first.

    Example: `audioprep dedupe wav16k/ unique/ --prefer quality.ovrl --against old-corpus/`
    """

    name = "dedupe"
    outputs = (
        Output("fingerprints", "each item's landmark hashes (ID.npz)", folder=True, pruned=True),
        Output(INDEX_FILE, "the kept items' hash index, for a later --against"),
    )
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        against: tuple[str, ...] = param(
            (),
            help="Earlier dedupe output: reject items already there (repeatable).",
            repeatable=True,
            path=True,
            metavar="DIR",
        )
        prefer: str | None = param(
            None,
            help="Among copies of similar length keep the highest value of this field "
            "(dotted, e.g. quality.ovrl).",
            metavar="FIELD",
        )
        min_coverage: float = param(
            0.5, help="Share of the overlap's seconds that must match.", min=0.01, max=1.0
        )
        min_overlap: float = param(
            1.0, help="Shortest overlap that makes a duplicate (s).", min=0.0
        )
        min_hashes: int = param(20, help="Fewest landmarks matching at one offset.", min=1)
        dry_run: bool = param(
            False,
            help="Annotate the duplicates found (dedupe_pass false), reject nothing.",
            flags=("--dry-run", "--annotate-only"),
        )

    def check(self) -> None:
        p = self.params
        for d in p.against:
            if not (Path(d) / INDEX_FILE).is_file():
                raise UsageError(
                    f"--against {d}: no {INDEX_FILE} there; give the output directory of an "
                    "earlier `audioprep dedupe` run."
                )
            load_against(d)  # a damaged index is refused now, not after the fingerprinting

    # -- workers ---------------------------------------------------------------------------
    def setup(self, ctx: WorkerContext) -> None:
        from audioprep.engines import base as engines

        self.fingerprinter = engines.load("fingerprint", "landmarks")

    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        from audioprep.engines.fingerprint.landmarks import FINGERPRINT_DIR

        ctx.folder(FINGERPRINT_DIR)  # a real folder (a symlink there is replaced)
        m = self.fingerprinter.fingerprint_file(
            ctx.input_audio(record), ctx.out_dir, record["id"], features=False
        )
        codec = str(record.get("codec") or "").lower()
        m["duration"] = float(record.get("duration") or m["seconds"])
        m["lossless"] = any(codec.startswith(c) for c in LOSSLESS)
        m["score"] = _score(record, self.params.prefer)
        return m

    # -- main process ----------------------------------------------------------------------
    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        import numpy as np

        from audioprep.dsp.dedupe import better, components, duplicates_of, find_pairs
        from audioprep.dsp.fingerprint import FRAME_SECONDS, HashIndex
        from audioprep.engines.fingerprint.landmarks import load_fingerprint

        p = self.params
        out = Path(ctx.out_dir)
        ids = list(measurements)
        fps = []
        for i in ids:
            fp = load_fingerprint(out, measurements[i])
            fps.append(
                {"hashes": fp["hashes"], "times": fp["times"], "frames": measurements[i]["frames"]}
            )
        frames = np.array([measurements[i]["frames"] for i in ids], dtype=np.int64)
        opts = {
            "min_hashes": p.min_hashes,
            "min_coverage": p.min_coverage,
            "min_overlap": p.min_overlap,
        }
        pairs = find_pairs(fps, frames, **opts)
        earlier: dict[int, dict[str, Any]] = {}
        for d in p.against:
            old_index, extra = load_against(d)
            kept = extra["kept"]
            mask = kept[old_index.items]
            old_index = HashIndex(
                old_index.keys[mask], old_index.items[mask], old_index.times[mask]
            )
            for a, fp in enumerate(fps):
                if a in earlier:
                    continue
                found = duplicates_of(fp, None, old_index, extra["frames"], **opts)
                if found:
                    b, off, overlap, cov, n = found[0]
                    earlier[a] = {
                        "id": str(extra["ids"][b]),
                        "dir": str(d),
                        "overlap": overlap,
                        "coverage": cov,
                        "offset": round(off * FRAME_SECONDS, 3),
                    }
        rank = [
            {
                **{
                    k: measurements[i][k]
                    for k in ("duration", "lossless", "hf_db", "rms_db", "peak", "score")
                },
                "order": n,
            }
            for n, i in enumerate(ids)
        ]
        rejected: dict[str, dict[str, Any]] = {}
        for a, info in earlier.items():
            rejected[ids[a]] = {
                "duplicate_of": info["id"],
                "against": info["dir"],
                "overlap": info["overlap"],
                "coverage": info["coverage"],
                "offset": info["offset"],
            }
        kept_for: dict[str, list[str]] = {}

        def direct(m: int, k: int) -> dict[str, Any] | None:
            """The pair of ``m`` and ``k`` if it passes the rules itself (found, or measured
            now: a batched search meets only the first copy of earlier audio)."""
            key = (min(m, k), max(m, k))
            if key not in pairs:
                one = HashIndex.build([(fps[k]["hashes"], fps[k]["times"])], numbers=[k])
                found = duplicates_of(fps[m], m, one, frames, **opts)
                if not found:
                    return None
                _, off, overlap, cov, n = found[0]
                pairs[key] = {
                    "overlap": overlap,
                    "coverage": cov,
                    "hashes": n,
                    "offset": round((off if m < k else -off) * FRAME_SECONDS, 3),
                }
            return pairs[key]

        # linked items are grouped, but an item is a duplicate only of a kept item it shares
        # audio with under the coverage rule itself, never through a chain of links: six
        # talks that share a jingle, linked through the one that is half jingle, stay six
        for group in components(len(ids), list(pairs)):
            left = [m for m in group if ids[m] not in rejected]
            while left:
                best = left[0]
                for m in left[1:]:
                    if better(rank[m], rank[best], prefer=bool(p.prefer)):
                        best = m
                rest = []
                for m in left:
                    if m == best:
                        continue
                    info = direct(m, best)
                    if info is None:
                        rest.append(m)  # compared with the next one kept
                        continue
                    rejected[ids[m]] = {
                        "duplicate_of": ids[best],
                        "overlap": info["overlap"],
                        "coverage": info["coverage"],
                        # where this item starts inside the one it duplicates (seconds)
                        "offset": info["offset"] if m < best else -info["offset"],
                    }
                    kept_for.setdefault(ids[best], []).append(ids[m])
                left = rest
        keep_mask = np.array([i not in rejected or p.dry_run for i in ids], dtype=bool)
        kept_numbers = np.flatnonzero(keep_mask)
        index = HashIndex.build(
            [(fps[k]["hashes"], fps[k]["times"]) for k in kept_numbers], numbers=kept_numbers
        )
        with ctx.writing(INDEX_FILE) as tmp:  # atomic, never through a symlink
            index.save(tmp, ids=np.array(ids, dtype=str), frames=frames, kept=keep_mask)
        return {
            "items": len(ids),
            "index_hashes": len(index),
            "pairs": [{"a": ids[a], "b": ids[b], **info} for (a, b), info in sorted(pairs.items())],
            "against": [{"id": ids[a], **info} for a, info in sorted(earlier.items())],
            "rejected": rejected,
            "kept_for": kept_for,
            "dry_run": p.dry_run,
        }

    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        dup = decision["rejected"].get(record["id"])
        if dup and not decision["dry_run"]:
            where = f" in {dup['against']}" if dup.get("against") else ""
            ctx.reject(
                record,
                f"duplicate of {dup['duplicate_of']}{where} (overlap {dup['overlap']:.1f} s)",
                dedupe=dup,
            )
            return []
        src = ctx.input_audio(record)
        out = {**record, "audio": ctx.link(src, f"{record['id']}{src.suffix}")}
        info: dict[str, Any] = {}
        if decision["kept_for"].get(record["id"]):
            info["duplicates"] = decision["kept_for"][record["id"]]
        if dup:
            info |= dup
        out["dedupe"] = info
        if decision["dry_run"]:
            out["dedupe_pass"] = not dup
        return [out]

    def tool_versions(self) -> dict[str, str]:
        from audioprep.engines import base as engines

        return engines.engine_class("fingerprint", "landmarks").versions()

    @classmethod
    def report_section(cls, out_dir: str | Path) -> str | None:
        """HTML: the duplicate pairs found and which copy was kept."""
        path = Path(out_dir) / DECISION_FILE
        if not path.is_file():
            return None
        d = json.loads(path.read_text(encoding="utf-8"))
        rejected = d.get("rejected", {})
        rows = "".join(
            f"<tr><td>{html.escape(r)}</td><td>{html.escape(v['duplicate_of'])}"
            f"{' (' + html.escape(v['against']) + ')' if v.get('against') else ''}</td>"
            f"<td>{v['overlap']:.1f}</td><td>{v['coverage']:.2f}</td></tr>"
            for r, v in sorted(rejected.items())
        )
        verb = "would be rejected (dry run)" if d.get("dry_run") else "rejected"
        return (
            f"<h2>Duplicates</h2><p>{d.get('items', 0)} items fingerprinted, "
            f"{len(d.get('pairs', []))} duplicate pair(s), {len(d.get('against', []))} item(s) "
            f"already in an earlier corpus; {len(rejected)} {verb}.</p>"
            "<table><thead><tr><th>item</th><th>duplicate of</th><th>overlap (s)</th>"
            f"<th>coverage</th></tr></thead><tbody>{rows}</tbody></table>"
        )


def load_against(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """The index of an earlier dedupe run in ``folder`` and its ``ids``, ``frames`` and
    ``kept`` arrays, every part checked; UsageError with one sentence for a damaged or
    foreign file (truncated, text, missing or ill-fitting arrays, objects, absurd shapes)."""
    import numpy as np

    from audioprep.dsp.fingerprint import HashIndex

    path = Path(folder) / INDEX_FILE
    try:
        index, extra = HashIndex.load(path)
        for name, kinds in (("ids", "U"), ("frames", "iu"), ("kept", "b")):
            if name not in extra:
                raise ValueError(f"it has no {name!r} array")
            if extra[name].dtype.kind not in kinds:
                raise ValueError(f"its {name!r} array has dtype {extra[name].dtype}")
        n = len(extra["ids"])
        if not len(extra["frames"]) == len(extra["kept"]) == n:
            raise ValueError("its ids, frames and kept differ in length")
        if len(index) and (int(index.items.min()) < 0 or int(index.items.max()) >= n):
            raise ValueError("its items name items it does not list")
        if n and int(np.min(extra["frames"])) < 0:
            raise ValueError("its frames are negative")
    except ValueError as exc:
        raise UsageError(
            f"--against {folder}: {path.name} cannot be used: {exc}; run `audioprep dedupe` "
            "on that corpus again (with --overwrite) to rebuild it."
        ) from None
    return index, extra
