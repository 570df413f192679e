"""Speaker-embedding arithmetic: centroids, similarity, a dominant voice, an automatic threshold.

Embeddings are rows of shape ``(n, d)``; they need not be normalised (each function does).
"""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def centroid(embeddings: np.ndarray) -> np.ndarray:
    """The unit-length mean voice of several embeddings ``(n, d)`` -> ``(d,)``."""
    return unit(unit(np.atleast_2d(embeddings)).mean(axis=0))


def similarity(embeddings: np.ndarray, voice: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row with ``voice``; shape ``(n,)``."""
    return unit(np.atleast_2d(embeddings)) @ unit(voice)


def dominant_voice(embeddings: np.ndarray, *, threshold: float = 0.75) -> tuple[np.ndarray, int]:
    """The centroid of the largest group of mutually similar embeddings, and its size.

    Average-linkage clustering on cosine distance, cut where groups are on average less
    similar than ``threshold``. With one host and occasional guests, the host's group wins.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    x = unit(np.atleast_2d(embeddings))
    if len(x) == 1:
        return x[0], 1
    labels = fcluster(
        linkage(x, method="average", metric="cosine"), t=1 - threshold, criterion="distance"
    )
    values, counts = np.unique(labels, return_counts=True)
    biggest = values[np.argmax(counts)]
    return centroid(x[labels == biggest]), int(counts.max())


#: Ashman's D above which scores count as clearly bimodal. Splitting one normal group at its
#: valley-less middle gives about 2.7, a uniform spread about 3.5: 4 asks for a real gap.
BIMODAL_SEPARATION = 4.0


def auto_threshold(scores: np.ndarray) -> tuple[float, float]:
    """The valley between two groups of scores (Otsu's split), and how well they separate.

    Returns ``(threshold, separation)``: separation is Ashman's D, the distance between the two
    groups' means in units of their pooled spread; above :data:`BIMODAL_SEPARATION` the scores
    are clearly bimodal. With fewer than 4 scores, ``(nan, 0.0)``.

    >>> t, d = auto_threshold(np.array([0.3, 0.35, 0.4, 0.85, 0.9, 0.92]))
    >>> 0.4 < t < 0.85, d > BIMODAL_SEPARATION
    (True, True)
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if len(s) < 4:
        return float("nan"), 0.0
    best, best_var = 1, -1.0
    for i in range(1, len(s)):
        lo, hi = s[:i], s[i:]
        between = len(lo) * len(hi) * (lo.mean() - hi.mean()) ** 2
        if between > best_var:
            best, best_var = i, between
    lo, hi = s[:best], s[best:]
    spread = np.sqrt((lo.var() + hi.var()) / 2)
    separation = float(abs(hi.mean() - lo.mean()) / spread) if spread > 0 else float("inf")
    return float((lo[-1] + hi[0]) / 2), separation
