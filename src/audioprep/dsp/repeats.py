"""Finding audio that recurs across items: pairwise alignments from landmark hashes, checked
and bounded frame by frame, then grouped into recurring segments.

Pure functions on arrays (fingerprints from :func:`audioprep.dsp.fingerprint.analyse`); times
are frames of :data:`~audioprep.dsp.fingerprint.FRAME_SECONDS`.

>>> import numpy as np
>>> from audioprep.dsp.fingerprint import SR, analyse
>>> rng = np.random.default_rng(0)
>>> jingle = rng.standard_normal(SR * 3).astype(np.float32) * np.repeat(rng.random(30), SR // 10)
>>> items = [np.concatenate([jingle, 0.3 * rng.standard_normal(SR * 4).astype(np.float32)
...                          * np.repeat(rng.random(40), SR // 10)]) for _ in range(3)]
>>> fps = [analyse(x) for x in items]
>>> segs = recurring_segments(fps, min_items=3, min_frames=62)
>>> [(s["items"], [(k, round(a * 0.016, 1), round(b * 0.016, 1)) for k, a, b in s["occurrences"]])
...  for s in segs]
[(3, [(0, 0.0, 3.0), (1, 0.0, 3.0), (2, 0.0, 3.0)])]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audioprep.dsp.fingerprint import FPS, HashIndex, frame_similarity, hash_dt, matched_spans, vote

#: Frame check: an aligned frame agrees when the smoothed band-energy correlation is at least this.
SIMILARITY = 0.7
ACTIVE_DB = 25.0
SMOOTH = 7  # frames (112 ms) of the moving average of the frame similarity
MAX_EXTEND = int(3 * FPS)  # how far the frame check may move a boundary beyond the hashes


def _smooth(sim: np.ndarray, width: int = SMOOTH) -> np.ndarray:
    """NaN-aware moving average (NaN where every frame of the window is NaN)."""
    valid = ~np.isnan(sim)
    vals = np.where(valid, sim, 0.0)
    k = np.ones(width, np.float32)
    num = np.convolve(vals, k, mode="same")
    den = np.convolve(valid.astype(np.float32), k, mode="same")
    out = np.full(len(sim), np.nan, np.float32)
    np.divide(num, den, out=out, where=den > 0)
    return out


def refine_span(
    fa: dict[str, np.ndarray],
    fb: dict[str, np.ndarray],
    *,
    start: int,
    end: int,
    offset: int,
    similarity: float = SIMILARITY,
    max_extend: int = MAX_EXTEND,
) -> tuple[int, int, float] | None:
    """Check and bound a span found by hashes, frame by frame.

    ``fa``, ``fb``: fingerprints with ``features`` ``(frames, bands)`` and ``energy``
    ``(frames,)``; the span is frames ``start..end`` of ``a``, at ``start + offset`` in ``b``.
    The span grows (by up to ``max_extend`` frames) or shrinks to the run of frames where
    the smoothed similarity of the aligned band energies stays at least ``similarity``.
    Returns ``(start, end, mean_similarity)`` or None when fewer than half the span's frames
    agree (the hashes matched by chance: same words, not the same recording).
    """
    na, nb = len(fa["energy"]), len(fb["energy"])
    lo = max(0, start - max_extend, -offset)
    hi = min(na, end + max_extend + 1, nb - offset)
    if hi - lo < 2 or start >= hi or end < lo:
        return None
    sim = frame_similarity(
        fa["features"][lo:hi],
        fb["features"][lo + offset : hi + offset],
        energy_a=fa["energy"][lo:hi],
        energy_b=fb["energy"][lo + offset : hi + offset],
    )
    sm = _smooth(sim)
    # frames that may join the span: aligned frames that agree, both loud enough (within
    # ACTIVE_DB of the span's loud frames): two recordings' silences look alike, so a boundary
    # is never moved across a pause
    ea = fa["energy"][lo:hi].astype(np.float32)
    eb = fb["energy"][lo + offset : hi + offset].astype(np.float32)
    s, e = max(start, lo) - lo, min(end, hi - 1) - lo
    ref_a = float(np.quantile(ea[s : e + 1], 0.9))
    ref_b = float(np.quantile(eb[s : e + 1], 0.9))
    active = (ea >= ref_a - ACTIVE_DB) & (eb >= ref_b - ACTIVE_DB)
    good = (np.nan_to_num(sm, nan=-1.0) >= similarity) & active
    core = sm[s : e + 1][active[s : e + 1]]
    core_valid = core[~np.isnan(core)]
    if len(core_valid) == 0 or (core_valid >= similarity).mean() < 0.5:
        return None
    # move the start left while frames agree, or right (at most a third of the span) while
    # loud frames disagree; the same for the end
    if good[s]:
        while s > 0 and good[s - 1]:
            s -= 1
    else:
        limit = s + (e - s) // 3
        while s < limit and active[s] and not good[s]:
            s += 1
    if good[e]:
        while e < len(good) - 1 and good[e + 1]:
            e += 1
    else:
        limit = e - (e - s) // 3
        while e > limit and active[e] and not good[e]:
            e -= 1
    if e <= s:
        return None
    mean = float(np.nanmean(sim[s : e + 1])) if np.any(~np.isnan(sim[s : e + 1])) else 0.0
    return s + lo, e + lo + 1, mean


def _overlap(s1: int, e1: int, s2: int, e2: int) -> int:
    return max(0, min(e1, e2) - max(s1, s2))


def pairwise_repeats(
    fps: list[dict[str, np.ndarray]],
    *,
    min_frames: int,
    min_hashes: int = 10,
    max_gap: int = int(1.5 * FPS),
    similarity: float = SIMILARITY,
) -> list[tuple[int, int, int, int, int, float]]:
    """Every stretch of audio that two different items share.

    ``fps``: fingerprints (``hashes``, ``times``, ``features``, ``energy``). Returns
    ``[(a, start_a, end_a, b, offset, similarity), ...]`` with ``a < b``, frames ``start_a..end_a``
    of item ``a`` equal to frames ``start_a + offset ..`` of item ``b``, at least
    ``min_frames`` long. One inverted index; each item is queried once.
    """
    index = HashIndex.build([(f["hashes"], f["times"]) for f in fps])
    found = []
    for a, fa in enumerate(fps):
        p = index.postings(fa["hashes"], fa["times"], where=lambda found, a=a: found > a)
        item, off, qidx = p["item"], p["offset"], p["qindex"]
        v = vote(item, off, min_count=min_hashes, peaks_per_item=16)
        spans: dict[int, list[tuple[int, int, int, int]]] = {}
        for b, o in zip(v["item"].tolist(), v["offset"].tolist(), strict=True):
            sel = (item == b) & (np.abs(off - o) <= 1)
            qi = qidx[sel]
            t = fa["times"][qi]
            ends = t + hash_dt(fa["hashes"][qi])
            for s, e, n in matched_spans(t, ends, max_gap=max_gap, min_hashes=min_hashes):
                spans.setdefault(b, []).append((n, s, e, o))
        for b, cands in spans.items():
            kept: list[tuple[int, int, int, int]] = []
            # the same stretch matched at two offsets (music that repeats itself): the
            # alignment with more hashes wins
            for n, s, e, o in sorted(cands, key=lambda c: -c[0]):
                if any(
                    _overlap(s, e, s2, e2) > 0.3 * (e - s)
                    or _overlap(s + o, e + o, s2 + o2, e2 + o2) > 0.3 * (e - s)
                    for _, s2, e2, o2 in kept
                ):
                    continue
                kept.append((n, s, e, o))
                r = refine_span(fa, fps[b], start=s, end=e, offset=o, similarity=similarity)
                if r is not None and r[1] - r[0] >= min_frames:
                    found.append((a, r[0], r[1], b, o, round(r[2], 3)))
    return found


def recurring_segments(
    fps: list[dict[str, np.ndarray]],
    *,
    min_items: int,
    min_frames: int,
    max_frames: int | None = None,
    min_hashes: int = 10,
    similarity: float = SIMILARITY,
) -> list[dict[str, Any]]:
    """Audio recurring in at least ``min_items`` items.

    Pairwise repeats (:func:`pairwise_repeats`) are joined when they share an occurrence (the
    same stretch of the same item, overlapping by half); each group found in ``min_items``
    items or more is one recurring segment. Returns segments, longest-held first, as dicts:
    ``items`` (count), ``occurrences`` ``[(item, start, end), ...]`` sorted by item and
    ``similarity`` (mean over its pairs).
    """
    pairs = pairwise_repeats(
        fps, min_frames=min_frames, min_hashes=min_hashes, similarity=similarity
    )
    nodes: list[tuple[int, int, int]] = []
    parent: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    sims: list[float] = []
    for a, s, e, b, o, sim in pairs:
        if max_frames is not None and e - s > max_frames:
            continue
        nodes += [(a, s, e), (b, s + o, e + o)]
        parent += [len(parent), len(parent) + 1]
        union(len(parent) - 2, len(parent) - 1)
        sims.append(sim)
    by_item: dict[int, list[int]] = {}
    for k, (item, _s, _e) in enumerate(nodes):
        by_item.setdefault(item, []).append(k)
    for ks in by_item.values():
        ks.sort(key=lambda k: nodes[k][1])
        for x in range(len(ks)):
            for y in range(x + 1, len(ks)):
                _, s1, e1 = nodes[ks[x]]
                _, s2, e2 = nodes[ks[y]]
                if s2 >= e1:
                    break
                if min(e1, e2) - max(s1, s2) >= 0.5 * min(e1 - s1, e2 - s2):
                    union(ks[x], ks[y])
    groups: dict[int, list[int]] = {}
    for k in range(len(nodes)):
        groups.setdefault(find(k), []).append(k)
    pair_of_node = [k // 2 for k in range(len(nodes))]
    segments = []
    for ks in groups.values():
        items = {nodes[k][0] for k in ks}
        if len(items) < min_items:
            continue
        occ = []
        for item in sorted(items):
            spans = sorted((nodes[k][1], nodes[k][2]) for k in ks if nodes[k][0] == item)
            merged = [list(spans[0])]
            for s, e in spans[1:]:
                if s <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], e)
                else:
                    merged.append([s, e])
            occ += [(item, s, e) for s, e in merged]
        segments.append(
            {
                "items": len(items),
                "occurrences": occ,
                "similarity": round(float(np.mean([sims[pair_of_node[k]] for k in ks])), 3),
            }
        )
    segments.sort(key=lambda g: (-g["items"], g["occurrences"][0]))
    return segments
