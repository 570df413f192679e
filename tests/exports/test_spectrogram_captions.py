"""export --format spectrogram-captions: fixed-size mel PNGs, captions from fields, imagefolder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprep.testing import cli

pytest.importorskip("librosa")
datasets = pytest.importorskip("datasets")

from audioprep.errors import UsageError  # noqa: E402
from audioprep.exports import export  # noqa: E402
from audioprep.exports.spectrogram_captions import render_caption  # noqa: E402

SOURCES = [
    {"genre": "nature", "genre_keyword": "fire", "title": "Campfire at night"},
    {"genre": "nature", "genre_keyword": "rain", "title": "Rain on a tent"},
    {"genre": "asmr", "title": "Page turning"},  # no genre_keyword
]


def _corpus(root: Path) -> Path:
    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, source in enumerate(SOURCES):
        sr = 8000
        t = np.arange(sr * (2 + i)) / sr
        y = 0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(root / "audio" / f"item{i}.wav", y.astype(np.float32), sr)
        rec = {
            "id": f"item{i}",
            "audio": f"audio/item{i}.wav",
            "duration": len(t) / sr,
            "sample_rate": sr,
            "channels": 1,
            "source": source,
        }
        lines.append(json.dumps(rec) + "\n")
    (root / "manifest.jsonl").write_text("".join(lines))
    return root


def test_loads_as_imagefolder_with_captions_from_fields(tmp_path: Path) -> None:
    in_dir = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    stats = export(
        in_dir, out, fmt="spectrogram-captions", caption="{genre} {genre_keyword}, {title}"
    )
    assert stats["items"] == 3 and stats["caption_fields_missing"] == {"genre_keyword": 1}
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    rows = sorted(ds, key=lambda r: r["id"])
    assert [r["text"] for r in rows] == [
        "nature fire, Campfire at night",
        "nature rain, Rain on a tent",
        "asmr, Page turning",
    ]
    for r in rows:
        assert r["image"].size == (256, 128) and r["image"].mode == "L"
    # the sine's mel band is the brightest row, higher tone higher up (low frequencies at bottom)
    peaks = [int(np.argmax(np.asarray(r["image"], dtype=float).mean(axis=1))) for r in rows]
    assert peaks[0] > peaks[1] > peaks[2]


def test_caption_template_errors_and_cli(tmp_path: Path) -> None:
    in_dir = _corpus(tmp_path / "in")
    with pytest.raises(UsageError, match="not a valid template"):
        export(in_dir, tmp_path / "x", fmt="spectrogram-captions", caption="{genre")
    with pytest.raises(UsageError, match="plain field names"):
        export(in_dir, tmp_path / "x", fmt="spectrogram-captions", caption="{source.title}")
    with pytest.raises(UsageError, match="--caption is for"):
        export(in_dir, tmp_path / "x", fmt="hf", caption="{title}")
    assert not (tmp_path / "x").exists()
    cli(
        "export",
        in_dir,
        tmp_path / "c",
        "--format",
        "spectrogram-captions",
        "--caption",
        "{title} ({duration}s)",
    )
    lines = (tmp_path / "c" / "metadata.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["text"] == "Campfire at night (2.0s)"
    assert (
        render_caption("{title}", {"id": "a", "title": "top", "source": {"title": "src"}})[0]
        == "top"
    )
