"""The LJSpeech export's metadata.csv reads back in a plain CSV reader: three columns, the text
as written, whatever quotes, separators or line breaks the transcripts hold."""

from __future__ import annotations

import csv
from pathlib import Path

from audioprep.exports import export
from audioprep.testing import make_manifest_dir, sine_file

TEXTS = {
    "q1": '"Hello," she said, "it\'s 1813."',
    "q2": 'He said "yes',  # an unclosed quote
    "q3": "a | b and\na new line",
    "q4": "plain words",
    "q5": "",
}


def test_ljspeech_metadata_loads_in_a_plain_csv_reader_with_three_columns(tmp_path: Path) -> None:
    wav = sine_file(tmp_path / "tone.wav")
    src = make_manifest_dir(
        tmp_path / "in", dict.fromkeys(TEXTS, wav), extra={k: {"text": v} for k, v in TEXTS.items()}
    )
    export(src, tmp_path / "lj", fmt="ljspeech")
    with open(tmp_path / "lj" / "metadata.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="|"))
    assert [len(r) for r in rows] == [3] * len(TEXTS)
    got = {r[0]: r[1] for r in rows}
    assert got == {k: " ".join(v.replace("|", " ").split()) for k, v in TEXTS.items()}
    # texts without quotes are written bare, as LJSpeech's own file is
    lines = (tmp_path / "lj" / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert "q4|plain words|plain words" in lines
    assert len(lines) == len(TEXTS)
