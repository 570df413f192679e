"""speaker-filter: Keep only the target voice: speaker embeddings, adapted to the corpus.

Embeds every clip (CAM++ by default) whole and as 1.6 s windows, cuts clips holding two
voices into turns, enrols the target from references (re-enrolled from the corpus's own
clips) or from the largest cluster of voices, and keeps the target's speech by a score
normalised against the corpus's other voices.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from audioprep.core.media import MEDIA_EXTENSIONS, require_ffmpeg
from audioprep.core.params import device_param, number_or_auto, number_or_auto_text, param
from audioprep.core.stage import (
    CorpusStage,
    DecideContext,
    ItemContext,
    Output,
    RecordField,
    Resources,
    WorkerContext,
)
from audioprep.engines.models import model_dir, model_dir_option
from audioprep.engines.speaker.base import DEFAULT, engine_choices
from audioprep.errors import AudioprepError, ItemError, UsageError
from audioprep.manifests.layout import DECISION_FILE
from audioprep.manifests.offsets import child_offset
from audioprep.manifests.records import Record, atomic_write_text, read_manifest, resolve_audio

SR = 16000
#: The default speaker embedder (a name in the engine registry, family "speaker"). Every
#: cosine similarity the decision uses comes from the engine's VoiceScale (its fixed
#: threshold, clusters, joins, cohort, candidate turns, split margins).
ENGINE = DEFAULT
TURN_MIN_WINDOWS = 1
#: Fewer than this many units in the impostor cohort (units under the scale's
#: ``cohort_below`` against the first voice) and the decision falls back to the fixed threshold.
MIN_COHORT = 20
#: With the impostor bank: a cluster may join at JOIN_LOW when its centroid is JOIN_BANK_MARGIN
#: more similar to the voice than to any voice of the bank, or at the scale's ``join_high``.
#: Off (None): measured with Resemblyzer on the whole benchmark at 0.75 / 0.12 / 0.9, purity
#: 0.899 and recall 0.779 against 0.908 and 0.788 for the plain join.
JOIN_LOW: float | None = None
JOIN_BANK_MARGIN = 0.12
#: Both sides of a confirmed change are long enough to embed: at least this many partial
#: windows each (2 lost a third of the benchmark's host recall: most changes have a short side).
SPLIT_MIN_WINDOWS = 1
#: A clip whose candidate turns the decision tells apart (one kept, one not) without a
#: confirmed change is rejected whole ("in doubt"): measured on the benchmark, such clips held
#: most of the other voices' seconds that whole-clip decisions kept.
DOUBT_REJECTS = True


class SpeakerFilterStage(CorpusStage):
    """Embed every item, compare it with the target voice, keep the target's speech.

    Every clip is embedded whole and as 1.6 s partial windows (`--engine`: CAM++ by default,
    or Resemblyzer); a clip whose windows fall
    into two groups is cut into candidate turns. The target voice is enrolled from the
    references (or the largest cluster of voices in the corpus), then re-enrolled from the
    corpus's own clips that match it with a clear margin (the voice as this channel renders
    it). Scores are normalised against an impostor cohort of the corpus's clearly-other clips
    (adaptive S-norm), so one threshold holds across corpora. A clip holding the target and
    another voice is split at the change (or rejected with where the other voice is).
    Records `speaker_similarity` on every kept item; the others go to rejected.jsonl with their
    score and reason.

    Example: `audioprep speaker-filter clips/ host/ --reference host1.wav --reference host2.wav`
    """

    name = "speaker-filter"
    version = "4"
    # one torch thread per worker: measured here, one thread embeds faster than two even with
    # a single worker (README, make bench); AUDIOPREP_THREADS overrides it
    resources = Resources(threads=1)
    record_fields = (
        RecordField(
            "speaker_similarity",
            "float",
            "Cosine similarity of the clip to the target voice.",
            histogram=True,
        ),
    )
    outputs = (
        Output("speaker_report.png", "--report: histogram of the scores with the threshold"),
        Output("speaker_report.json", "--report: the numbers and quantiles behind it"),
        Output(
            ".speaker-embeddings",
            "every clip's embedding, keyed by the input file and the encoder's version",
            folder=True,
            cache=True,
        ),
    )

    @dataclasses.dataclass(frozen=True)
    class Params:
        references: tuple[str, ...] = param(
            (),
            help="Reference audio of the target voice: file or folder.",
            flags=("--reference",),
            repeatable=True,
            path=True,
        )
        reference_manifest: str | None = param(
            None, help="Enrol from clips of this manifest directory.", path=True
        )
        reference_ids: tuple[str, ...] = param(
            (), help="With --reference-manifest: ids, comma-separated."
        )
        threshold: float | None = param(  # None: auto
            None,
            help="auto: a score normalised against the corpus's other voices (S-norm); "
            "a number: keep items at or above this cosine similarity to the (adapted) voice.",
            parse=number_or_auto,
            render=number_or_auto_text,
            min=-1.0,
            max=1.0,
        )
        enrol: str = param(
            "reference",
            help="reference; dominant: the largest cluster of voices; cluster:N: cluster N "
            "of decision.json's clusters.",
        )
        adapt: bool = param(
            True,
            help="Re-enrol the voice from the corpus's own clips that match the references.",
            flags=("--adapt/--no-adapt",),
        )
        mixed: str = param(
            "split",
            help="Clips holding the target and another voice: split them, or reject them.",
            choices=("split", "reject"),
        )
        min_voiced: float = param(1.0, help="Reject items with less voiced audio (s).", min=0.0)
        window_batch: int = param(
            256,
            help="Partial windows per forward pass (across the items of a --batch-size call).",
            min=1,
        )
        report: bool = param(
            False, help="Write speaker_report.png and .json in OUT_DIR.", flags=("--report",)
        )
        device: str = device_param()
        engine: str = param(
            ENGINE,
            help="The speaker encoder: campplus (CAM++, robust to codecs and beds) or "
            "resemblyzer (the earlier default).",
            choices=engine_choices,
        )
        model_dir: str = model_dir_option()
        annotate_only: bool = param(
            False,
            help="Drop and split nothing: record the decision as speaker_pass.",
            flags=("--annotate-only",),
        )

    def engine_class(self) -> Any:
        """The speaker engine's class (its scale, bank and versions), without loading it."""
        from audioprep.engines import base as engines

        return engines.engine_class("speaker", self.params.engine)

    def settings(self, threads: int = 1) -> Any:
        from audioprep.engines import base as engines

        return engines.Settings(
            device=self.params.device,
            threads=threads,
            model_dir=model_dir(self.params.model_dir or None),
        )

    @property
    def scale(self) -> Any:
        """The engine's :class:`audioprep.engines.speaker.base.VoiceScale`."""
        return self.engine_class().scale

    def check(self) -> None:
        p = self.params
        if p.enrol not in ("reference", "dominant") and not _cluster_number(p.enrol) >= 0:
            raise UsageError("--enrol must be reference, dominant or cluster:N.")
        if p.enrol == "reference" and not p.references and not p.reference_manifest:
            raise UsageError(
                "give --reference FILE (or a folder), --reference-manifest DIR, "
                "or --enrol dominant."
            )
        if p.reference_manifest and not p.reference_ids:
            raise UsageError("--reference-manifest needs --reference-ids a,b,...")
        if p.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise AudioprepError(
                    "--device cuda: torch sees no CUDA GPU here; use --device cpu."
                )
        for ref in p.references:
            if not Path(ref).exists():
                raise UsageError(f"no such reference file or folder: {ref}")
        if p.enrol == "reference" and not self._reference_files():
            raise UsageError("the references hold no audio file.")
        self.engine_class().check(self.settings())
        require_ffmpeg()

    def _reference_files(self) -> list[Path]:
        p = self.params
        files: list[Path] = []
        for ref in p.references:
            path = Path(ref)
            if path.is_dir():
                files += sorted(f for f in path.rglob("*") if f.suffix.lower() in MEDIA_EXTENSIONS)
            else:
                files.append(path)
        if p.reference_manifest:
            wanted = set(p.reference_ids)
            found = {r["id"]: r for r in read_manifest(p.reference_manifest) if r["id"] in wanted}
            missing = sorted(wanted - set(found))
            if missing:
                raise UsageError(
                    f"--reference-ids not in {p.reference_manifest}: {', '.join(missing)}"
                )
            files += [
                resolve_audio(p.reference_manifest, found[i]["audio"]) for i in p.reference_ids
            ]
        return files

    def setup(self, ctx: WorkerContext) -> None:
        from audioprep.engines import base as engines

        # threads: the stage's declared resources (one torch thread per worker: measured here,
        # one thread embeds faster than two) unless AUDIOPREP_THREADS says otherwise
        self.engine = engines.load("speaker", self.params.engine, self.settings(ctx.threads))

    def teardown(self) -> None:
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.close()

    # -- measure: in the workers ----------------------------------------------------------

    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        return self.measure_batch([record], [ctx])[0]

    def measure_batch(self, records: list[Record], ctxs: list[ItemContext]) -> list[dict[str, Any]]:
        """Measure several items with one forward pass over all their partial windows
        (``--window-batch`` windows at a time; ``--batch-size`` items per call); equal to
        measuring them one by one."""
        import numpy as np

        from audioprep.engines.speaker.voiced import decode, embed_long, voiced

        prepared: list[tuple[Any, Any, Any] | None] = []
        cached: list[dict[str, Any] | None] = []
        keys: list[str | None] = []
        for record, ctx in zip(records, ctxs, strict=True):
            path = ctx.input_audio(record)
            key = self._cache_key(path)
            hit = _cache_read(ctx.out_dir, key)
            keys.append(key)
            if hit is not None and (
                hit["measurement"] is not None or hit["voiced_seconds"] < self.params.min_voiced
            ):
                cached.append(hit)
                prepared.append(None)
                continue
            cached.append(None)
            if _is_long(path, record):  # in blocks, in bounded memory
                prepared.append(
                    (
                        "long",
                        embed_long(self.engine, path, batch_windows=self.params.window_batch),
                        None,
                    )
                )
                continue
            wav = decode(path)
            v, where = voiced(wav)
            prepared.append((wav, v, where))
        todo = [
            p[1] for p in prepared if p is not None and len(p[1]) / SR >= self.params.min_voiced
        ]
        embedded = iter(self.engine.embed_many(todo, batch_windows=self.params.window_batch))
        out: list[dict[str, Any]] = []
        for record, ctx, item, hit, key in zip(records, ctxs, prepared, cached, keys, strict=True):
            if hit is not None:
                seconds, m = hit["voiced_seconds"], hit["measurement"]
                m = None if m is None else {**m, "cached": True}
            else:
                assert item is not None
                wav, v, where = item
                if isinstance(wav, str):  # "long"
                    seconds = v["seconds"]
                    enough = seconds >= self.params.min_voiced and v["embedding"] is not None
                    m = _long_measurement(v, self.scale.turn) if enough else None
                    _cache_write(ctx.out_dir, key, seconds, m)
                    if m is not None:
                        out.append(m)
                        continue
                    v = np.zeros(int(seconds * SR))  # for the rejection below
                seconds = len(v) / SR
                m = None
                if seconds >= self.params.min_voiced:
                    embedding, partials = next(embedded)
                    m = _measurement(wav, v, where, embedding, partials, self.scale.turn)
                _cache_write(ctx.out_dir, key, seconds, m)
            if seconds < self.params.min_voiced or m is None:
                ctx.reject(
                    record,
                    f"too short to embed reliably: {seconds:.2f} s of voiced audio "
                    f"(--min-voiced {self.params.min_voiced:g} s)",
                    voiced_seconds=round(seconds, 3),
                )
                out.append({})
                continue
            out.append(m)
        return out

    def _cache_key(self, path: Path) -> str | None:
        """The embeddings' cache key: the input file's identity (resolved path, size, mtime)
        and what the measurement depends on (encoder, window analysis)."""
        import hashlib

        try:
            st = path.stat()
        except OSError:
            return None
        if not hasattr(self, "_encoder_tag"):
            self._encoder_tag = self.engine_class().version_tag()
        ident = [
            str(path.resolve()),
            st.st_size,
            st.st_mtime_ns,
            self._encoder_tag,
            self.version,
            self.scale.turn,
            TURN_MIN_WINDOWS,
        ]
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()

    # -- decide: once, in the main process -----------------------------------------------

    def _reference_embeddings(self) -> Any:
        import numpy as np

        from audioprep.engines import base as engines
        from audioprep.engines.speaker.voiced import decode, voiced

        engine = engines.load("speaker", self.params.engine, self.settings())
        wavs = []
        for path in self._reference_files():
            try:
                v, _ = voiced(decode(path))
            except ItemError as exc:
                raise UsageError(f"reference {path}: {exc}") from None
            if len(v) / SR < self.params.min_voiced:
                raise UsageError(
                    f"reference {path} has under {self.params.min_voiced:g} s of voiced audio."
                )
            wavs.append(v)
        embedded = engine.embed_many(wavs, batch_windows=self.params.window_batch)
        engine.close()
        return np.array([e for e, _ in embedded])

    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        """The voice, its clusters, every unit's score and keep, and the confirmed changes.

        Units are the clips without a candidate change and the candidate turns of the others;
        they are clustered into the corpus's voices, the voice is enrolled and adapted, the
        clusters near it join it, and each unit is scored against its nearest rendering. A
        clip with candidate turns is cut only at changes confirmed by evidence (see
        :meth:`_confirmed_pieces`); otherwise it is decided whole, on its own embedding.
        """
        import numpy as np

        from audioprep.dsp.speakers import centroid, cluster_voices, score_more, voice_decision

        p = self.params
        units: list[tuple[str, int | None]] = []  # (item id, turn index or None)
        embs, seconds = [], []
        whole_ids, whole_embs = [], []  # clips with candidate turns: their own embedding
        for item_id, m in measurements.items():
            if not m:
                continue
            if m.get("turns"):
                whole_ids.append(item_id)
                whole_embs.append(m["embedding"])
                for k, turn in enumerate(m["turns"]):
                    units.append((item_id, k))
                    embs.append(turn["embedding"])
                    seconds.append(turn["end"] - turn["start"])
            else:
                units.append((item_id, None))
                embs.append(m["embedding"])
                seconds.append(m["voiced_seconds"])
        if not units:  # an empty corpus, or no clip with enough voiced audio: nothing to score
            return {
                "enrol": p.enrol,
                "threshold": None,
                "calibration": {"method": "none", "why": "no clip had enough voiced audio"},
                **{k: {} for k in ("scores", "scores_initial", "snorm", "turns", "keep")},
            }
        x = np.array(embs, dtype=np.float64).reshape(len(embs), -1)
        decision: dict[str, Any] = {"enrol": p.enrol}
        labels = cluster_voices(x, stop_similarity=self.scale.cluster, weights=np.array(seconds))
        clusters = _describe_clusters(x, labels, units, seconds)
        decision["clusters"] = clusters
        anchor = None
        if p.enrol == "reference":
            refs = self._reference_embeddings()
            anchor = voice = centroid(refs)
            decision["references"] = [str(f) for f in self._reference_files()]
        else:
            wanted = 0 if p.enrol == "dominant" else _cluster_number(p.enrol)
            if not len(units) or wanted >= len(clusters):
                decision["error"] = f"--enrol {p.enrol}: " + (
                    "no item could be embedded"
                    if not len(units)
                    else f"only {len(clusters)} clusters were found "
                    f"(numbered 0 to {len(clusters) - 1})"
                )
                atomic_write_text(
                    Path(ctx.out_dir) / DECISION_FILE, json.dumps(decision, indent=1) + "\n"
                )
                raise UsageError(
                    decision["error"] + f"; their sizes are in {ctx.out_dir}/decision.json. "
                    "The embeddings are kept: run again with another --enrol and --overwrite."
                )
            voice = centroid(x[labels == wanted])
            decision["cluster"] = wanted
            decision["dominant_cluster_size"] = clusters[wanted]["size"]
        bank = self.engine_class().load_bank()
        result = voice_decision(
            x,
            voice,
            labels,
            anchor=anchor,
            adapt=p.adapt and p.enrol == "reference",  # a cluster is the corpus's voice already
            threshold=p.threshold,
            auto_z=self.scale.auto_z,
            join=self.scale.join,
            join_low=JOIN_LOW,
            join_high=self.scale.join_high,
            bank_margin=JOIN_BANK_MARGIN,
            cohort_below=self.scale.cohort_below,
            bank=bank,
            min_cohort=MIN_COHORT,
            enrol_above=self.scale.enrol_above,
            enrol_floor=self.scale.enrol_floor,
            fixed=self.scale.fixed,
            floor=self.scale.floor,
        )
        keep, score, initial, z = result["keep"], result["score"], result["initial"], result["z"]
        for c, info in enumerate(clusters):
            info["similarity"] = round(float(result["cluster_similarity"][c]), 4)
            info["joined"] = bool(result["joined"][c])

        def unit_id(u: tuple[str, int | None]) -> str:
            return u[0] if u[1] is None else f"{u[0]}#{u[1]}"

        decision["calibration"] = result["calibration"]
        decision["threshold"] = result["threshold"]
        decision["adapt"] = {
            "enabled": p.adapt,
            "iterations": len(result["enrolment"]),
            "enrolment": [[unit_id(units[i]) for i in s] for s in result["enrolment"]],
        }
        decision["voice"] = [round(float(v), 7) for v in result["voice"]]
        decision["renderings"] = len(result["renderings"])
        decision["cluster_of"] = {unit_id(u): int(labels[i]) for i, u in enumerate(units)}
        decision["scores"], decision["scores_initial"] = {}, {}
        decision["snorm"], decision["keep"] = {}, {}
        decision["turns"], decision["splits"], decision["doubt"] = {}, {}, {}
        rows: dict[str, list[int]] = {}
        for i, (item_id, k) in enumerate(units):
            if k is None:
                decision["scores"][item_id] = round(float(score[i]), 4)
                decision["scores_initial"][item_id] = round(float(initial[i]), 4)
                decision["snorm"][item_id] = None if z is None else round(float(z[i]), 3)
                decision["keep"][item_id] = bool(keep[i])
            else:
                rows.setdefault(item_id, []).append(i)
        if whole_ids:
            w = np.array(whole_embs, dtype=np.float64)
            wkeep, wscore, wz = score_more(result, w, auto_z=self.scale.auto_z)
            winit = w @ result["voice"] / np.linalg.norm(w, axis=1)
        others = self._other_voices(x, labels, result, bank, self.scale.cohort_below)
        for j, item_id in enumerate(whole_ids):
            turns = measurements[item_id]["turns"]
            idx = rows[item_id]
            side = [
                {
                    "start": t["start"],
                    "end": t["end"],
                    "windows": t.get("windows"),
                    "cluster": int(labels[i]),
                    "score": round(float(score[i]), 4),
                    "score_initial": round(float(initial[i]), 4),
                    "snorm": None if z is None else round(float(z[i]), 3),
                    "keep": bool(keep[i]),
                    "other_voice": _finite(others(i)[0]),
                    "bank_voice": _finite(others(i)[1]),
                }
                for t, i in zip(turns, idx, strict=True)
            ]
            scale = self.scale
            pieces, checked = _confirmed_pieces(
                side, scale.split_margin, scale.split_strong, scale.split_below, scale.split_gap
            )
            decision["splits"][item_id] = checked
            if pieces is not None:
                decision["turns"][item_id] = pieces
                best = max(pieces, key=lambda t: t["score"])
                decision["scores"][item_id] = best["score"]
                decision["snorm"][item_id] = best["snorm"]
                decision["keep"][item_id] = any(t["keep"] for t in pieces)
            else:
                decision["scores"][item_id] = round(float(wscore[j]), 4)
                decision["snorm"][item_id] = None if wz is None else round(float(wz[j]), 3)
                # a turn the decision rejects but no evidence cut away: in doubt, the clip
                # is kept only when it scores as the voice without that turn's seconds too
                doubt = [t for t in side if not t["keep"]]
                flip = DOUBT_REJECTS and bool(wkeep[j]) and doubt and any(t["keep"] for t in side)
                decision["keep"][item_id] = bool(wkeep[j]) and not flip
                if flip:
                    decision["doubt"][item_id] = [[t["start"], t["end"]] for t in doubt]
            decision["scores_initial"][item_id] = round(float(winit[j]), 4)
        decision["curve"] = _curve(decision, measurements, self.scale.fixed)
        if p.report:
            self._report(ctx, np.array(list(decision["scores"].values())), decision)
        return decision

    @staticmethod
    def _other_voices(
        x: Any, labels: Any, result: dict[str, Any], bank: Any, cohort_below: float
    ) -> Any:
        """``f(i)``: how much better unit ``i`` matches another voice than the target: the
        nearest centroid of a clearly-other cluster (not joined, under the scale's ``cohort_below``
        from the voice; leaving ``i`` out of its own), and the
        nearest voice of the impostor bank, each minus its score (-inf where there is none)."""
        import numpy as np

        from audioprep.dsp.speakers import other_voice_evidence, unit

        u = unit(x)
        # only clearly other voices: a cluster between the cohort's bound and the join (the
        # target under a harsher rendering, as often as a guest) is evidence of nothing
        other = ~result["joined"] & (result["cluster_similarity"] < cohort_below)
        sums = {c: u[labels == c].sum(axis=0) for c in range(len(other)) if other[c]}
        counts = {c: int((labels == c).sum()) for c in sums}
        extra = unit(bank) if bank is not None and len(bank) else np.zeros((0, x.shape[1]))

        def evidence(i: int) -> tuple[float, float]:
            rows = [
                sums[c] - (u[i] if c == labels[i] else 0)
                for c in sums
                if counts[c] - (c == labels[i]) >= 1
            ]
            pool = np.array(rows).reshape(-1, x.shape[1])
            s = float(result["score"][i])
            return other_voice_evidence(u[i], s, pool), other_voice_evidence(u[i], s, extra)

        return evidence

    def _report(self, ctx: DecideContext, scores: Any, decision: dict[str, Any]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        counts, edges = np.histogram(scores, bins=40, range=(-0.2, 1.0))
        fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
        ax.hist(scores, bins=edges, color="#4477aa")
        if decision["threshold"] is not None:
            ax.axvline(
                decision["threshold"], color="#cc3311", label=f"threshold {decision['threshold']}"
            )
            ax.legend()
        ax.set_xlabel("speaker similarity (cosine, adapted voice)")
        ax.set_ylabel("items")
        fig.tight_layout()
        with ctx.writing("speaker_report.png") as tmp:
            fig.savefig(tmp)
        plt.close(fig)
        report = {
            "threshold": decision["threshold"],
            "calibration": decision["calibration"],
            "n": int(len(scores)),
            "kept": int(sum(decision["keep"].values())),
            "histogram": {"edges": [round(e, 3) for e in edges], "counts": counts.tolist()},
            "quantiles": {
                str(q): round(float(np.quantile(scores, q)), 4)
                for q in (0.05, 0.25, 0.5, 0.75, 0.95)
            }
            if len(scores)
            else {},
            "clusters": decision.get("clusters"),
            "curve": decision.get("curve"),
            "splits": {
                item: [c for c in checks if c["confirmed"]]
                for item, checks in decision.get("splits", {}).items()
                if any(c["confirmed"] for c in checks)
            },
        }
        ctx.write_text("speaker_report.json", json.dumps(report, indent=2) + "\n")

    # -- finish: each item, in order ----------------------------------------------------

    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        item_id = record["id"]
        score = decision["scores"][item_id]
        fields = {
            "speaker_similarity": score,
            "speaker_similarity_initial": decision["scores_initial"][item_id],
            "speaker_snorm": decision["snorm"][item_id],
        }
        turns = decision["turns"].get(item_id)
        if self.params.annotate_only:  # the decision below, recorded instead of applied
            mixed = bool(turns) and not all(t["keep"] for t in turns)
            src = ctx.input_audio(record)
            return [
                {
                    **record,
                    "audio": ctx.link(src, f"{item_id}{src.suffix}"),
                    **fields,
                    "voiced_seconds": measurement["voiced_seconds"],
                    "speaker_pass": bool(decision["keep"][item_id]) and not mixed,
                }
            ]
        if not decision["keep"][item_id]:
            doubt = decision.get("doubt", {}).get(item_id)
            why = (
                f"speaker similarity {score:.3f} is below the threshold {decision['threshold']:.3f}"
                if decision["calibration"]["method"] == "fixed"
                else f"not the target voice: normalised score {fields['speaker_snorm']:.2f} is "
                f"below {decision['calibration']['z_threshold']:g} (similarity {score:.3f})"
            )
            if doubt:  # the clip as a whole passed, one of its turns did not
                where = ", ".join(f"{a:.2f} to {b:.2f} s" for a, b in doubt)
                why = (
                    f"may hold another voice ({where} scores apart from the target, but the "
                    "change is not confirmed): rejected whole"
                )
            ctx.reject(record, why, **fields)
            return []
        src = ctx.input_audio(record)
        if not turns or all(t["keep"] for t in turns):
            return [
                {
                    **record,
                    "audio": ctx.link(src, f"{item_id}{src.suffix}"),
                    **fields,
                    "voiced_seconds": measurement["voiced_seconds"],
                }
            ]
        others = [t for t in turns if not t["keep"]]
        where = ", ".join(f"{t['start']:.2f} to {t['end']:.2f} s" for t in others)
        if self.params.mixed == "reject":
            ctx.reject(record, f"contains another voice from {where}", **fields, turns=turns)
            return []
        return self._split(record, turns, fields, src, ctx)

    def _split(
        self,
        record: Record,
        turns: list[dict[str, Any]],
        fields: dict[str, Any],
        src: Path,
        ctx: ItemContext,
    ) -> list[Record]:
        """Cut the clip at its speaker changes: keep the target's turns, reject the others."""
        import soundfile as sf

        from audioprep.core.media import codec_fields, exact_dtype, output_format, sound_info

        try:
            info = sound_info(src)
        except ItemError:  # AAC, Opus ...: cut a lossless decode of it (its rate and channels)
            import subprocess

            ctx.tmp_dir.mkdir(parents=True, exist_ok=True)
            wav = ctx.tmp_dir / f"{record['id']}.split.wav"
            done = subprocess.run(
                ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-vn"]
                + ["-c:a", "pcm_s16le", str(wav)],
                capture_output=True,
            )
            if done.returncode != 0:
                raise ItemError(
                    "ffmpeg could not decode it to cut it at the speaker change"
                ) from None
            try:
                return self._split(record, turns, fields, wav, ctx)
            finally:
                wav.unlink(missing_ok=True)
        sr, n = info.samplerate, info.frames
        fmt, subtype = output_format(info)
        # neighbouring kept turns join into one piece
        pieces: list[list[dict[str, Any]]] = []
        for t in turns:
            if t["keep"] and pieces and pieces[-1][-1]["keep"]:
                pieces[-1].append(t)
            else:
                pieces.append([t])
        out: list[Record] = []
        with sf.SoundFile(str(src)) as fin:
            for index, piece in enumerate(pieces):
                start, end = piece[0]["start"], piece[-1]["end"]
                a, b = int(round(start * sr)), min(n, int(round(end * sr)))
                part_id = f"{record['id']}_t{index}"
                part = {
                    "id": part_id,
                    "parent": record["id"],
                    "offset": round(a / sr, 6),
                    **child_offset(record, a / sr),
                    "duration": round((b - a) / sr, 6),
                }
                if not piece[0]["keep"]:
                    ctx.reject(
                        part,
                        f"contains another voice from {start:.2f} to {end:.2f} s",
                        speaker_similarity=piece[0]["score"],
                        speaker_snorm=piece[0]["snorm"],
                    )
                    continue
                if (b - a) / sr < self.params.min_voiced:
                    ctx.reject(part, f"the target's turn is only {(b - a) / sr:.2f} s long")
                    continue
                name = f"{part_id}.{fmt}"
                fin.seek(a)
                with ctx.output(name) as tmp:
                    sf.write(
                        str(tmp),
                        fin.read(b - a, dtype=exact_dtype(subtype), always_2d=True),
                        sr,
                        subtype=subtype,
                        format=fmt.upper(),
                    )
                best = max(piece, key=lambda t: t["score"])
                out.append(
                    {
                        **record,
                        **part,
                        "audio": ctx.relpath(name),
                        **codec_fields(fmt, subtype),
                        **fields,
                        "speaker_similarity": best["score"],
                        "speaker_snorm": best["snorm"],
                        "speaker_split": {"index": index, "start": start, "end": end},
                    }
                )
        return out

    def tool_versions(self) -> dict[str, str]:

        return {"engine": self.params.engine, **self.engine_class().versions()}


#: Embeddings cached in OUT_DIR (a declared cache output): a re-run with another --threshold,
#: --enrol or --mixed (and --overwrite) reads them instead of embedding again.
CACHE_DIR = ".speaker-embeddings"


def _cache_path(out_dir: Path, key: str | None) -> Path | None:
    if key is None:
        return None
    root = Path(out_dir) / CACHE_DIR
    if root.is_symlink():  # never read or write through a link out of OUT_DIR
        return None
    return root / key[:2] / f"{key}.json"


def _cache_read(out_dir: Path, key: str | None) -> dict[str, Any] | None:
    path = _cache_path(out_dir, key)
    if path is None or path.is_symlink() or path.parent.is_symlink():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        float(data["voiced_seconds"])
        if data["measurement"] is not None and "embedding" not in data["measurement"]:
            return None
        return data
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: embed again


def _cache_write(out_dir: Path, key: str | None, seconds: float, m: Any) -> None:
    path = _cache_path(out_dir, key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.is_symlink():
            return
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"voiced_seconds": seconds, "measurement": m}), "utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written is only slower next time


def _finite(value: float) -> float | None:
    """``value`` rounded for decision.json, None where it is not finite (no other voice)."""
    import math

    return round(value, 4) if math.isfinite(value) else None


def _confirmed_pieces(
    side: list[dict[str, Any]],
    margin: float,
    strong: float,
    below: float | None = None,
    gap: float = 0.0,
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """The pieces of a clip cut at its confirmed changes, or None (decide it whole), and every
    candidate change with both sides' scores and whether it was confirmed.

    A change between two candidate turns is confirmed when the decision keeps one side and
    not the other, both have :data:`SPLIT_MIN_WINDOWS` windows, and the rejected side matches
    another voice of the corpus better than the target (its ``other_voice``) by ``margin``
    where the two sides are different clusters, by ``strong`` where they are one; or
    a voice of the impostor bank (``bank_voice``) by ``strong``; or, with ``below`` (an encoder
    that places other voices that low), its own score is under ``below`` and ``gap`` under the
    clip's best kept turn's. Turns between unconfirmed
    changes join; a piece is kept when most of its seconds were kept.
    """
    checked, cuts = [], []
    best = max((t["score"] for t in side if t["keep"]), default=0.0)
    for j, (a, b) in enumerate(zip(side, side[1:], strict=False)):
        other = b if a["keep"] else a
        ok = (
            a["keep"] != b["keep"]
            and min(a.get("windows") or 0, b.get("windows") or 0) >= SPLIT_MIN_WINDOWS
            and (
                (a["cluster"] != b["cluster"] and (other["other_voice"] or -1.0) >= margin)
                or (other["other_voice"] or -1.0) >= strong
                or (other.get("bank_voice") or -1.0) >= strong
                or (below is not None and other["score"] < below and best - other["score"] >= gap)
            )
        )
        checked.append({"at": b["start"], "before": a, "after": b, "confirmed": bool(ok)})
        if ok:
            cuts.append(j + 1)
    if not cuts:
        return None, checked
    pieces = []
    for lo, hi in zip([0, *cuts], [*cuts, len(side)], strict=True):
        group = side[lo:hi]
        kept = sum(t["end"] - t["start"] for t in group if t["keep"])
        total = sum(t["end"] - t["start"] for t in group)
        best = max(group, key=lambda t: t["score"])
        pieces.append(
            {
                "start": group[0]["start"],
                "end": group[-1]["end"],
                "score": best["score"],
                "score_initial": max(t["score_initial"] for t in group),
                "snorm": best["snorm"],
                "keep": kept >= total / 2,
            }
        )
    if len({t["keep"] for t in pieces}) < 2:
        return None, checked
    return pieces, checked


def _curve(
    decision: dict[str, Any], measurements: dict[str, Any], fixed: float
) -> list[dict[str, Any]]:
    """Seconds of voiced audio kept at each cosine threshold (clips and cut pieces), at 19
    thresholds from the engine's fixed threshold - 0.25 to + 0.2."""
    units = []
    for item_id, s in decision["scores"].items():
        if item_id in decision["turns"]:
            units += [(t["score"], t["end"] - t["start"]) for t in decision["turns"][item_id]]
        else:
            units.append((s, measurements[item_id]["voiced_seconds"]))
    total = sum(sec for _, sec in units) or 1.0
    out = []
    for k in range(0, 19):
        th = round(fixed - 0.25 + 0.025 * k, 3)
        kept = sum(sec for s, sec in units if s >= th)
        out.append(
            {
                "threshold": th,
                "seconds": round(kept, 2),
                "share": round(kept / total, 4),
                "units": sum(1 for s, _ in units if s >= th),
            }
        )
    return out


def _cluster_number(enrol: str) -> int:
    if enrol.startswith("cluster:") and enrol[8:].isdigit():
        return int(enrol[8:])
    return -1


def _is_long(path: Path, record: Record) -> bool:
    """Whether an item is long enough to be measured in blocks (over ten minutes)."""
    from audioprep.engines.speaker.voiced import LONG_SAMPLES

    try:
        import soundfile as sf

        info = sf.info(str(path))
        return info.frames / info.samplerate * SR > LONG_SAMPLES
    except (ImportError, RuntimeError, OSError, ValueError):
        try:
            return float(record.get("duration") or 0) * SR > LONG_SAMPLES
        except (TypeError, ValueError):
            return False


def _long_measurement(r: dict[str, Any], turn: float) -> dict[str, Any]:
    """:func:`_measurement` of a long item measured in blocks: the changes are placed at the
    middle of the window where they were found (no sample-level search for the pause)."""
    import numpy as np

    from audioprep.dsp.speakers import centroid, turns

    partials, starts = r["partials"], r["starts"]
    m: dict[str, Any] = {
        "embedding": [round(float(x), 7) for x in r["embedding"]],
        "voiced_seconds": round(r["seconds"], 3),
        "windows": len(partials),
    }
    runs = turns(partials, change_similarity=turn, min_windows=TURN_MIN_WINDOWS)
    if len(runs) < 2:
        return m
    bounds = [0.0]
    for _, _, pos in runs[1:]:
        at = starts[min(len(starts) - 1, max(0, int(np.floor(pos))))] + 0.8
        bounds.append(max(bounds[-1], float(at)))
    bounds.append(r["duration"])
    n = len(partials)
    m["turns"] = []
    for (first, stop, _), start, end in zip(runs, bounds, bounds[1:], strict=False):
        lo, hi = first + (first > 0), stop - (stop < n)
        m["turns"].append(
            {
                "start": round(start, 3),
                "end": round(end, 3),
                "windows": int(hi - lo if hi > lo else stop - first),
                "embedding": [
                    round(float(x), 7)
                    for x in centroid(partials[lo:hi] if hi > lo else partials[first:stop])
                ],
            }
        )
    return m


def _measurement(
    wav: Any, v: Any, where: Any, embedding: Any, partials: Any, turn: float
) -> dict[str, Any]:
    """The item's embedding and, where its windows fall into two groups, its candidate turns
    (start and end in the clip, seconds, at the quietest point near each change)."""
    import numpy as np

    from audioprep.dsp.speakers import centroid, quietest, turns
    from audioprep.engines.speaker.voiced import HOP_SAMPLES, RATE

    def rounded(e: Any) -> list[float]:
        return [round(float(x), 7) for x in e]

    m: dict[str, Any] = {
        "embedding": rounded(embedding),
        "voiced_seconds": round(len(v) / SR, 3),
        "windows": len(partials),
    }
    runs = turns(partials, change_similarity=turn, min_windows=TURN_MIN_WINDOWS)
    if len(runs) < 2:
        return m
    step = int(np.round((SR / RATE) / HOP_SAMPLES)) * HOP_SAMPLES
    bounds = [0.0]
    for _, _, pos in runs[1:]:
        at = int(min(len(where) - 1, max(0, pos * step + 0.8 * SR)))
        # changes in order: two estimates within a second of each other can cross
        bounds.append(max(bounds[-1], quietest(wav, sr=SR, around=where[at] / SR, radius=1.0)))
    bounds.append(len(wav) / SR)
    n = len(partials)
    m["turns"] = []
    for (first, stop, _), start, end in zip(runs, bounds, bounds[1:], strict=False):
        lo, hi = first + (first > 0), stop - (stop < n)  # leave out windows across a change
        m["turns"].append(
            {
                "start": round(start, 3),
                "end": round(end, 3),
                "windows": int(hi - lo if hi > lo else stop - first),
                "embedding": rounded(
                    centroid(partials[lo:hi] if hi > lo else partials[first:stop])
                ),
            }
        )
    return m


def _describe_clusters(
    x: Any, labels: Any, units: list[tuple[str, int | None]], seconds: list[float]
) -> list[dict[str, Any]]:
    import numpy as np

    from audioprep.dsp.speakers import centroid, unit

    out = []
    for c in range(int(labels.max()) + 1 if len(labels) else 0):
        idx = np.flatnonzero(labels == c)
        v = centroid(x[idx])
        sims = unit(x[idx]) @ v
        order = idx[np.argsort(-sims)]
        out.append(
            {
                "cluster": c,
                "size": int(len(idx)),
                "seconds": round(float(sum(seconds[i] for i in idx)), 2),
                "mean_similarity": round(float(sims.mean()), 4),
                "samples": [units[i][0] for i in order[:3]],
            }
        )
    return out
