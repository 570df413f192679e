"""Clustering feature vectors after standardising each dimension (scikit-learn)."""

from __future__ import annotations

import numpy as np


def cluster_standardised(
    x: np.ndarray, *, n_clusters: int, method: str = "kmeans", seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster rows of ``x`` ``(n, d)`` after scaling each column to zero mean and unit variance.

    Returns ``(labels (n,) int, distances (n,) float, centroids (k, d))``: each row's cluster
    (numbered by first appearance, so the numbering does not depend on the algorithm's), its
    Euclidean distance to its cluster's centroid and the centroids, in standardised units.
    ``method``: ``kmeans`` (k-means++, 10 starts, ``seed``) or ``agglomerative`` (Ward).

    >>> x = np.array([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5]])
    >>> labels, dist, _ = cluster_standardised(x, n_clusters=2)
    >>> labels.tolist()
    [0, 0, 1, 1]
    """
    from sklearn.cluster import AgglomerativeClustering, KMeans
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(np.asarray(x, dtype=np.float64))
    if method == "kmeans":
        raw = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(z)
    elif method == "agglomerative":
        raw = AgglomerativeClustering(n_clusters=n_clusters, linkage="ward").fit_predict(z)
    else:
        raise ValueError(f"method must be kmeans or agglomerative, not {method!r}")
    order: dict[int, int] = {}
    for c in raw:
        order.setdefault(int(c), len(order))
    labels = np.array([order[int(c)] for c in raw], dtype=int)
    centroids = np.stack([z[labels == c].mean(axis=0) for c in range(n_clusters)])
    distances = np.linalg.norm(z - centroids[labels], axis=1)
    return labels, distances, centroids
