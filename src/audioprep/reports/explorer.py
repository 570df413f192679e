# ruff: noqa: E501 - the explorer's JavaScript is kept as written
"""The report's threshold explorer: every numeric score of a manifest, kept hours per threshold.

:func:`explorer_section` reads the manifest once and returns HTML: for each numeric score (a
number at the top of the records or one level down, ``quality.snr_db``), a table of the items
and hours kept at eleven thresholds, and a control in plain JavaScript (inside the page, no
server, nothing fetched) that shows the hours kept for the thresholds chosen, the clips just
above and below the margin with players, and the ``audioprep select`` line that applies them.

>>> scores([{"duration": 2.0, "quality": {"snr_db": 10.0}, "sample_rate": 16000}] * 2)
['duration', 'quality.snr_db']
"""

from __future__ import annotations

import html
import json
import math
import os
import shlex
import urllib.parse
from pathlib import Path
from typing import Any

from audioprep.manifests.records import iter_checked, resolve_audio

#: Fields that are numbers but not scores: positions, formats, bookkeeping.
NOT_SCORES = frozenset(
    {
        "sample_rate",
        "channels",
        "offset",
        "source_offset",
        "index",
        "start_sample",
        "end_sample",
        "size",
        "comment",
        "bitrate",
        "start",
        "end",
        "head",
        "tail",
        "mtime",
    }
)
#: Groups whose numbers are bookkeeping, never a score.
NOT_SCORE_GROUPS = frozenset({"source", "slice", "trim", "dedupe", "crawl", "loudness"})
#: Scores where lower is better (the explorer keeps values at or below the threshold).
LOWER_IS_BETTER = frozenset(
    {"clipping", "silence_share", "dc_offset", "wer", "cer", "speaker_snorm_distance"}
)
#: Records carried into the page at most (evenly spread beyond that).
MAX_RECORDS = 20_000
#: Thresholds in each score's table.
TABLE_STEPS = 11


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in NOT_SCORES:
            continue
        if _is_num(value):
            out[key] = float(value)
        elif isinstance(value, dict) and key not in NOT_SCORE_GROUPS:
            for sub, v in value.items():
                if sub not in NOT_SCORES and _is_num(v) and sub.isidentifier():
                    out[f"{key}.{sub}"] = float(v)
    return out


def scores(records: list[dict[str, Any]]) -> list[str]:
    """The numeric score paths of some records, in first-seen order (two or more records)."""
    seen: dict[str, int] = {}
    for record in records:
        for path in _numbers(record):
            seen[path] = seen.get(path, 0) + 1
    return [p for p, n in seen.items() if n >= 2 and p.replace(".", "").isidentifier()]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _hours(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def explorer_section(in_dir: str | Path, html_dir: str | Path | None = None) -> str:
    """The explorer's HTML for the manifest in ``in_dir``; ``html_dir`` is where the page is
    written (the players' audio paths are relative to it). Empty without numeric scores."""
    in_dir = Path(in_dir)
    html_dir = Path(html_dir) if html_dir is not None else in_dir
    # two streamed passes: count, then keep at most MAX_RECORDS spread evenly (memory bounded)
    count = sum(1 for _, record, _ in iter_checked(in_dir) if record is not None)
    if count < 2:
        return ""
    step = max(1.0, count / MAX_RECORDS)
    wanted = {int(i * step) for i in range(min(count, MAX_RECORDS))}
    rows: list[dict[str, Any]] = []
    index = 0
    for _lineno, record, _problem in iter_checked(in_dir):
        if record is None:
            continue
        if index in wanted:
            rows.append(record)
        index += 1
    paths = [  # a score with one value everywhere has no threshold to choose
        p for p in scores(rows) if len({_numbers(r).get(p) for r in rows} - {None}) > 1
    ]
    passes = [
        k
        for k in dict.fromkeys(k for r in rows for k, v in r.items() if isinstance(v, bool))
        if k.endswith("_pass")
    ]
    if not paths:
        return ""
    items = []
    for r in rows:
        nums = _numbers(r)
        try:
            audio = os.path.relpath(resolve_audio(in_dir, r["audio"]), html_dir)
            src = urllib.parse.quote(Path(audio).as_posix())
        except Exception:  # noqa: BLE001 - a record without playable audio only loses its player
            src = ""
        items.append(
            {
                "id": str(r["id"]),
                "d": float(r.get("duration") or 0.0),
                "a": src,
                "v": [nums.get(p) for p in paths],
                "p": [r.get(k) is True for k in passes],
            }
        )
    total = sum(i["d"] for i in items)
    tables = []
    for j, path in enumerate(paths):
        values = sorted(i["v"][j] for i in items if i["v"][j] is not None)
        lower = path.split(".")[-1] in LOWER_IS_BETTER
        lo, hi = values[0], values[-1]
        body = []
        for k in range(TABLE_STEPS):
            t = lo + (hi - lo) * k / (TABLE_STEPS - 1)
            kept = [
                i
                for i in items
                if i["v"][j] is not None and (i["v"][j] <= t if lower else i["v"][j] >= t)
            ]
            secs = sum(i["d"] for i in kept)
            body.append(
                f"<tr><td>{'&le;' if lower else '&ge;'} {_fmt(t)}</td><td>{len(kept)}</td>"
                f"<td>{_hours(secs)}</td><td>{100 * secs / total if total else 0:.0f}%</td></tr>"
            )
        tables.append(
            f"<details class=thresholds data-score='{html.escape(path)}'><summary><code>"
            f"{html.escape(path)}</code>: {len(values)} items, {_fmt(lo)} to {_fmt(hi)}</summary>"
            "<table><tr><th>threshold</th><th>items kept</th><th>hours kept</th>"
            f"<th>share</th></tr>{''.join(body)}</table></details>"
        )
    data = {
        "dir": shlex.quote(str(in_dir)),
        "scores": paths,
        "lower": [p.split(".")[-1] in LOWER_IS_BETTER for p in paths],
        "passes": passes,
        "items": items,
    }
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    note = f" (an even sample of {MAX_RECORDS:,} records)" if len(items) >= MAX_RECORDS else ""
    return (
        "<h2>Threshold explorer</h2>"
        f"<p>Every numeric score of the {len(items)} records{note}: choose thresholds, hear the "
        "clips on either side of the margin, copy the <code>audioprep select</code> line that "
        "applies them. A record without the score counts as failing it (a comparison with null "
        "is false).</p>"
        "<div id=explorer></div>"
        f"<script type='application/json' id=explorer-data>{blob}</script>"
        f"<script>{_EXPLORER_JS}</script>"
        "<h3>Items and hours kept at each threshold</h3>" + "".join(tables)
    )


_EXPLORER_JS = r"""
(function(){
  var D = JSON.parse(document.getElementById('explorer-data').textContent);
  var root = document.getElementById('explorer');
  var N = D.items.length, total = 0;
  D.items.forEach(function(it){ total += it.d; });
  function el(tag, attrs, text){
    var e = document.createElement(tag);
    for (var k in attrs){ e.setAttribute(k, attrs[k]); }
    if (text !== undefined){ e.textContent = text; }
    return e;
  }
  function hours(s){
    if (s < 60) return s.toFixed(1) + ' s';
    if (s < 3600) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(2) + ' h';
  }
  function num(v){ return Number(v.toPrecision(4)).toString(); }
  var state = D.scores.map(function(p, j){
    var vals = D.items.map(function(it){ return it.v[j]; }).filter(function(v){ return v !== null; });
    vals.sort(function(a, b){ return a - b; });
    return {path: p, on: false, op: D.lower[j] ? '<=' : '>=', vals: vals,
            t: D.lower[j] ? vals[vals.length - 1] : vals[0]};
  });
  var pass = D.passes.map(function(p){ return {path: p, on: false}; });
  var last = 0;
  var table = el('table', {'class': 'explorer'});
  table.appendChild(el('tr')).innerHTML =
    '<th>use</th><th>score</th><th>keep</th><th>threshold</th><th></th><th>range</th>';
  state.forEach(function(s, j){
    var tr = el('tr', {'data-score': s.path});
    var box = el('input', {type: 'checkbox'});
    var op = el('select', {});
    ['>=', '<='].forEach(function(o){ var x = el('option', {value: o}, o); op.appendChild(x); });
    op.value = s.op;
    var lo = s.vals[0], hi = s.vals[s.vals.length - 1];
    var step = hi > lo ? (hi - lo) / 200 : 1;
    var slider = el('input', {type: 'range', min: lo, max: hi, step: step, value: s.t});
    var box2 = el('input', {type: 'number', step: 'any', value: num(s.t), style: 'width:7em'});
    function changed(v){ s.t = v; s.on = true; box.checked = true; last = j; update(); }
    box.onchange = function(){ s.on = box.checked; last = j; update(); };
    op.onchange = function(){ s.op = op.value; s.on = true; box.checked = true; last = j; update(); };
    slider.oninput = function(){ box2.value = num(+slider.value); changed(+slider.value); };
    box2.oninput = function(){ if (box2.value !== '' && isFinite(+box2.value)) { slider.value = box2.value; changed(+box2.value); } };
    s.box = box; s.slider = slider; s.input = box2;
    [box, el('code', {}, s.path), op, box2, slider].forEach(function(x){
      var td = el('td'); td.appendChild(x); tr.appendChild(td);
    });
    tr.appendChild(el('td', {'class': 'muted'}, num(lo) + ' to ' + num(hi)));
    table.appendChild(tr);
  });
  pass.forEach(function(s){
    var tr = el('tr', {'data-pass': s.path});
    var box = el('input', {type: 'checkbox'});
    box.onchange = function(){ s.on = box.checked; update(); };
    s.box = box;
    var td = el('td'); td.appendChild(box); tr.appendChild(td);
    tr.appendChild(el('td', {colspan: 4}, 'require ' + s.path + ' (the filter\'s own decision)'));
    table.appendChild(tr);
  });
  root.appendChild(table);
  var out = el('p', {'class': 'explorer-kept'});
  root.appendChild(out);
  var cmd = el('textarea', {readonly: '', rows: 2, cols: 100, 'class': 'explorer-command', spellcheck: 'false'});
  root.appendChild(cmd);
  var copy = el('button', {type: 'button'}, 'copy');
  copy.onclick = function(){
    cmd.select();
    if (navigator.clipboard) { navigator.clipboard.writeText(cmd.value).catch(function(){ document.execCommand('copy'); }); }
    else { document.execCommand('copy'); }
  };
  root.appendChild(copy);
  var margin = el('div', {'class': 'explorer-margin'});
  root.appendChild(margin);
  function holds(it, skip){
    for (var j = 0; j < state.length; j++){
      var s = state[j];
      if (!s.on || j === skip) continue;
      var v = it.v[j];
      if (v === null) return false;
      if (s.op === '>=' ? !(v >= s.t) : !(v <= s.t)) return false;
    }
    for (var k = 0; k < pass.length; k++){ if (pass[k].on && !it.p[k]) return false; }
    return true;
  }
  function clip(it, j, side){
    var d = el('div', {'class': 'sample margin-clip', 'data-side': side});
    if (it.a){ d.appendChild(el('audio', {controls: '', preload: 'none', src: it.a})); }
    d.appendChild(el('div', {'class': 'muted'},
      it.id + ' \u00b7 ' + state[j].path + ' ' + num(it.v[j]) + ' \u00b7 ' + it.d.toFixed(2) + ' s'));
    return d;
  }
  function update(){
    var kept = 0, secs = 0;
    D.items.forEach(function(it){ if (holds(it, -1)) { kept++; secs += it.d; } });
    out.textContent = 'kept: ' + kept + ' of ' + N + ' items, ' + hours(secs) + ' of ' + hours(total) +
      ' (' + (total ? Math.round(100 * secs / total) : 0) + '% of the hours)';
    var conds = [];
    state.forEach(function(s){ if (s.on) conds.push(s.path + ' ' + s.op + ' ' + num(s.t)); });
    pass.forEach(function(s){ if (s.on) conds.push(s.path); });
    cmd.value = conds.length
      ? 'audioprep select ' + D.dir + ' SELECTED/ --where "' + conds.join(' and ') + '"'
      : '(choose a threshold)';
    margin.innerHTML = '';
    var s = state[last], j = last;
    if (!s) return;
    var near = D.items.filter(function(it){ return it.v[j] !== null && holds(it, j); });
    var keep = function(it){ return s.op === '>=' ? it.v[j] >= s.t : it.v[j] <= s.t; };
    var inside = near.filter(keep), outside = near.filter(function(it){ return !keep(it); });
    var byDist = function(a, b){ return Math.abs(a.v[j] - s.t) - Math.abs(b.v[j] - s.t); };
    inside.sort(byDist); outside.sort(byDist);
    [['kept, just inside the margin', inside, 'kept'], ['dropped, just outside it', outside, 'dropped']].forEach(function(g){
      var box = el('div', {'data-margin': g[2]});
      box.appendChild(el('h3', {}, s.path + ' ' + s.op + ' ' + num(s.t) + ': ' + g[0]));
      var grid = el('div', {'class': 'samples'});
      g[1].slice(0, 3).forEach(function(it){ grid.appendChild(clip(it, j, g[2])); });
      if (!g[1].length) grid.appendChild(el('p', {'class': 'empty'}, 'none'));
      box.appendChild(grid);
      margin.appendChild(box);
    });
  }
  update();
  root.setAttribute('data-ready', 'ok');
})();
"""
