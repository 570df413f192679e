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


# -- speaker changes inside one clip --------------------------------------------------------


def change_point(
    partials: np.ndarray, *, min_windows: int = 2, guard: int = 1
) -> tuple[int, float, float]:
    """The most likely speaker change among a clip's partial-window embeddings ``(k, d)``.

    Tries every split with at least ``min_windows`` windows on each side, leaving out the
    ``guard`` windows next to the split (a 1.6 s window straddling a change holds both voices).
    Returns ``(index, similarity, position)``: the first window of the second voice, the cosine
    similarity of the two sides' centroids (low: two voices), and the change as a fractional
    window index (where each window's similarity to the two sides crosses over). With too few
    windows, ``(-1, 1.0, nan)``.

    >>> a, b = np.eye(4)[0] + 0.1, np.eye(4)[1] + 0.1
    >>> k, sim, pos = change_point(np.array([a, a, a, a, b, b, b]))
    >>> k, round(sim, 2) < 0.5, bool(3.0 <= pos <= 4.0)
    (4, True, True)
    """
    x = unit(np.atleast_2d(partials))
    n = len(x)
    candidates = np.arange(min_windows + guard, n - min_windows - guard + 1)
    if not len(candidates):
        return -1, 1.0, float("nan")
    # the two sides' centroids from running sums: O(n d), not O(n^2 d) (a 3-hour item has
    # 14,000 windows)
    run = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    left = unit(run[candidates - guard])
    right = unit(run[n] - run[candidates + guard])
    sims = np.einsum("ij,ij->i", left, right)
    ties = np.flatnonzero(sims <= sims.min() + 1e-9)  # equally good: the middle one
    k, sim = int(candidates[int(ties[len(ties) // 2])]), float(sims.min())
    a, b = unit(run[k - guard]), unit(run[n] - run[k + guard])
    d = x @ a - x @ b  # positive: first voice
    cross = np.flatnonzero((d[:-1] >= 0) & (d[1:] < 0))
    crossings = cross + d[cross] / (d[cross] - d[cross + 1])
    pos = float(crossings[np.argmin(np.abs(crossings - (k - 0.5)))]) if len(crossings) else k - 0.5
    return k, sim, float(pos)


def turns(
    partials: np.ndarray, *, change_similarity: float, min_windows: int = 2, depth: int = 3
) -> list[tuple[int, int, float]]:
    """Split a clip's windows ``(k, d)`` into runs of one voice, by binary segmentation.

    Returns ``[(first, stop, position)]``: window ranges ``[first, stop)`` and the fractional
    window index where each run starts (0.0 for the first). One run when no split has sides
    less similar than ``change_similarity``.

    >>> a, b = np.eye(4)[0] + 0.1, np.eye(4)[1] + 0.1
    >>> [(f, s) for f, s, _ in turns(np.array([a] * 4 + [b] * 4), change_similarity=0.6)]
    [(0, 4), (4, 8)]
    """
    x = np.atleast_2d(partials)

    def split(first: int, stop: int, start_pos: float, level: int) -> list[tuple[int, int, float]]:
        if level <= 0:
            return [(first, stop, start_pos)]
        k, sim, pos = change_point(x[first:stop], min_windows=min_windows)
        if k < 0 or sim >= change_similarity:
            return [(first, stop, start_pos)]
        return split(first, first + k, start_pos, level - 1) + split(
            first + k, stop, first + pos, level - 1
        )

    return split(0, len(x), 0.0, depth)


# -- the voices of a corpus -----------------------------------------------------------------


def cluster_voices(
    embeddings: np.ndarray, *, stop_similarity: float = 0.7, weights: np.ndarray | None = None
) -> np.ndarray:
    """Label each embedding ``(n, d)`` with a voice, choosing the number of voices:
    average-linkage agglomerative clustering on cosine distance that stops merging when two
    groups are on average less similar than ``stop_similarity``. Voice 0 has the largest total
    ``weights`` (seconds; default: one per item), voice 1 the next, and so on.

    >>> a, b = np.eye(3)[0], np.eye(3)[1]
    >>> cluster_voices(np.array([a, b, a + 0.1 * b, b]), weights=np.array([1, 5, 1, 1])).tolist()
    [1, 0, 1, 0]
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    x = unit(np.atleast_2d(embeddings))
    if len(x) < 2:
        return np.zeros(len(x), dtype=int)
    labels = fcluster(
        linkage(x, method="average", metric="cosine"), t=1 - stop_similarity, criterion="distance"
    )
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    values = np.unique(labels)
    totals = np.array([w[labels == v].sum() for v in values])
    order = values[np.argsort(-totals, kind="stable")]
    remap = {v: i for i, v in enumerate(order)}
    return np.array([remap[v] for v in labels])


def quietest(
    wav: np.ndarray, *, sr: int, around: float, radius: float = 1.0, smooth: float = 0.15
) -> float:
    """The time (s) of the quietest ``smooth``-second stretch of ``wav`` ``(n,)`` within
    ``radius`` seconds of ``around``: where a speaker change most likely falls (a pause).

    >>> x = np.ones(16000 * 4); x[int(2.2 * 16000):int(2.4 * 16000)] = 0
    >>> round(quietest(x, sr=16000, around=2.0), 1)
    2.3
    """
    w = np.asarray(wav, dtype=np.float64)
    a = max(0, int((around - radius) * sr))
    b = min(len(w), int((around + radius) * sr))
    if b - a < 2:
        return float(around)
    hop = max(1, int(0.01 * sr))
    seg = w[a:b]
    frames = len(seg) // hop
    if frames < 3:
        return float(around)
    energy = (seg[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    k = max(1, int(round(smooth / 0.01)))
    smoothed = np.convolve(energy, np.ones(k) / k, mode="same")
    # ties (digital silence): the middle of the quietest run nearest the estimate
    low = np.flatnonzero(smoothed <= smoothed.min() * (1 + 1e-6) + 1e-12)
    runs = np.split(low, np.flatnonzero(np.diff(low) > 1) + 1)
    centres = [(r[0] + r[-1]) / 2 for r in runs]
    target = (around * sr - a) / hop
    best = min(centres, key=lambda c: abs(c - target))
    return float((a + (best + 0.5) * hop) / sr)


# -- the target as a voice: joined clusters, a cohort of other voices, confirmed changes -----


def cluster_centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The centroid of each voice ``0 .. labels.max()``: ``(k, d)``."""
    x = unit(np.atleast_2d(embeddings))
    k = int(labels.max()) + 1 if len(labels) else 0
    return np.array([centroid(x[labels == c]) for c in range(k)]).reshape(k, x.shape[1])


def voice_scores(embeddings: np.ndarray, voices: np.ndarray) -> np.ndarray:
    """Each row's cosine with the nearest of ``voices`` ``(m, d)``: the target rendered several
    ways (the adapted voice and the corpus's clusters that joined it). Shape ``(n,)``.

    >>> voice_scores(np.eye(3), np.array([[1.0, 0, 0], [0, 1.0, 0]])).tolist()
    [1.0, 1.0, 0.0]
    """
    return (unit(np.atleast_2d(embeddings)) @ unit(np.atleast_2d(voices)).T).max(axis=1)


def multi_snorm(
    scores: np.ndarray,
    embeddings: np.ndarray,
    voices: np.ndarray,
    cohort: np.ndarray,
    *,
    top: int = 20,
    exclude_self: np.ndarray | None = None,
) -> np.ndarray:
    """Adaptive symmetric score normalisation (AS-norm) of ``scores`` ``(n,)`` against a
    voice of several renderings ``voices`` ``(r, d)``.

    Each score is measured in standard deviations above the ``top`` cohort embeddings most
    similar to the clip, and above those most similar to the voice (each cohort member scored
    against its nearest rendering, :func:`voice_scores`); the two are averaged.
    ``exclude_self`` (bool ``(n, m)``) marks cohort members that are the clip itself."""
    x, c = unit(np.atleast_2d(embeddings)), unit(np.atleast_2d(cohort))
    k = max(1, min(top, len(c) - 1 if exclude_self is not None else len(c)))
    sims = x @ c.T
    if exclude_self is not None:
        sims = np.where(exclude_self, -np.inf, sims)
    best = -np.sort(-sims, axis=1)[:, :k]
    mu_e, sd_e = best.mean(axis=1), best.std(axis=1) + 1e-3
    vs = np.sort(voice_scores(c, voices))[::-1][:k]
    mu_v, sd_v = vs.mean(), vs.std() + 1e-3
    return 0.5 * ((scores - mu_e) / sd_e + (scores - mu_v) / sd_v)


def voice_decision(
    embeddings: np.ndarray,
    voice: np.ndarray,
    labels: np.ndarray,
    *,
    anchor: np.ndarray | None = None,
    adapt: bool = True,
    threshold: float | None = None,
    auto_z: float = 2.0,
    join: float = 0.8,
    cohort_below: float = 0.6,
    bank: np.ndarray | None = None,
    min_cohort: int = 20,
    enrol_above: float = 0.8,
    enrol_floor: float = 0.6,
    iterations: int = 3,
    min_enrol: int = 3,
    top: int = 20,
    fixed: float = 0.75,
    rendering_clusters: bool = False,
    join_low: float | None = None,
    join_high: float = 0.9,
    bank_margin: float = 0.12,
    use_bank: bool = True,
    floor: float | None = None,
) -> dict:
    """Which embeddings ``(n, d)`` are the target voice, the corpus's voices ``labels`` ``(n,)``
    (:func:`cluster_voices`) known.

    1. Adaptation (``adapt``): the voice is re-enrolled from the embeddings scoring
       ``enrol_above`` or more (that also pass ``fixed`` against the first voice) and the members
       of the cluster nearest the voice scoring ``enrol_floor`` or more, with ``anchor`` (the
       references) as one more member; up to ``iterations`` rounds.
    2. Joining: every cluster whose centroid is at least ``join`` similar to the adapted voice or
       to ``anchor`` (with ``bank`` and ``join_low``: at least ``join_low`` similar and
       ``bank_margin`` more similar than to any voice of the bank, or at least ``join_high``)
       is the target rendered another way (another episode, bed or codec): its
       members never serve as impostors. A unit's score is its cosine with the adapted voice
       (with ``rendering_clusters``, with the nearest of the voice and the joined clusters'
       centroids: measured worse, it keeps clusters of two-voice clips whole).
    3. Decision: ``score >= threshold``; or (``threshold=None``) the score normalised
       (:func:`multi_snorm`) against a cohort of clearly-other voices (members of clusters that
       did not join, with centroids below ``cohort_below``), to which ``bank`` (embeddings of
       other voices) is added when the corpus holds fewer than ``min_cohort`` of them (and,
       with ``floor``, the score at least ``floor``);
       ``z >= auto_z`` keeps.

    Returns a dict: ``keep``, ``score``, ``initial`` (cosine with the first voice), ``z`` (or
    None), ``voice`` (the adapted voice), ``renderings`` ``(m, d)``, ``joined`` (bool per
    cluster), ``cluster_similarity`` (per cluster: cosine of its centroid with the voice),
    ``enrolment``, ``threshold`` (the cosine the decision amounts to), ``calibration``.

    >>> rng = np.random.default_rng(1)
    >>> host, guests = rng.normal(size=32), rng.normal(size=(3, 32))
    >>> x = np.array([host + rng.normal(scale=0.4, size=32) for _ in range(10)]
    ...              + [g + rng.normal(scale=0.4, size=32) for g in guests for _ in range(5)])
    >>> labels = cluster_voices(x)
    >>> r = voice_decision(x, host + rng.normal(scale=0.3, size=32), labels)
    >>> r["keep"].tolist() == [True] * 10 + [False] * 15, int(r["joined"].sum())
    (True, 1)
    """
    x = unit(np.atleast_2d(embeddings))
    n = len(x)
    labels = np.asarray(labels, dtype=int)
    v = unit(voice)
    initial = x @ v
    score = initial
    cents = cluster_centroids(x, labels) if n else np.zeros((0, x.shape[1]))
    sets: list[np.ndarray] = []

    # with a bank: near the voice (join_low) and clearly nearer it than any other known voice
    # (bank_margin), or very near it (join_high); measured on the benchmark's clusters, a
    # same-gender guest's cluster can come 0.82-0.85 near the voice but stays within 0.11 of
    # the bank, where the host's renderings stand 0.14-0.30 clear of it
    b = unit(bank) if bank is not None and len(bank) and join_low is not None else None
    clear_of_bank = (
        np.zeros(len(cents)) if b is None or not len(cents) else (cents @ b.T).max(axis=1)
    )

    def near_to(sim: np.ndarray) -> np.ndarray:
        if b is None:
            return sim >= join
        return ((sim >= join_low) & (sim - clear_of_bank >= bank_margin)) | (sim >= join_high)

    def joining(v: np.ndarray) -> np.ndarray:
        near = near_to(cents @ v)
        if anchor is not None and len(cents):
            near |= near_to(cents @ unit(anchor))
        if len(cents) and not near.any() and float((cents @ v).max()) >= cohort_below:
            near[int(np.argmax(cents @ v))] = True  # at least the nearest cluster
        return near

    if adapt and n:
        for _ in range(max(0, iterations)):
            # the voice as this corpus renders it: the clusters near it (re-joined each round,
            # so a rendering the references missed joins once the voice has moved towards it)
            target = np.isin(labels, np.flatnonzero(joining(v)))
            clear = (score >= enrol_above) & (initial >= fixed) | (target & (score >= enrol_floor))
            chosen = np.flatnonzero(clear)
            if len(chosen) < min_enrol or (sets and np.array_equal(chosen, sets[-1])):
                break
            sets.append(chosen)
            pool = x[chosen] if anchor is None else np.vstack([x[chosen], unit(anchor)[None]])
            v = centroid(pool)
            score = x @ v
    sim_v = cents @ v
    joined = joining(v) if n else np.zeros(0, dtype=bool)
    sizes = np.bincount(labels, minlength=len(cents)) if n else np.zeros(0, int)
    # scored against the adapted voice alone: a joined cluster's own centroid as one more
    # rendering kept whole clusters of two-voice clips (the benchmark's purity fell to 0.73)
    renderings = (
        v[None] if not rendering_clusters else np.vstack([v[None], cents[joined & (sizes >= 2)]])
    )
    score = voice_scores(x, renderings) if n else initial
    calibration: dict = {"joined_clusters": int(joined.sum())}
    z = None
    cohort = np.zeros((0, x.shape[1]))
    if threshold is not None:
        keep = score >= threshold
        calibration.update(method="fixed")
        used = float(threshold)
    else:
        other = np.flatnonzero(~joined & (sim_v < cohort_below))
        members = np.flatnonzero(np.isin(labels, other))
        cohort = x[members]
        from_bank = 0
        if len(members) < min_cohort and bank is not None and len(bank) and use_bank:
            cohort = np.vstack([cohort, unit(bank)])
            from_bank = len(bank)
        calibration.update(
            cohort=int(len(members)), cohort_clusters=int(len(other)), bank=from_bank, top=top
        )
        if len(cohort) >= 2:
            exclude = np.zeros((n, len(cohort)), dtype=bool)
            exclude[members, np.arange(len(members))] = True
            z = multi_snorm(score, x, renderings, cohort, top=top, exclude_self=exclude)
            keep = z >= auto_z
            if floor is not None:  # never below the encoder's own floor of other voices
                keep &= score >= floor
            calibration.update(method="s-norm", z_threshold=auto_z, floor=floor)
            kept, dropped = score[keep], score[~keep]
            used = float((kept.min() + dropped.max()) / 2) if len(kept) and len(dropped) else fixed
        else:
            keep = score >= fixed
            calibration.update(
                method="fixed",
                note=f"no clearly-other voices and no bank to normalise against: "
                f"used the fixed threshold {fixed}",
            )
            used = fixed
    return {
        "keep": np.asarray(keep, dtype=bool),
        "score": score,
        "initial": initial,
        "z": z,
        "voice": v,
        "cohort": None if z is None else cohort,
        "renderings": renderings,
        "joined": joined,
        "cluster_similarity": sim_v,
        "enrolment": sets,
        "threshold": round(used, 4),
        "fixed_threshold": used if z is None else None,
        "top": top,
        "floor": floor,
        "calibration": calibration,
    }


def other_voice_evidence(
    side: np.ndarray,
    voice_score: float,
    others: np.ndarray,
) -> float:
    """How much better one side of a candidate change matches another voice than the target:
    its cosine with the nearest of ``others`` ``(m, d)`` (the corpus's voices that did not join
    the target, and the impostor bank) minus ``voice_score``; ``-inf`` without ``others``.

    >>> other_voice_evidence(np.array([0.0, 1.0]), 0.1, np.array([[0.0, 1.0]]))
    0.9
    """
    if not len(others):
        return float("-inf")
    return float((unit(np.atleast_2d(others)) @ unit(side)).max() - voice_score)


def score_more(result: dict, embeddings: np.ndarray, *, auto_z: float) -> tuple:
    """Score more embeddings ``(n, d)`` by a :func:`voice_decision` already made (same voice,
    renderings, cohort and threshold): ``(keep, score, z or None)``, each ``(n,)``."""
    x = unit(np.atleast_2d(embeddings))
    score = voice_scores(x, result["renderings"])
    if result["z"] is None:
        return score >= result["fixed_threshold"], score, None
    z = multi_snorm(score, x, result["renderings"], result["cohort"], top=result["top"])
    keep = z >= auto_z
    if result.get("floor") is not None:
        keep &= score >= result["floor"]
    return keep, score, z
