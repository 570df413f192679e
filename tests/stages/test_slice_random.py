"""slice --random: N excerpts per item, reproducible, inside the item, non-overlapping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from audioprep.dsp.slicing import random_excerpts
from audioprep.errors import UsageError
from audioprep.run.runner import run_stage
from audioprep.stages.slice import SliceStage
from audioprep.testing import read_jsonl


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 10_000),
    count=st.integers(0, 12),
    length=st.integers(1, 3000),
    seed=st.integers(0, 2**31),
    overlap_ok=st.booleans(),
)
def test_excerpts_within_non_overlapping_counted(n, count, length, seed, overlap_ok) -> None:
    got = random_excerpts(n, count=count, length=length, seed=seed, key="x", overlap_ok=overlap_ok)
    assert got == random_excerpts(
        n, count=count, length=length, seed=seed, key="x", overlap_ok=overlap_ok
    )
    assert all(a >= 0 and b <= n and b - a == length for a, b in got)
    assert got == sorted(got)
    if n < length:
        assert got == []
    elif overlap_ok:
        assert len(got) == count
    else:
        assert len(got) == min(count, n // length)
        assert all(b0 <= a1 for (_, b0), (a1, _) in zip(got, got[1:], strict=False))


def test_seed_and_key_change_the_draw() -> None:
    base = random_excerpts(10**6, count=5, length=1000, seed=1, key="a")
    assert random_excerpts(10**6, count=5, length=1000, seed=2, key="a") != base
    assert random_excerpts(10**6, count=5, length=1000, seed=1, key="b") != base
    # starts spread over the whole item, not bunched at one end
    starts = [a for s in range(200) for a, _ in random_excerpts(1000, count=1, length=100, seed=s)]
    assert min(starts) < 100 and max(starts) > 800


def _dir(root: Path, items: dict[str, float], sr: int = 8000) -> Path:
    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for item_id, seconds in items.items():
        y = (rng.standard_normal(round(seconds * sr)) * 0.1).astype(np.float32)
        sf.write(root / "audio" / f"{item_id}.wav", y, sr, subtype="PCM_16")
        rec = {
            "id": item_id,
            "audio": f"audio/{item_id}.wav",
            "duration": seconds,
            "sample_rate": sr,
            "channels": 1,
        }
        lines.append(json.dumps(rec) + "\n")
    (root / "manifest.jsonl").write_text("".join(lines))
    return root


def _slice(in_dir: Path, out: Path, **params) -> tuple[list[dict], list[dict]]:
    stage = SliceStage(SliceStage.Params(**params))
    stage.check()
    run_stage(stage, out, in_dir=in_dir, jobs=1, progress=False)
    return read_jsonl(out / "manifest.jsonl"), read_jsonl(out / "rejected.jsonl")


def test_stage_random_excerpts(tmp_path: Path) -> None:
    in_dir = _dir(tmp_path / "in", {"long": 20.0, "short": 3.0})
    clips, rejected = _slice(in_dir, tmp_path / "a", random=3, duration=5.0, seed=7)
    assert [c["parent"] for c in clips] == ["long"] * 3
    assert [r["id"] for r in rejected] == ["short"] and "shorter than --duration" in rejected[0][
        "reason"
    ]
    spans = [(c["slice"]["start_sample"], c["slice"]["end_sample"]) for c in clips]
    assert all(b - a == 40_000 and a >= 0 and b <= 160_000 for a, b in spans)
    assert all(b0 <= a1 for (_, b0), (a1, _) in zip(spans, spans[1:], strict=False))
    for c in clips:
        y, sr = sf.read(tmp_path / "a" / c["audio"], dtype="int16")
        parent, _ = sf.read(in_dir / "audio" / "long.wav", dtype="int16")
        a = c["slice"]["start_sample"]
        assert len(y) == 40_000 and np.array_equal(y, parent[a : a + 40_000])
        assert c["offset"] == round(a / 8000, 6) and c["duration"] == 5.0
    again, _ = _slice(in_dir, tmp_path / "b", random=3, duration=5.0, seed=7)
    assert [c["slice"] for c in again] == [c["slice"] for c in clips]
    other, _ = _slice(in_dir, tmp_path / "c", random=3, duration=5.0, seed=8)
    assert [c["slice"] for c in other] != [c["slice"] for c in clips]
    kept, rejected = _slice(in_dir, tmp_path / "d", random=3, duration=5.0, short="keep")
    assert [c["duration"] for c in kept if c["parent"] == "short"] == [3.0] and not rejected
    many, _ = _slice(in_dir, tmp_path / "e", random=6, duration=5.0, overlap_ok=True)
    assert sum(c["parent"] == "long" for c in many) == 6


def test_random_options_checked() -> None:
    for bad in (
        {"random": 0},
        {"random": 2, "chunk": 3.0},
        {"random": 2, "duration": 0.0},
        {"random": 2, "short": "pad"},
    ):
        with pytest.raises(UsageError):
            SliceStage(SliceStage.Params(**bad)).check()
