"""crossfade_windows: the windowing and cross-fades separate runs Spleeter in."""

from __future__ import annotations

import numpy as np
import pytest

from audioprep.dsp.overlap import crossfade_windows


def _run(x: np.ndarray, block: int, fn, window: int, overlap: int) -> np.ndarray:
    blocks = (x[i : i + block] for i in range(0, len(x), block))
    return np.concatenate(list(crossfade_windows(blocks, fn, window=window, overlap=overlap)))


@pytest.mark.parametrize(
    ("n", "block", "window", "overlap"),
    [(1000, 97, 100, 10), (1000, 1000, 100, 0), (101, 7, 100, 30), (99, 5, 100, 10), (1, 1, 8, 2)],
)
def test_identity_comes_back_exactly_whatever_the_block_sizes(n, block, window, overlap) -> None:
    x = np.random.default_rng(n).standard_normal((n, 2))
    y = _run(x, block, lambda w: w, window, overlap)
    assert y.shape == x.shape
    assert np.allclose(y, x, rtol=0, atol=1e-12)


def test_every_window_is_full_length_but_the_last_and_fades_are_linear() -> None:
    x = np.zeros((250, 1))
    seen: list[int] = []

    def fn(w: np.ndarray) -> np.ndarray:
        seen.append(len(w))
        return np.full_like(w, float(len(seen)))  # window k outputs the constant k

    y = _run(x, 64, fn, window=100, overlap=10)[:, 0]
    assert seen == [100, 100, 70]  # hops of 90: 0-100, 90-190, 180-250
    assert np.all(y[:90] == 1) and np.all(y[100:180] == 2) and np.all(y[190:] == 3)
    fade = y[90:100]  # from window 1 to window 2, strictly rising, never reaching either end
    assert np.all(np.diff(fade) > 0) and fade[0] > 1 and fade[-1] < 2
    assert np.allclose(fade, 1 + np.arange(1, 11) / 11)


def test_overlap_must_be_shorter_than_the_window() -> None:
    with pytest.raises(ValueError, match="overlap"):
        list(crossfade_windows([np.zeros((5, 1))], lambda w: w, window=4, overlap=4))
