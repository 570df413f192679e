"""`audioprep run --estimate`: start-up counted once, columns that stay aligned, units that fit."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from audioprep.chains.estimate import StageEstimate, render, span, split_wall_time
from audioprep.testing import cli, make_manifest_dir, sine_file

#: A stage whose start-up (a model loading) takes 2 s and whose items take almost nothing.
SLOW_START = '''
"""slow-start-with-a-long-name: Sleep at start-up, then link each item."""
import dataclasses
import time

from audioprep.core.stage import MapStage


class SlowStart(MapStage):
    """Example: `audioprep slow-start-with-a-long-name in/ out/`"""

    name = "slow-start-with-a-long-name"

    @dataclasses.dataclass(frozen=True)
    class Params:
        pass

    def setup(self, ctx):
        time.sleep(2.0)

    def process(self, record, ctx):
        src = ctx.input_audio(record)
        return [{**record, "audio": ctx.link(src, f"{record['id']}{src.suffix}")}]
'''


def test_start_up_is_counted_once_not_per_item(tmp_path: Path) -> None:
    # an outside stage, registered by an installed distribution's entry point
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "slow_start_with_a_long_name.py").write_text(textwrap.dedent(SLOW_START))
    info = folder / "slow_start-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-start\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[audioprep.stages]\nslow-start-with-a-long-name = slow_start_with_a_long_name\n"
    )
    files = [sine_file(tmp_path / f"f{i}.wav", seconds=1.0) for i in range(10)]
    src = make_manifest_dir(tmp_path / "in", files)
    config = tmp_path / "chain.yaml"
    config.write_text(f"input: {src}\njobs: 1\nstages:\n  - slow-start-with-a-long-name\n")
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    proc = cli("run", config, "--estimate", 2, env=env)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("estimate: 2 of 10 items (2.0 s of 10.0 s)"), lines
    head, row, total = lines[1], lines[2], lines[3]
    cells = row.split()
    assert cells[0] == "01-slow-start-with-a-long-name"
    # start-up: the 2 s sleep, once; the whole run: not 5 x the sample's 2+ s
    startup = float(cells[3])
    assert cells[4] == "s" and startup >= 2.0
    wall, unit = float(cells[7]), cells[8]
    assert unit == "s" and wall < 2 * startup, row
    # the columns line up whatever the stage's name (right-aligned: every line ends alike)
    assert len(head) == len(row) == len(total)
    assert head.index("audio kept") + len("audio kept") == row.index(" s ") + 2
    assert "0.0 h" not in proc.stdout  # a small corpus in seconds, not 0.0 h


def test_split_wall_time() -> None:
    # 4 items on 2 workers, typically 2 s each (the first paid 7 s of lazy loading): 26 s load
    assert split_wall_time(30.0, [2.0, 9.0, 2.0, 2.0], jobs=2, factor=100.0) == (26.0, 400.0)
    # a sample smaller than the pool ran on as many workers as it had items
    assert split_wall_time(10.0, [6.0], jobs=4, factor=10.0) == (4.0, 15.0)
    # never a negative start-up
    assert split_wall_time(1.0, [1.0] * 5, jobs=1, factor=2.0) == (0.0, 10.0)


def test_render_aligns_long_names_and_picks_units() -> None:
    rows = [
        StageEstimate("01-convert", 0, 0, 1.0, 0, 0.001, 40.0, 5 * 2**20, 1.0, 39.0),
        StageEstimate("09-speaker-filter-reject-mixed", 0, 0, 9.0, 0, 250.0, 9000, 2**35, 60, 8940),
    ]
    lines = render(rows).splitlines()
    assert len({len(line) for line in lines}) == 1, lines
    assert "3.6 s" in lines[1] and "5.0 MB" in lines[1]  # 0.001 h of audio kept
    assert "250.0 h" in lines[2] and "32.0 GB" in lines[2] and "2.5 h" in lines[2]
    assert span(0.4) == "0.4 s" and span(120) == "2.0 min"
