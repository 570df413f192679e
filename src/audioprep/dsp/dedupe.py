"""Near-duplicate search over an inverted index of landmark hashes, and which copy to keep.

Pure functions on arrays; times are frames of
:data:`~audioprep.dsp.fingerprint.FRAME_SECONDS`.

>>> import numpy as np
>>> from audioprep.dsp.fingerprint import SR, HashIndex, analyse
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal(SR * 6).astype(np.float32) * np.repeat(rng.random(60), SR // 10)
>>> other = rng.standard_normal(SR * 6).astype(np.float32) * np.repeat(rng.random(60), SR // 10)
>>> fps = [analyse(v) for v in (x, other, 0.5 * x[2 * SR :])]
>>> index = HashIndex.build([(f["hashes"], f["times"]) for f in fps])
>>> [(j, round(ov, 1), cov) for j, off, ov, cov, n in duplicates_of(fps[2], 2, index, [375] * 3)]
[(0, 4.0, 1.0)]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audioprep.dsp.fingerprint import FPS, FRAME_SECONDS, HashIndex, vote

COVER_BIN = int(FPS)  # coverage is counted in one-second bins
#: Items are searched in batches of this many; each batch is indexed on its own and the
#: first copy of each audio it holds joins the index of the corpus's distinct items.
BATCH = 256
MIN_HASHES = 20
MIN_COVERAGE = 0.5
MAX_POSTINGS = 1000


def coverage(
    times: np.ndarray, matched: np.ndarray, *, first: int, last: int, bin_frames: int = COVER_BIN
) -> float:
    """Share of the one-second bins of frames ``first..last-1`` that hold query landmarks
    (``times``, shape ``(n,)``) in which at least one landmark matched (``matched``, frames of
    the matching ones, shape ``(m,)``). 0 when the range holds no landmark.

    >>> coverage(np.arange(0, 300, 10), np.array([5, 70, 130]), first=0, last=300, bin_frames=62)
    0.6
    """
    inside = times[(times >= first) & (times < last)]
    if len(inside) == 0:
        return 0.0
    have = np.unique((inside - first) // bin_frames)
    hit = np.unique((matched[(matched >= first) & (matched < last)] - first) // bin_frames)
    return round(float(len(np.intersect1d(have, hit))) / len(have), 3)


def duplicates_of(
    fp: dict[str, np.ndarray],
    item: int | None,
    index: HashIndex,
    frames: Any,
    *,
    min_hashes: int = MIN_HASHES,
    min_coverage: float = MIN_COVERAGE,
    min_overlap: float = 1.0,
    max_postings: int | None = MAX_POSTINGS,
) -> list[tuple[int, int, float, float, int]]:
    """The indexed items that hold the same audio as the query ``fp`` (``hashes``, ``times``).

    ``item``: the query's own number in the index (skipped), or None; ``frames``: every indexed
    item's length in frames (sequence indexed by item). For each alignment with at least
    ``min_hashes`` landmarks, the overlap of the two items under it is measured (seconds) and
    the share of its seconds where the query's landmarks matched (:func:`coverage`): two
    episodes that share only a jingle overlap a lot but match in few of those seconds.
    Returns ``[(other, offset_frames, overlap_s, coverage, n_hashes), ...]`` (other = query +
    offset), best first.
    """
    where = None if item is None else (lambda found: found != item)
    p = index.postings(fp["hashes"], fp["times"], max_postings=max_postings, where=where)
    it, off, qt = p["item"], p["offset"], p["qtime"]
    v = vote(it, off, min_count=min_hashes, peaks_per_item=2)
    n_query = len(fp["energy"]) if "energy" in fp else int(fp["frames"])
    found: dict[int, tuple[int, int, float, float, int]] = {}
    for j, o, n in zip(v["item"].tolist(), v["offset"].tolist(), v["count"].tolist(), strict=True):
        first, last = max(0, -o), min(n_query, int(frames[j]) - o)
        overlap = (last - first) * FRAME_SECONDS
        if overlap < min_overlap:
            continue
        sel = (it == j) & (np.abs(off - o) <= 1)
        cov = coverage(fp["times"], qt[sel], first=first, last=last)
        if cov < min_coverage:
            continue
        if j not in found or cov > found[j][3]:
            found[j] = (j, o, round(overlap, 3), cov, n)
    return sorted(found.values(), key=lambda r: (-r[3], -r[4], r[0]))


def find_pairs(
    fps: list[dict[str, np.ndarray]],
    frames: Any,
    *,
    batch: int | None = None,
    **opts: Any,
) -> dict[tuple[int, int], dict[str, Any]]:
    """Duplicate pairs among items ``fps`` (``hashes``, ``times``; ``frames``: each item's
    length in frames), each item searched once, in input order.

    Each batch of ``batch`` items is indexed and searched against itself and against the index
    of the *distinct* items seen so far (the first copy of each audio), which the batch's new
    distinct items then join. A corpus holding 30 copies of everything costs about what one
    holding one copy costs: a search meets one or two earlier copies, not all of them, and the
    work grows linearly with the number of items. ``opts`` go to :func:`duplicates_of`.
    Returns ``{(a, b): {overlap, coverage, hashes, offset}}`` with ``a < b`` and ``offset`` the
    seconds at which ``a`` starts in ``b``.
    """
    batch = batch or BATCH
    pairs: dict[tuple[int, int], dict[str, Any]] = {}
    runs: list[HashIndex] = []

    def note(a: int, b: int, off: int, overlap: float, cov: float, n: int) -> None:
        key = (min(a, b), max(a, b))
        info = {
            "overlap": overlap,
            "coverage": cov,
            "hashes": n,
            "offset": round((off if a < b else -off) * FRAME_SECONDS, 3),
        }
        if key not in pairs or cov > pairs[key]["coverage"]:
            pairs[key] = info

    for first in range(0, len(fps), batch):
        members = list(range(first, min(len(fps), first + batch)))
        local = HashIndex.build(
            [(fps[i]["hashes"], fps[i]["times"]) for i in members], numbers=members
        )
        new = []
        for a in members:
            seen_before = False
            for index in (local, *runs):
                for b, off, overlap, cov, n in duplicates_of(fps[a], a, index, frames, **opts):
                    note(a, b, off, overlap, cov, n)
                    seen_before = seen_before or b < a
            if not seen_before:
                new.append(a)
        if new:
            runs.append(
                HashIndex.build([(fps[i]["hashes"], fps[i]["times"]) for i in new], numbers=new)
            )
        # merge the newest runs while the last is at least half the one before (as a
        # log-structured merge does): O(log n) runs, each entry re-sorted O(log n) times
        while len(runs) > 1 and len(runs[-1]) * 2 >= len(runs[-2]):
            b, a = runs.pop(), runs.pop()
            keys = np.concatenate([a.keys, b.keys])
            order = np.argsort(keys, kind="stable")
            runs.append(
                HashIndex(
                    keys[order],
                    np.concatenate([a.items, b.items])[order],
                    np.concatenate([a.times, b.times])[order],
                )
            )
    return pairs


def better(a: dict[str, Any], b: dict[str, Any], *, prefer: bool = True) -> bool:
    """Whether copy ``a`` should be kept rather than ``b``.

    Each is a dict with ``duration`` (s), ``lossless`` (bool), ``hf_db`` (energy above 4 kHz,
    dB), ``rms_db``, ``peak`` and, when a preference field was given, ``score`` (higher is
    better, None when missing), and ``order`` (input position). In turn: the one that contains
    the other (over 10 % and 0.5 s longer) wins, since dropping it would lose audio; then the
    higher ``score``; the lossless one; the one with more bandwidth (``hf_db`` 10 dB higher:
    not resampled down); the louder (1 dB) if it does not clip; the earlier.

    >>> base = {"duration": 10.0, "lossless": True, "hf_db": -20.0, "rms_db": -20.0,
    ...         "peak": 0.5, "score": None, "order": 0}
    >>> better({**base, "order": 1, "duration": 20.0}, base)
    True
    >>> better({**base, "order": 1, "hf_db": -100.0}, base), better({**base, "order": 1}, base)
    (False, False)
    """
    da, db = a["duration"], b["duration"]
    if abs(da - db) > 0.5 and max(da, db) > 1.1 * min(da, db):
        return da > db
    sa, sb = a.get("score"), b.get("score")
    if prefer and sa is not None and sb is not None and sa != sb:
        return sa > sb
    if prefer and (sa is None) != (sb is None):
        return sa is not None
    if a["lossless"] != b["lossless"]:
        return bool(a["lossless"])
    if abs(a["hf_db"] - b["hf_db"]) > 10:
        return a["hf_db"] > b["hf_db"]
    if abs(a["rms_db"] - b["rms_db"]) > 1 and max(a["peak"], b["peak"]) < 0.99:
        return a["rms_db"] > b["rms_db"]
    return a["order"] < b["order"]


def components(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected groups of ``n`` items linked by ``pairs`` (groups of one left out).

    >>> components(5, [(0, 3), (3, 4)])
    [[0, 3, 4]]
    """
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]
