"""The report in a real browser: the threshold explorer, and the defects issue 27 found."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from audioprep.cli.app import app
from audioprep.reports.html import write_report
from audioprep.run.runner import run_stage
from audioprep.stages.loudness import LoudnessStage
from audioprep.stages.quality import QualityStage
from audioprep.testing import ToyStage, arrays_manifest_dir, read_jsonl

SR = 16000


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed (make chromium installs it)")
    return found


def render(page: Path, tmp: Path, script: str = "") -> tuple[str, list[str]]:
    """The DOM of ``page`` after its scripts (and ``script``, run last) ran in headless
    chromium at 1100 px wide, and the console lines."""
    if script:
        copy = page.with_name(f"probe-{page.name}")
        text = page.read_text(encoding="utf-8")
        copy.write_text(text.replace("</body>", f"<script>{script}</script></body>"))
        page = copy
    args = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,2400",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return proc.stdout, [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]


def _attr(dom: str, name: str) -> str:
    m = re.search(rf'{name}="([^"]*)"', dom)
    assert m, f"{name} not in the page"
    import html

    return html.unescape(m.group(1))


def _corpus(root: Path) -> Path:
    rng = np.random.default_rng(1)
    files = {}
    for i, (seconds, noise) in enumerate(
        [(2, 0.0), (5, 0.3), (8, 0.01), (11, 0.1), (13, 0.0), (3, 1.0), (6, 0.03), (4, 0.05)]
    ):
        t = np.arange(int(seconds * SR)) / SR
        x = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        x = x + noise * 0.3 * rng.standard_normal(t.size)
        files[f"c{i}"] = ((x / max(1.0, np.abs(x).max())).astype(np.float32), SR)
    return arrays_manifest_dir(root, files, source=lambda i: {"path": f"/data/s{i[-1]}/{i}.wav"})


#: Set the quality.snr_db threshold to T in the page's control, tick quality_pass off and
#: copy what the page then shows into attributes the test reads.
PROBE = """
(function(){
  var row = document.querySelector('#explorer tr[data-score="quality.snr_db"]');
  var input = row.querySelector('input[type=number]');
  input.value = '%s';
  input.dispatchEvent(new Event('input'));
  var b = document.body;
  b.setAttribute('data-command', document.querySelector('.explorer-command').value);
  b.setAttribute('data-kept', document.querySelector('.explorer-kept').textContent);
  var srcs = [];
  document.querySelectorAll('.margin-clip').forEach(function(c){
    var a = c.querySelector('audio');
    srcs.push(c.getAttribute('data-side') + ':' + (a ? a.getAttribute('src') : ''));
  });
  b.setAttribute('data-margin', srcs.join('|'));
})();
"""


def test_explorer_after_quality_chooses_what_select_then_keeps(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "in")
    scored = tmp_path / "scored"
    stage = QualityStage(QualityStage.Params(dnsmos=False, min_snr=20.0, annotate_only=True))
    run_stage(stage, scored, in_dir=src, jobs=1, progress=False)
    records = read_jsonl(scored / "manifest.jsonl")
    page, _, _ = write_report(scored, samples=0)
    text = page.read_text()
    assert "Threshold explorer" in text and "http://" not in text and "https://" not in text
    assert "<script src" not in text  # nothing fetched
    snrs = sorted(r["quality"]["snr_db"] for r in records)
    t = round(snrs[len(snrs) // 2 - 1] + 0.001, 3)  # between two measured values
    dom, console = render(page, tmp_path, PROBE % t)
    assert console == [], console
    assert 'data-rendered="ok"' in dom and 'data-ready="ok"' in dom
    want = [r for r in records if r["quality"]["snr_db"] >= t]
    assert 0 < len(want) < len(records)
    kept = _attr(dom, "data-kept")
    assert kept.startswith(f"kept: {len(want)} of {len(records)} items"), kept
    command = _attr(dom, "data-command")
    assert command == f'audioprep select {scored} SELECTED/ --where "quality.snr_db >= {t:g}"'
    # the clips on either side of the margin, each with a player whose file is there
    margin = _attr(dom, "data-margin").split("|")
    sides = {m.split(":", 1)[0] for m in margin}
    assert sides == {"kept", "dropped"}
    for m in margin:
        assert (page.parent / m.split(":", 1)[1]).is_file(), m
    # the table: items and hours kept at thresholds across the range, the pass field offered
    assert "data-score='quality.snr_db'" in text and 'data-pass="quality_pass"' in dom
    # and the line it built selects the same items
    where = command.split("--where ", 1)[1].strip('"')
    out = tmp_path / "chosen"
    result = CliRunner().invoke(app, ["select", str(scored), str(out), "--where", where, "--quiet"])
    assert result.exit_code == 0, result.output
    assert {r["id"] for r in read_jsonl(out / "manifest.jsonl")} == {r["id"] for r in want}

    # defect: "mean OVRL nan" per source when DNSMOS is off
    table = dom[dom.index("<h3>Per source</h3>") :].split("</table>")[0]
    assert "nan" not in table and "mean WADA-SNR (dB)" in table


def test_speaker_threshold_is_found_upstream_and_drawn(tmp_path: Path) -> None:
    """The chain's last directory (loudness) reports the threshold speaker-filter used."""
    spk = _corpus(tmp_path / "spk")
    lines = read_jsonl(spk / "manifest.jsonl")
    for i, r in enumerate(lines):
        r["speaker_similarity"] = 0.7 + 0.02 * i
    (spk / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (spk / "stage.json").write_text(
        json.dumps({"stage": "speaker-filter", "params": {"threshold": 0.75}, "input": None})
    )
    (spk / "decision.json").write_text(json.dumps({"threshold": 0.75}))
    after = tmp_path / "after"
    run_stage(ToyStage(), after, in_dir=spk, jobs=1, progress=False)
    page, _, numbers = write_report(after, samples=0)
    assert numbers["speaker_similarity"]["threshold"] == 0.75
    dom, console = render(page, tmp_path)
    assert console == [] and 'data-rendered="ok"' in dom
    section = dom[dom.index("<h2>Speaker similarity</h2>") :].split("<h2>")[1]
    assert "threshold (red line): 0.75" in section and "None" not in section
    assert '<line class="mark"' in section


#: For each chart title, the chart right under it (nearest svg below, overlapping in x): its
#: axis text, so the test sees which chart a title sits over.
LAYOUT = """
(function(){
  var out = [];
  var svgs = Array.prototype.slice.call(document.querySelectorAll('svg'));
  ['Measured loudness (LUFS), target in red', 'Applied gain (dB)'].forEach(function(title){
    var el = Array.prototype.slice.call(document.querySelectorAll('b')).filter(function(b){
      return b.textContent === title; })[0];
    if (!el) { out.push(title + '=missing'); return; }
    var r = el.getBoundingClientRect(), best = null, gap = 1e9;
    svgs.forEach(function(s){
      var q = s.getBoundingClientRect();
      var overlaps = q.left < r.right && q.right > r.left;
      if (q.top >= r.bottom - 1 && overlaps && q.top - r.bottom < gap) {
        gap = q.top - r.bottom; best = s;
      }
    });
    out.push(title + '=' + (best ? best.textContent.replace(/[^A-Za-z ]/g, '').trim() : 'none'));
  });
  document.body.setAttribute('data-layout', out.join('|'));
})();
"""


def test_loudness_titles_sit_over_their_own_charts(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "in")
    out = tmp_path / "loud"
    run_stage(LoudnessStage(), out, in_dir=src, jobs=1, progress=False)
    page, _, _ = write_report(out, samples=0)
    dom, console = render(page, tmp_path, LAYOUT)
    assert console == []
    layout = dict(x.split("=", 1) for x in _attr(dom, "data-layout").split("|"))
    measured = layout["Measured loudness (LUFS), target in red"]
    gain = layout["Applied gain (dB)"]
    assert "LUFS" in measured and "dB" not in measured.replace("LUFS", ""), layout
    assert "dB" in gain and "LUFS" not in gain, layout


def test_explorer_keeps_a_bounded_even_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audioprep.reports import explorer

    files = {
        f"r{i:02d}": (np.full(SR // 10 * (i + 1), 0.01, dtype=np.float32), SR) for i in range(12)
    }
    src = arrays_manifest_dir(tmp_path / "in", files)
    monkeypatch.setattr(explorer, "MAX_RECORDS", 5)
    html = explorer.explorer_section(src)
    blob = html.split("id=explorer-data>")[1].split("</script>")[0]
    data = json.loads(blob.replace("<\\/", "</"))
    assert [i["id"] for i in data["items"]] == ["r00", "r02", "r04", "r07", "r09"]
    assert data["scores"] == ["duration"] and "an even sample of 5 records" in html
