"""The voices of a whole corpus: cluster a sample, assign every embedding in blocks.

Embeddings are rows ``(n, d)`` (a ``np.memmap`` is fine: only ``block`` rows are read at a
time); the clustering itself sees at most ``sample`` rows, so memory stays bounded at any
corpus size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audioprep.dsp.speakers import centroid, unit

#: Defaults: Resemblyzer's band (each encoder passes its own, VoiceScale.auto_*), measured on
#: the dev split of scripts/eval_speakers_ids.py (LibriSpeech voices
#: through codecs, and beds 10-20 dB under the speech): two clips of one voice score 0.62-0.96
#: (median 0.75; 0.83-0.96 without beds), two voices up to 0.85 (p99 0.77; 0.75 without beds).
#: The automatic stopping point is searched between these bounds (chosen on that split:
#: lower bands merge voices, higher ones split them).
AUTO_LOW, AUTO_HIGH = 0.70, 0.82
#: Stopping point when the dendrogram shows no gap inside the search band.
AUTO_FALLBACK = 0.76


def stopping_point(
    heights: np.ndarray,
    *,
    low: float = AUTO_LOW,
    high: float = AUTO_HIGH,
    fallback: float = AUTO_FALLBACK,
) -> tuple[float, str]:
    """Where to stop merging voices: the widest gap between consecutive merge similarities
    (``1 - heights`` of an average-linkage dendrogram) inside ``[low, high]``.

    Returns ``(similarity, how)``; with no merge inside the band, ``fallback``.

    >>> h = 1 - np.array([0.95, 0.9, 0.88, 0.85, 0.6, 0.55, 0.5])
    >>> s, how = stopping_point(h)
    >>> round(s, 3), how
    (0.76, 'gap')
    """
    sims = np.sort(1 - np.asarray(heights, dtype=np.float64))
    inside = sims[(sims >= low) & (sims <= high)]
    edges = np.concatenate(([low], inside, [high]))
    if not len(inside) and not ((sims < low).any() and (sims > high).any()):
        return fallback, "fallback"
    gaps = np.diff(edges)
    k = int(np.argmax(gaps))
    return float((edges[k] + edges[k + 1]) / 2), "gap"


def join_renderings(
    x: np.ndarray, labels: np.ndarray, *, join: float, min_size: int = 2
) -> tuple[np.ndarray, int]:
    """Merge groups whose centroids are at least ``join`` similar, nearest pair first, among
    groups of at least ``min_size`` rows: one voice through two channels (a phone line and a
    studio) forms two tight groups whose centroids lie near each other although their clips'
    average similarity stops the merging; single clips never join this way.

    Returns ``(labels, merges)`` with labels renumbered 0-based.

    >>> a, b = np.eye(3)[0], np.eye(3)[0] * 0.8 + np.eye(3)[1] * 0.6
    >>> x = np.array([a, a + 0.2 * np.eye(3)[2], b, b + 0.2 * np.eye(3)[2]])
    >>> labels, n = join_renderings(x, np.array([0, 0, 1, 1]), join=0.75)
    >>> labels.tolist(), n
    ([0, 0, 0, 0], 1)
    """
    u = unit(np.atleast_2d(np.asarray(x, dtype=np.float64)))
    labels = np.asarray(labels).copy()
    merges = 0
    while True:
        groups = [k for k in np.unique(labels) if (labels == k).sum() >= min_size]
        if len(groups) < 2:
            break
        c = np.array([centroid(u[labels == k]) for k in groups])
        s = c @ c.T
        np.fill_diagonal(s, -np.inf)
        i, j = np.unravel_index(int(np.argmax(s)), s.shape)
        if s[i, j] < join:
            break
        labels[labels == groups[j]] = groups[i]
        merges += 1
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(int), merges


def agglomerate(
    x: np.ndarray,
    *,
    stop_similarity: float | None,
    max_speakers: int | None = None,
    band: tuple[float, float, float] = (AUTO_LOW, AUTO_HIGH, AUTO_FALLBACK),
) -> tuple[np.ndarray, dict[str, Any]]:
    """Average-linkage clustering of ``x`` ``(m, d)`` on cosine distance.

    ``stop_similarity=None`` chooses the stopping point with :func:`stopping_point` inside
    ``band`` (low, high, fallback);
    ``max_speakers`` caps the number of groups. Returns labels ``(m,)`` (0-based, in no
    particular order) and ``{"stop_similarity", "how", "groups"}``.

    >>> a, b = np.eye(3)[0], np.eye(3)[1]
    >>> x = np.array([a, a + 0.05 * b, b, b + 0.05 * a])
    >>> labels, info = agglomerate(x, stop_similarity=0.7)
    >>> labels.tolist(), info["groups"]
    ([0, 0, 1, 1], 2)
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    u = unit(np.atleast_2d(x))
    if len(u) < 2:
        stop = band[2] if stop_similarity is None else float(stop_similarity)
        return np.zeros(len(u), dtype=int), {
            "stop_similarity": stop,
            "how": "single item",
            "groups": len(u),
        }
    z = linkage(u, method="average", metric="cosine")
    z[:, 2] = np.maximum(z[:, 2], 0.0)  # rounding can give -1e-16
    if stop_similarity is None:
        stop, how = stopping_point(z[:, 2], low=band[0], high=band[1], fallback=band[2])
    else:
        stop, how = float(stop_similarity), "fixed"
    labels = fcluster(z, t=1 - stop, criterion="distance")
    if max_speakers is not None and len(np.unique(labels)) > max_speakers:
        labels = fcluster(z, t=max_speakers, criterion="maxclust")
        how += f", capped at {max_speakers}"
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(int), {
        "stop_similarity": round(stop, 4),
        "how": how,
        "groups": int(labels.max()) + 1,
    }


def assign(
    x: np.ndarray, centroids: np.ndarray, *, block: int = 8192
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest centroid of every row of ``x`` ``(n, d)``, ``block`` rows at a time.

    Returns ``(label (n,), similarity to it (n,), margin to the next centroid (n,))``; the
    margin is 1.0 with a single centroid.

    >>> c = np.eye(2)
    >>> label, sim, margin = assign(np.array([[1.0, 0.1], [0.2, 1.0]]), c, block=1)
    >>> label.tolist(), bool((margin > 0).all())
    ([0, 1], True)
    """
    c = unit(np.atleast_2d(centroids))
    n = len(x)
    label = np.zeros(n, dtype=int)
    sim = np.zeros(n)
    margin = np.ones(n)
    for a in range(0, n, block):
        s = unit(np.asarray(x[a : a + block], dtype=np.float64)) @ c.T
        best = np.argmax(s, axis=1)
        label[a : a + block] = best
        top = s[np.arange(len(s)), best]
        sim[a : a + block] = top
        if c.shape[0] > 1:
            s[np.arange(len(s)), best] = -np.inf
            margin[a : a + block] = top - s.max(axis=1)
    return label, sim, margin


def cluster_corpus(
    x: np.ndarray,
    *,
    stop_similarity: float | None = None,
    max_speakers: int | None = None,
    sample: int = 4000,
    block: int = 8192,
    seed: int = 0,
    rounds: int = 2,
    band: tuple[float, float, float] = (AUTO_LOW, AUTO_HIGH, AUTO_FALLBACK),
    join: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The voices of ``x`` ``(n, d)``: cluster at most ``sample`` rows (average linkage,
    :func:`agglomerate`), then give every row its nearest centroid, re-estimating the
    centroids from all their members ``rounds`` times (in blocks). With ``join``, groups of
    the sample whose centroids are that similar merge first (:func:`join_renderings`).
    Memory: ``sample**2`` distances plus ``block`` rows, whatever ``n`` is.

    Returns ``(labels (n,), centroids (k, d), info)``; labels are 0-based and every centroid
    has at least one member.

    >>> rng = np.random.default_rng(0)
    >>> voices = rng.normal(size=(3, 16))
    >>> x = np.repeat(voices, 20, axis=0) + rng.normal(scale=0.3, size=(60, 16))
    >>> labels, cents, info = cluster_corpus(x, stop_similarity=0.6, sample=30)
    >>> info["speakers"], len(set(labels[:20].tolist()))
    (3, 1)
    """
    n = len(x)
    if n == 0:
        return (
            np.zeros(0, dtype=int),
            np.zeros((0, x.shape[1] if x.ndim == 2 else 0)),
            {
                "stop_similarity": stop_similarity,
                "how": "empty",
                "speakers": 0,
                "sampled": 0,
            },
        )
    if n <= sample:
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    xs = unit(np.asarray(x[idx], dtype=np.float64))
    labels_s, info = agglomerate(
        xs, stop_similarity=stop_similarity, max_speakers=max_speakers, band=band
    )
    if join is not None:
        labels_s, info["joined"] = join_renderings(xs, labels_s, join=join)
    cents = np.array([centroid(xs[labels_s == k]) for k in range(labels_s.max() + 1)])
    if n <= sample:
        labels = labels_s
    else:
        labels = np.zeros(n, dtype=int)
        for _ in range(max(1, rounds)):
            labels, _, _ = assign(x, cents, block=block)
            sums = np.zeros_like(cents)
            for a in range(0, n, block):
                np.add.at(sums, labels[a : a + block], unit(np.asarray(x[a : a + block])))
            used = np.flatnonzero(np.linalg.norm(sums, axis=1) > 0)
            cents = unit(sums[used])
        labels, _, _ = assign(x, cents, block=block)
        used, labels = np.unique(labels, return_inverse=True)
        cents = cents[used]
    info = {**info, "speakers": int(len(cents)), "sampled": int(len(idx))}
    info.pop("groups", None)
    return labels.astype(int), cents, info
