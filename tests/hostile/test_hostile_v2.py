"""Hostile input v2 (issue 28): one test (or a parametrised group) per finding, on real files.

Each test names its item number. Memory cases live in ``test_memory.py``.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprep.errors import UsageError
from audioprep.testing import read_jsonl


def manifest(root: Path, items: dict[str, np.ndarray | bytes], *, sr: int = 16000, **extra) -> Path:
    """A manifest directory ``root`` holding one wav per id (an array) or raw bytes (a damaged
    file), each record carrying ``extra[id]`` fields when given."""
    (root / "audio").mkdir(parents=True)
    lines = []
    for item_id, data in items.items():
        name = f"audio/{item_id.replace('.', '-')}.wav"
        if isinstance(data, bytes):
            (root / name).write_bytes(data)
            frames, channels = 8000, 1
        else:
            sf.write(root / name, data, sr)
            frames, channels = len(data), (1 if data.ndim == 1 else data.shape[1])
        rec = {
            "id": item_id,
            "audio": name,
            "duration": frames / sr,
            "sample_rate": sr,
            "channels": channels,
            **extra.get(item_id, {}),
        }
        lines.append(json.dumps(rec) + "\n")
    (root / "manifest.jsonl").write_text("".join(lines))
    return root


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# -- 17: webdataset keys -----------------------------------------------------------------------
def test_17_webdataset_keys_stay_unique_after_dots_go(tmp_path: Path) -> None:
    from audioprep.exports import export

    src = manifest(tmp_path / "in", {"dot.id": tone(0.2), "dot_id": tone(0.2, freq=300)})
    export(src, tmp_path / "out", fmt="webdataset")
    with tarfile.open(tmp_path / "out" / "shard-000000.tar") as tar:
        names = tar.getnames()
        keys = {n.rsplit(".", 1)[0] for n in names}
        ids = {json.load(tar.extractfile(n))["id"] for n in names if n.endswith(".json")}
    assert len(names) == 4 and len(keys) == 2 and ids == {"dot.id", "dot_id"}
    assert all("." not in k for k in keys)


# -- 11: one bad record in an export is skipped, not fatal --------------------------------------
@pytest.mark.parametrize("fmt", ["lhotse", "spectrogram-captions"])
def test_11_one_bad_record_is_an_export_error(tmp_path: Path, fmt: str) -> None:
    pytest.importorskip("lhotse" if fmt == "lhotse" else "PIL")
    from audioprep.exports import export

    items = {"good": tone(1.0), "words": tone(1.0, freq=300), "broken": b"RIFF\x00garbage" * 10}
    src = manifest(tmp_path / "in", items, words={"words": [1, 2]})
    stats = export(src, tmp_path / "out", fmt=fmt)
    errors = read_jsonl(tmp_path / "out" / "export-errors.jsonl")
    skipped = {e.get("id") for e in errors}
    assert "broken" in skipped
    if fmt == "lhotse":
        assert "words" in skipped and stats["items"] == 1
    assert stats["exit_code"] == 1
    assert all("\n" not in e["reason"] and e["reason"] for e in errors)
    # nothing of a skipped item is left in OUT
    assert not list((tmp_path / "out").rglob("broken*"))


# -- 27: caption templates -------------------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    ["{duration:.999999999f}", "{0}", "{title:{id}}", "{title!z}", "{duration:999999d}", "{}"],
)
def test_27_caption_specs_are_checked_before_any_work(tmp_path: Path, template: str) -> None:
    from audioprep.exports import export

    src = manifest(tmp_path / "in", {"a": tone(0.5)})
    with pytest.raises(UsageError, match="--caption"):
        export(src, tmp_path / "out", fmt="spectrogram-captions", caption=template)
    assert not (tmp_path / "out").exists()


def test_27_a_spec_that_does_not_fit_a_value_gives_its_text() -> None:
    from audioprep.exports.spectrogram_captions import render_caption

    rec = {"id": "a", "duration": 1.5, "title": "Rain"}
    assert render_caption("{title:.2f} {duration:d} {duration:>6.2f}", rec)[0] == "Rain 1.5 1.50"
