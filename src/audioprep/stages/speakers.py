"""speakers: One speaker id for every clip, across the whole corpus.

Embeds every clip (every turn, where a clip holds two voices), clusters the corpus's voices
with a stopping point read off the dendrogram, and records on every clip a corpus-wide
`speaker` id (`spk00` has the most hours), its confidence, and a name where references give one.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from audioprep.core.media import MEDIA_EXTENSIONS, require_ffmpeg
from audioprep.core.params import device_param, number_or_auto, number_or_auto_text, param
from audioprep.core.stage import (
    CorpusStage,
    DecideContext,
    ItemContext,
    Output,
    Resources,
    WorkerContext,
)
from audioprep.engines.speaker.base import DEFAULT, engine_choices
from audioprep.errors import AudioprepError, ItemError, UsageError
from audioprep.manifests.records import Record

SR = 16000
SPEAKERS_FILE = "speakers.json"
EMBEDDINGS_FILE = "embeddings.npy"
UNKNOWN = "unknown"
#: The default speaker encoder. Its VoiceScale gives the similarities this stage uses: a clip
#: whose two sides' windows (at least TURN_MIN_WINDOWS each) are less similar than
#: ``speakers_turn`` is cut into turns, each clustered as a unit of its own (lower than
#: speaker-filter's ``turn``: with Resemblyzer, the two sides of single-voice clips through
#: codecs and beds score 0.75-0.96, so 0.9 would cut half of them); the automatic stop is
#: searched between ``auto_low`` and ``auto_high``; a reference names the cluster nearest to it
#: when they are at least ``name`` similar.
ENGINE = DEFAULT
TURN_MIN_WINDOWS = 3
#: ... and the name goes to the voice with most hours among those this close to the nearest.
NAME_SLACK = 0.05
#: Rows clustered by average linkage; the others are assigned to the nearest centroid.
CLUSTER_SAMPLE = 4000
#: Speakers in speakers.json's similarity matrix (the ones with most hours).
MATRIX_SPEAKERS = 40
BOUNDARY_CLIPS = 10


# -- the encoder ------------------------------------------------------------------------------
# The speaker engine from the registry, with the voiced-sample map the turns need.


class _Encoder:
    """``voiced(path) -> (16 kHz float32 voiced audio, where)``; ``embed(wavs) -> [(unit
    embedding (d,), partial-window embeddings (k, d))]``; ``versions()``."""

    def __init__(self, name: str, threads: int, device: str, window_batch: int) -> None:
        from audioprep.engines import base as engines
        from audioprep.engines.models import model_dir

        self.name = name
        self.window_batch = window_batch
        self.engine = engines.load(
            "speaker",
            name,
            engines.Settings(device=device, threads=threads, model_dir=model_dir(None)),
        )

    def voiced(self, path: Path) -> tuple[Any, Any]:
        from audioprep.engines.speaker.voiced import decode, voiced

        wav = decode(path)
        v, where = voiced(wav)
        return wav, v, where

    def embed(self, wavs: list[Any]) -> list[tuple[Any, Any]]:
        return self.engine.embed_many(wavs, batch_windows=self.window_batch)

    def close(self) -> None:
        self.engine.close()


def _encoder_versions(name: str) -> dict[str, str]:
    from audioprep.engines import base as engines

    return {"engine": name, **engines.engine_class("speaker", name).versions()}


def _pack(vec: Any) -> str:
    """A vector as base64 float16 (a few hundred bytes in the measure journal)."""
    import base64

    import numpy as np

    return base64.b64encode(np.asarray(vec, dtype="<f2").tobytes()).decode()


def _unpack(text: str) -> Any:
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float32)


class SpeakersStage(CorpusStage):
    """Give every clip a corpus-wide speaker id.

    Every clip is embedded (CAM++ by default: whole, and 1.6 s windows); a clip whose windows
    fall into two
    groups is cut into candidate turns, and each turn is clustered on its own. The corpus's
    voices are found by average-linkage clustering of (a sample of at most 4000 of) the
    embeddings, stopped at the widest gap of the dendrogram inside the encoder's band (CAM++:
    similarities 0.64 to 0.68, then voices whose centroids are 0.7 similar join; Resemblyzer:
    0.70 to 0.82), or at `--merge-threshold`;
    then every embedding goes to its nearest voice, in blocks, from
    embeddings.npy on disk. Ids are ordered by hours (`spk00` has the most); with `--against`
    the voices of an earlier run keep their ids. Records `speaker`, `speaker_confidence`
    (`similarity` to the voice, `margin` to the next one), `speaker_name` (from `--reference
    NAME=PATH`) and, for clips holding two voices, `speaker_turns`. Writes speakers.json.

    Example: `audioprep speakers clips/ voices/ --reference host=host_refs/ --min-seconds 30`
    """

    name = "speakers"
    version = "1"
    outputs = (
        Output(SPEAKERS_FILE, "per speaker: hours, clips, similarities, samples; the settings"),
        Output(EMBEDDINGS_FILE, "every clip's (and turn's) embedding, float32 (n, d)"),
    )

    @dataclasses.dataclass(frozen=True)
    class Params:
        references: tuple[str, ...] = param(
            (),
            help="NAME=PATH: name the voice of this reference file or folder (repeatable).",
            flags=("--reference",),
            repeatable=True,
            metavar="NAME=PATH",
        )
        min_seconds: float = param(
            0.0, help="Voices with less speech in the corpus (s) become `unknown`.", min=0.0
        )
        drop_unknown: bool = param(
            False, help="Reject the clips of `unknown` voices instead of keeping them."
        )
        merge_threshold: float | None = param(
            None,
            help="auto: stop merging voices at the dendrogram's widest gap inside the "
            "encoder's band (campplus 0.64-0.68, resemblyzer 0.70-0.82); a number: stop where "
            "voices are on average less similar (cosine).",
            parse=number_or_auto,
            render=number_or_auto_text,
            min=-1.0,
            max=1.0,
        )
        max_speakers: int | None = param(None, help="At most this many voices.", min=1)
        against: str | None = param(
            None,
            help="An earlier `speakers` output: its voices keep their ids, new ones get new ids.",
            path=True,
        )
        engine: str = param(
            ENGINE,
            help="The speaker encoder: campplus (CAM++) or resemblyzer.",
            choices=engine_choices,
        )
        min_voiced: float = param(
            1.0, help="Reject clips with less voiced audio (s): too short to embed.", min=0.0
        )
        turns: bool = param(
            True,
            help="Cut clips holding two voices into turns, each clustered on its own.",
            flags=("--turns/--no-turns",),
        )
        window_batch: int = param(256, help="Partial windows per forward pass.", min=1)
        device: str = device_param()

    # -- checks: before anything is written -------------------------------------------------

    def check(self) -> None:
        p = self.params
        self._reference_files()  # raises on a bad --reference
        if p.against:
            self._against()
        from audioprep.engines import base as engines
        from audioprep.engines.models import model_dir

        self.engine_class().check(engines.Settings(device=p.device, model_dir=model_dir(None)))
        require_ffmpeg()

    def _reference_files(self) -> dict[str, list[Path]]:
        """NAME -> its audio files; UsageError for a malformed, repeated or empty reference."""
        out: dict[str, list[Path]] = {}
        for text in self.params.references:
            name, sep, path_text = text.partition("=")
            name = name.strip()
            if not sep or not name or not path_text:
                raise UsageError(f"--reference {text!r}: write NAME=PATH (a file or a folder).")
            if name == UNKNOWN or name in out:
                raise UsageError(
                    f"--reference: the name {name!r} is given twice; give one folder per voice."
                    if name in out
                    else f"--reference: {UNKNOWN!r} is reserved for voices with too little speech."
                )
            path = Path(path_text)
            if not path.exists():
                raise UsageError(f"--reference {name}: no such file or folder: {path}")
            if path.is_dir():
                files = sorted(
                    f
                    for f in path.rglob("*")
                    if f.is_file() and f.suffix.lower() in MEDIA_EXTENSIONS
                )
                if not files:
                    raise UsageError(f"--reference {name}: the folder {path} holds no audio file.")
            else:
                files = [path]
            out[name] = files
        return out

    def _against(self) -> dict[str, Any]:
        """The earlier run's speakers.json; UsageError where it cannot be used."""
        against = Path(self.params.against or "")
        path = against / SPEAKERS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UsageError(
                f"--against {against}: no readable {SPEAKERS_FILE}; is it a `speakers` output?"
            ) from None
        mine = _encoder_versions(self.params.engine)
        theirs = data.get("encoder") or {}
        if theirs != mine:
            raise UsageError(
                f"--against {against}: made by another speaker encoder "
                f"({_fmt_versions(theirs)}; this run: {_fmt_versions(mine)}), "
                "so its voices cannot be compared; rerun it with this encoder."
            )
        return data

    def engine_class(self) -> Any:
        """The speaker engine's class (its scale and versions), without loading it."""
        from audioprep.engines import base as engines

        return engines.engine_class("speaker", self.params.engine)

    @property
    def scale(self) -> Any:
        """The engine's :class:`audioprep.engines.speaker.base.VoiceScale`."""
        return self.engine_class().scale

    resources = Resources(threads=1)  # one torch thread embeds fastest here (make bench)

    def setup(self, ctx: WorkerContext) -> None:
        self.encoder = _Encoder(
            self.params.engine, ctx.threads, self.params.device, self.params.window_batch
        )

    def teardown(self) -> None:
        encoder = self.__dict__.pop("encoder", None)
        if encoder is not None:
            encoder.close()

    # -- measure: in the workers -------------------------------------------------------------

    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        return self.measure_batch([record], [ctx])[0]

    def measure_batch(self, records: list[Record], ctxs: list[ItemContext]) -> list[dict[str, Any]]:
        """Embed several items in one forward pass (``--batch-size`` items per call)."""
        prepared: list[tuple[Any, Any, Any] | None] = []
        for record, ctx in zip(records, ctxs, strict=True):
            wav, v, where = self.encoder.voiced(ctx.input_audio(record))
            seconds = len(v) / SR
            if seconds < self.params.min_voiced:
                ctx.reject(
                    record,
                    f"too short to embed: {seconds:.2f} s of voiced audio "
                    f"(--min-voiced {self.params.min_voiced:g} s)",
                    voiced_seconds=round(seconds, 3),
                )
                prepared.append(None)
            else:
                prepared.append((wav, v, where))
        embedded = iter(self.encoder.embed([p[1] for p in prepared if p is not None]))
        out: list[dict[str, Any]] = []
        for item in prepared:
            if item is None:
                out.append({})
                continue
            embedding, partials = next(embedded)
            out.append(
                _measurement(
                    *item,
                    embedding,
                    partials,
                    split=self.params.turns,
                    turn=self.scale.speakers_turn,
                )
            )
        return out

    # -- decide: once, in the main process ---------------------------------------------------

    def _reference_voices(self) -> dict[str, Any]:
        """NAME -> the centroid of its references."""
        from audioprep.dsp.speakers import centroid

        refs = self._reference_files()
        if not refs:
            return {}
        enc = _Encoder(self.params.engine, 1, self.params.device, self.params.window_batch)
        out = {}
        for name, files in refs.items():
            wavs = []
            for path in files:
                try:
                    _, v, _ = enc.voiced(path)
                except ItemError as exc:
                    raise UsageError(f"--reference {name}: {path}: {exc}") from None
                if len(v) / SR >= self.params.min_voiced:
                    wavs.append(v)
            if not wavs:
                raise UsageError(
                    f"--reference {name}: no file has {self.params.min_voiced:g} s of voiced audio."
                )
            out[name] = centroid([e for e, _ in enc.embed(wavs)])
        return out

    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        import numpy as np

        from audioprep.dsp.speaker_clusters import cluster_corpus

        p = self.params
        scale = self.scale
        out_dir = Path(ctx.out_dir)
        units: list[tuple[str, int | None]] = []
        seconds: list[float] = []
        for item_id, m in measurements.items():
            if not m:
                continue
            for k, turn in enumerate(m.get("turns") or [None]):
                units.append((item_id, None if turn is None else k))
                seconds.append(m["voiced_seconds"] if turn is None else turn["end"] - turn["start"])
        n = len(units)
        if n == 0:
            raise AudioprepError("speakers: no clip could be embedded (see rejected.jsonl).")
        # every embedding into a memmap in OUT: clustering reads blocks of it
        x = np.lib.format.open_memmap(
            out_dir / EMBEDDINGS_FILE,
            mode="w+",
            dtype=np.float32,
            shape=(n, len(_unpack(next(iter(m for m in measurements.values() if m))["embedding"]))),
        )
        for i, (item_id, k) in enumerate(units):
            m = measurements[item_id]
            x[i] = _unpack(m["embedding"] if k is None else m["turns"][k]["embedding"])
        x.flush()
        w = np.array(seconds)
        labels, cents, info = cluster_corpus(
            x,
            stop_similarity=p.merge_threshold,
            max_speakers=p.max_speakers,
            sample=CLUSTER_SAMPLE,
            band=(scale.auto_low, scale.auto_high, scale.auto_fallback),
            join=scale.speakers_join,
        )
        sim, margin = _confidence(x, labels, cents)
        k = len(cents)
        totals = np.bincount(labels, weights=w, minlength=k)
        # ids: matched to an earlier run's voices, then by hours
        known = set()
        ids: dict[int, str] = {}
        if p.against:
            prior = self._against()
            ids, known = _match_prior(cents, totals, prior, info["stop_similarity"])
        order = [int(c) for c in np.argsort(-totals, kind="stable")]
        taken = set(ids.values()) | set(known)
        nxt = 0
        for c in order:
            if c in ids:
                continue
            if totals[c] < p.min_seconds:
                ids[c] = UNKNOWN
                continue
            while f"spk{nxt:02d}" in taken:
                nxt += 1
            ids[c] = f"spk{nxt:02d}"
            taken.add(ids[c])
        names: dict[int, str] = {}
        references = {}
        refs = self._reference_voices()
        for name, voice in refs.items():
            s = cents @ voice
            # the voice's largest cluster among those nearly as near as the nearest (a voice
            # split by channels has fragments; the name goes to its main cluster)
            close = np.flatnonzero(s >= max(scale.name, float(s.max()) - NAME_SLACK))
            close = [int(c) for c in close if int(c) not in names]
            best = max(close, key=lambda c: totals[c]) if close else int(np.argmax(s))
            references[name] = {"similarity": round(float(s[best]), 4), "speaker": None}
            if s[best] >= scale.name and best not in names:
                names[best] = name
                references[name]["speaker"] = ids[best]
                if ids[best] == UNKNOWN:  # a named voice is never unknown
                    ids[best] = _fresh(taken)
                    taken.add(ids[best])
                    references[name]["speaker"] = ids[best]
        per_item: dict[str, dict[str, Any]] = {}
        for i, (item_id, t) in enumerate(units):
            c = int(labels[i])
            entry = {
                "cluster": c,
                "similarity": round(float(sim[i]), 4),
                "margin": round(float(margin[i]), 4),
                "seconds": float(seconds[i]),
            }
            if t is None:
                per_item[item_id] = entry
            else:
                per_item.setdefault(item_id, {"turns": []})["turns"].append(entry)
        summary = _summary(x, labels, cents, w, units, ids, names, sim, margin)
        summary.update(
            encoder=_encoder_versions(p.engine),
            clustering={
                "merge_threshold": number_or_auto_text(p.merge_threshold),
                "stop_similarity": info["stop_similarity"],
                "stopping": info["how"],
                "joined_renderings": info.get("joined", 0),
                "clustered_sample": info["sampled"],
                "units": n,
                "clusters": k,
                "max_speakers": p.max_speakers,
                "min_seconds": p.min_seconds,
                "against": p.against,
            },
            references=references,
        )
        ctx.write_text(SPEAKERS_FILE, json.dumps(summary, indent=2) + "\n")
        return {
            "ids": {str(c): v for c, v in ids.items()},
            "names": {str(c): v for c, v in names.items()},
            "items": per_item,
            "clustering": summary["clustering"],
        }

    # -- finish: each item, in order ---------------------------------------------------------

    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        entry = decision["items"][record["id"]]
        ids, names = decision["ids"], decision["names"]
        if "turns" in entry:
            turns = [
                {**t, "start": m["start"], "end": m["end"]}
                for t, m in zip(entry["turns"], measurement["turns"], strict=True)
            ]
            hours: dict[int, float] = {}
            for t in turns:
                hours[t["cluster"]] = hours.get(t["cluster"], 0.0) + t["end"] - t["start"]
            main = max(hours, key=lambda c: hours[c])
            best = max((t for t in turns if t["cluster"] == main), key=lambda t: t["similarity"])
        else:
            turns, main, best = None, entry["cluster"], entry
        speaker = ids[str(main)]
        fields: dict[str, Any] = {
            "speaker": speaker,
            "speaker_confidence": {"similarity": best["similarity"], "margin": best["margin"]},
        }
        if str(main) in names:
            fields["speaker_name"] = names[str(main)]
        if turns and len({t["cluster"] for t in turns}) > 1:
            fields["speaker_turns"] = [
                {"start": t["start"], "end": t["end"], "speaker": ids[str(t["cluster"])]}
                for t in turns
            ]
        if speaker == UNKNOWN and self.params.drop_unknown:
            ctx.reject(
                record,
                f"an unknown voice: under --min-seconds {self.params.min_seconds:g} s "
                "of speech in the corpus",
                **fields,
            )
            return []
        src = ctx.input_audio(record)
        return [{**record, "audio": ctx.link(src, f"{record['id']}{src.suffix}"), **fields}]

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {**_encoder_versions(self.params.engine), "torch": version("torch")}

    @classmethod
    def report_section(cls, out_dir: Path) -> str | None:
        return _report_section(out_dir)


def _fmt_versions(v: dict[str, Any]) -> str:
    return ", ".join(f"{k} {val}" for k, val in sorted(v.items())) or "unknown"


def _fresh(taken: set[str]) -> str:
    i = 0
    while f"spk{i:02d}" in taken:
        i += 1
    return f"spk{i:02d}"


def _measurement(
    wav: Any, v: Any, where: Any, embedding: Any, partials: Any, *, split: bool, turn: float
) -> dict[str, Any]:
    """The clip's embedding, and its candidate turns where its windows fall into two groups
    (speaker-filter's turn splitting)."""
    import numpy as np

    from audioprep.dsp.speakers import centroid, quietest, turns
    from audioprep.engines.speaker.voiced import HOP_SAMPLES, RATE

    m: dict[str, Any] = {"embedding": _pack(embedding), "voiced_seconds": round(len(v) / SR, 3)}
    if not split:
        return m
    runs = turns(partials, change_similarity=turn, min_windows=TURN_MIN_WINDOWS)
    if len(runs) < 2:
        return m
    step = int(np.round((SR / RATE) / HOP_SAMPLES)) * HOP_SAMPLES
    bounds = [0.0]
    for _, _, pos in runs[1:]:
        at = int(min(len(where) - 1, max(0, pos * step + 0.8 * SR)))
        bounds.append(quietest(wav, sr=SR, around=where[at] / SR, radius=1.0))
    bounds.append(len(wav) / SR)
    n = len(partials)
    m["turns"] = []
    for (first, stop, _), start, end in zip(runs, bounds, bounds[1:], strict=False):
        lo, hi = first + (first > 0), stop - (stop < n)
        m["turns"].append(
            {
                "start": round(start, 3),
                "end": round(end, 3),
                "embedding": _pack(centroid(partials[lo:hi] if hi > lo else partials[first:stop])),
            }
        )
    return m


def _confidence(x: Any, labels: Any, cents: Any, block: int = 8192) -> tuple[Any, Any]:
    """Similarity of each row to its own centroid, and the margin to the best other one."""
    import numpy as np

    from audioprep.dsp.speakers import unit

    n = len(x)
    sim, margin = np.zeros(n), np.ones(n)
    for a in range(0, n, block):
        s = unit(np.asarray(x[a : a + block], dtype=np.float64)) @ cents.T
        rows = np.arange(len(s))
        own = s[rows, labels[a : a + block]]
        sim[a : a + block] = own
        if cents.shape[0] > 1:
            s[rows, labels[a : a + block]] = -np.inf
            margin[a : a + block] = own - s.max(axis=1)
    return sim, margin


def _match_prior(
    cents: Any, totals: Any, prior: dict[str, Any], stop: float
) -> tuple[dict[int, str], set[str]]:
    """Clusters that are an earlier run's voices get its ids: pairs most similar first, one
    to one, at least ``stop`` (the clustering's own stopping similarity) apart."""
    import numpy as np

    from audioprep.dsp.speakers import unit

    old = [s for s in prior.get("speakers", []) if s.get("centroid") and s["id"] != UNKNOWN]
    known = {s["id"] for s in prior.get("speakers", [])}
    if not old:
        return {}, known
    c_old = unit(np.array([s["centroid"] for s in old]))
    s = cents @ c_old.T
    ids: dict[int, str] = {}
    used: set[int] = set()
    for flat in np.argsort(-s, axis=None):
        a, b = np.unravel_index(flat, s.shape)
        if s[a, b] < stop:
            break
        if int(a) in ids or int(b) in used:
            continue
        ids[int(a)] = old[int(b)]["id"]
        used.add(int(b))
    return ids, known


def _summary(
    x: Any,
    labels: Any,
    cents: Any,
    w: Any,
    units: list[tuple[str, int | None]],
    ids: dict[int, str],
    names: dict[int, str],
    sim: Any,
    margin: Any,
) -> dict[str, Any]:
    """speakers.json's body: per speaker, the similarity matrix, the boundary clips."""
    import numpy as np

    k = len(cents)
    between = cents @ cents.T
    np.fill_diagonal(between, -np.inf)
    speakers = []
    for c in sorted(range(k), key=lambda c: -float(w[labels == c].sum())):
        idx = np.flatnonzero(labels == c)
        near = int(np.argmax(between[c])) if k > 1 else None
        ranked = idx[np.argsort(-sim[idx])]
        speakers.append(
            {
                "id": ids[c],
                "name": names.get(c),
                "hours": round(float(w[idx].sum()) / 3600, 4),
                "clips": len({units[i][0] for i in idx}),
                "mean_similarity": round(float(sim[idx].mean()), 4),
                "nearest": None
                if near is None
                else {"speaker": ids[near], "similarity": round(float(between[c, near]), 4)},
                "samples": [_unit_id(units[i]) for i in ranked[:3]],
                "centroid": [round(float(v), 6) for v in cents[c]],
            }
        )
    # unknown voices: one entry summing them all after the others
    top = [c for c in sorted(range(k), key=lambda c: -float(w[labels == c].sum()))]
    top = [c for c in top if ids[c] != UNKNOWN][:MATRIX_SPEAKERS]
    matrix = cents[top] @ cents[top].T if top else np.zeros((0, 0))
    boundary = np.argsort(margin, kind="stable")[:BOUNDARY_CLIPS] if k > 1 else []
    own_sim = cents @ cents.T
    return {
        "speakers": speakers,
        "similarity_matrix": {
            "speakers": [ids[c] for c in top],
            "values": [[round(float(v), 3) for v in row] for row in matrix],
        },
        "boundary": [
            {
                "id": _unit_id(units[i]),
                "speaker": ids[int(labels[i])],
                "other": ids[_second(x[i], cents, int(labels[i]))],
                "similarity": round(float(sim[i]), 4),
                "margin": round(float(margin[i]), 4),
            }
            for i in boundary
        ],
        "speaker_similarity_max": round(float(own_sim[~np.eye(k, dtype=bool)].max()), 4)
        if k > 1
        else None,
    }


def _second(row: Any, cents: Any, own: int) -> int:
    import numpy as np

    s = cents @ (np.asarray(row, dtype=np.float64) / (np.linalg.norm(row) or 1.0))
    s[own] = -np.inf
    return int(np.argmax(s))


def _unit_id(u: tuple[str, int | None]) -> str:
    return u[0] if u[1] is None else f"{u[0]}#{u[1]}"


#: Speakers with players in the report (the ones with most hours), and boundary clips shown.
REPORT_SPEAKERS = 12
REPORT_BOUNDARY = 4


def _report_section(out_dir: Path) -> str | None:
    """Hours per speaker (bars), the similarity matrix, three players per speaker, and the
    clips nearest the boundary between two speakers."""
    import html

    from audioprep.manifests.records import MANIFEST, read_manifest
    from audioprep.reports.widgets import bars_svg, clip_media

    path = out_dir / SPEAKERS_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    esc = html.escape
    speakers = [s for s in data.get("speakers", []) if s["id"] != UNKNOWN]
    unknown = [s for s in data.get("speakers", []) if s["id"] == UNKNOWN]
    wanted = {i.split("#")[0] for s in speakers[:REPORT_SPEAKERS] for i in s["samples"][:3]}
    wanted |= {b["id"].split("#")[0] for b in (data.get("boundary") or [])[:REPORT_BOUNDARY]}
    records: dict[str, Record] = {}
    if (out_dir / MANIFEST).exists():  # streamed: only the clips the section plays
        records = {r["id"]: r for r in read_manifest(out_dir) if r["id"] in wanted}

    def label(s: dict[str, Any]) -> str:
        return s["id"] + (f" ({s['name']})" if s.get("name") else "")

    def player(item: str, note: str) -> str:
        record = records.get(item.split("#")[0])
        if record is None:
            return ""
        png, mp3 = clip_media(out_dir, record)
        return (
            f'<div class=sample><img src="{png}" alt="{esc(item)}">'
            f'<audio controls preload=none src="{mp3}"></audio>'
            f"<div class=muted>{esc(item)} · {esc(note)}</div></div>"
        )

    c = data.get("clustering", {})
    parts = [
        "<h2>Speakers</h2>",
        f"<p>{len(speakers)} speakers"
        + (f", {sum(s['clips'] for s in unknown)} clips of unknown voices" if unknown else "")
        + f"; clustering stopped at similarity {c.get('stop_similarity')} "
        f"({esc(str(c.get('stopping')))})"
        f" over {c.get('units')} embeddings.</p>",
        f"<h3>Hours per speaker{' (the 30 with most)' if len(speakers) > 30 else ''}</h3>",
        bars_svg([label(s) for s in speakers[:30]], [s["hours"] for s in speakers[:30]], unit="h"),
    ]
    m = data.get("similarity_matrix") or {}
    if len(m.get("speakers", [])) > 1:
        head = "".join(f"<th>{esc(x)}</th>" for x in m["speakers"])
        rows = []
        for name, row in zip(m["speakers"], m["values"], strict=True):
            cells = "".join(
                f"<td style='background:rgba(74,120,194,{max(0.0, v):.2f})'>{v:.2f}</td>"
                for v in row
            )
            rows.append(f"<tr><th>{esc(name)}</th>{cells}</tr>")
        parts.append(
            "<h3>Similarity between speakers</h3><table class=matrix data-matrix>"
            f"<tr><th></th>{head}</tr>{''.join(rows)}</table>"
        )
    parts.append("<h3>Samples</h3>")
    for s in speakers[:REPORT_SPEAKERS]:
        near = s.get("nearest") or {}
        cells = "".join(player(i, label(s)) for i in s["samples"][:3])
        parts.append(
            f"<h4 data-speaker='{esc(s['id'])}'>{esc(label(s))}: {s['hours'] * 60:.1f} min, "
            f"{s['clips']} clips, mean similarity {s['mean_similarity']}"
            + (f"; nearest {esc(near['speaker'])} at {near['similarity']}" if near else "")
            + f"</h4><div class=samples>{cells}</div>"
        )
    boundary = data.get("boundary") or []
    if boundary:
        cells = "".join(
            player(b["id"], f"{b['speaker']} or {b['other']}, margin {b['margin']}")
            for b in boundary[:REPORT_BOUNDARY]
        )
        parts.append(
            "<h3>Nearest the boundary between two speakers</h3>"
            f"<div class=samples data-clips=boundary>{cells}</div>"
        )
    return "".join(parts)
