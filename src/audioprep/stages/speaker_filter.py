"""speaker-filter: Keep only the target voice: Resemblyzer embeddings, adapted to the corpus.

Embeds every clip as 1.6 s windows, cuts clips holding two voices into turns, enrols the target
from references (re-enrolled from the corpus's own clips) or from the largest cluster of voices,
and keeps the target's speech by a score normalised against the corpus's other voices.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from audioprep.core.media import MEDIA_EXTENSIONS, require_ffmpeg
from audioprep.core.params import device_param, param
from audioprep.core.stage import (
    CorpusStage,
    DecideContext,
    ItemContext,
    Output,
    RecordField,
    Resources,
    WorkerContext,
)
from audioprep.errors import AudioprepError, ItemError, UsageError
from audioprep.manifests.offsets import child_offset
from audioprep.manifests.records import Record, read_manifest, resolve_audio

SR = 16000
#: The speaker embedder (a name in the engine registry, family "speaker").
ENGINE = "resemblyzer"
#: A fixed threshold (cosine similarity), measured here on clean LibriSpeech: same speaker
#: 0.80-0.96, others <= 0.74. Used with ``--threshold 0.75``; the default is ``auto``.
DEFAULT_THRESHOLD = 0.75
#: Two halves of a clip less similar than this are kept apart as candidate turns; the
#: decision then says whether they are one voice (both kept or both rejected) or two.
TURN_SIMILARITY = 0.9
TURN_MIN_WINDOWS = 1
#: Measured on the synthetic shows (docs/stages/speaker-filter.md): the calibrated decision
#: keeps units whose S-normalised score is at least this; enrolment takes those above ENROL_Z.
AUTO_Z = 2.0
#: Enrolment takes the clips scoring this much or more (a clear margin over 0.75).
ENROL_ABOVE = 0.8
#: Units scoring below this against the first voice form the impostor cohort ("clearly other":
#: other speakers score 0.45-0.70 against clean references); fewer than MIN_COHORT of them and
#: the decision falls back to the fixed threshold.
COHORT_BELOW = 0.6
MIN_COHORT = 5
#: Dominant voice: agglomerative clustering stops merging groups less similar than this.
CLUSTER_SIMILARITY = 0.7


def _threshold(text: str) -> float | None:
    """``--threshold``: a number, or ``auto`` (None)."""
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError("is not a number or auto") from None


def _threshold_text(value: float | None) -> str:
    return "auto" if value is None else repr(float(value))


class SpeakerFilterStage(CorpusStage):
    """Embed every item, compare it with the target voice, keep the target's speech.

    Every clip is embedded as Resemblyzer's 1.6 s partial windows; a clip whose windows fall
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
    version = "2"
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
            parse=_threshold,
            render=_threshold_text,
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
        annotate_only: bool = param(
            False,
            help="Drop and split nothing: record the decision as speaker_pass.",
            flags=("--annotate-only",),
        )

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
        settings = engines.Settings(device=self.params.device, threads=ctx.threads)
        self.engine = engines.load("speaker", ENGINE, settings)
        self.encoder = self.engine.encoder

    def teardown(self) -> None:
        engine = self.__dict__.pop("engine", None)
        self.__dict__.pop("encoder", None)
        if engine is not None:
            engine.close()

    # -- measure: in the workers ----------------------------------------------------------

    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        return self.measure_batch([record], [ctx])[0]

    def measure_batch(self, records: list[Record], ctxs: list[ItemContext]) -> list[dict[str, Any]]:
        """Measure several items with one forward pass over all their partial windows
        (``--window-batch`` windows at a time; ``--batch-size`` items per call); equal to
        measuring them one by one."""
        from audioprep.engines.speaker.resemblyzer import decode, embed_batch, voiced

        prepared: list[tuple[Any, Any, Any] | None] = []
        for record, ctx in zip(records, ctxs, strict=True):
            wav = decode(ctx.input_audio(record))
            v, where = voiced(wav)
            seconds = len(v) / SR
            if seconds < self.params.min_voiced:
                ctx.reject(
                    record,
                    f"too short to embed reliably: {seconds:.2f} s of voiced audio "
                    f"(--min-voiced {self.params.min_voiced:g} s)",
                    voiced_seconds=round(seconds, 3),
                )
                prepared.append(None)
            else:
                prepared.append((wav, v, where))
        todo = [p[1] for p in prepared if p is not None]
        embedded = iter(embed_batch(self.encoder, todo, batch_windows=self.params.window_batch))
        out: list[dict[str, Any]] = []
        for item in prepared:
            if item is None:
                out.append({})
                continue
            wav, v, where = item
            embedding, partials = next(embedded)
            out.append(_measurement(wav, v, where, embedding, partials))
        return out

    # -- decide: once, in the main process -----------------------------------------------

    def _reference_embeddings(self) -> Any:
        import numpy as np

        from audioprep.engines import base as engines
        from audioprep.engines.speaker.resemblyzer import decode, embed_batch, voiced

        encoder = engines.load(
            "speaker", ENGINE, engines.Settings(device=self.params.device, threads=1)
        ).encoder
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
        return np.array([e for e, _ in embed_batch(encoder, wavs)])

    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        import numpy as np

        from audioprep.dsp.speakers import calibrated_decision, centroid, cluster_voices

        p = self.params
        units: list[tuple[str, int | None]] = []  # (item id, turn index or None)
        embs, seconds = [], []
        for item_id, m in measurements.items():
            if not m:
                continue
            if m.get("turns"):
                for k, turn in enumerate(m["turns"]):
                    units.append((item_id, k))
                    embs.append(turn["embedding"])
                    seconds.append(turn["end"] - turn["start"])
            else:
                units.append((item_id, None))
                embs.append(m["embedding"])
                seconds.append(m["voiced_seconds"])
        x = np.array(embs, dtype=np.float64).reshape(len(embs), -1)
        cohort = None
        decision: dict[str, Any] = {"enrol": p.enrol}
        anchor = target = None
        labels = cluster_voices(x, stop_similarity=CLUSTER_SIMILARITY, weights=np.array(seconds))
        clusters = _describe_clusters(x, labels, units, seconds)
        decision["clusters"] = clusters
        if p.enrol == "reference":
            refs = self._reference_embeddings()
            anchor = centroid(refs)
            voice = anchor
            decision["references"] = [str(f) for f in self._reference_files()]
            if len(units):  # the cluster nearest the references: the voice in this corpus
                near = [float(centroid(x[labels == c]) @ voice) for c in range(len(clusters))]
                best = int(np.argmax(near))
                decision["nearest_cluster"] = {"cluster": best, "similarity": round(near[best], 4)}
                if near[best] >= COHORT_BELOW:
                    target, cohort = labels == best, labels != best
        else:
            if not len(units):
                raise AudioprepError(f"--enrol {p.enrol}: no item could be embedded.")
            wanted = 0 if p.enrol == "dominant" else _cluster_number(p.enrol)
            if wanted >= len(clusters):
                raise UsageError(
                    f"--enrol {p.enrol}: only {len(clusters)} clusters were found "
                    f"(numbered 0 to {len(clusters) - 1}); see decision.json"
                )
            voice = centroid(x[labels == wanted])
            cohort = labels != wanted  # the other voices are the impostors
            decision["cluster"] = wanted
            decision["dominant_cluster_size"] = clusters[wanted]["size"]
        result = calibrated_decision(
            x,
            voice,
            anchor=anchor,
            adapt=p.adapt and p.enrol == "reference",  # a cluster is the corpus's voice already
            threshold=p.threshold,
            enrol_above=ENROL_ABOVE,
            auto_z=AUTO_Z,
            cohort_below=COHORT_BELOW,
            cohort=cohort,
            target=target,
            min_cohort=MIN_COHORT,
        )
        keep, score, initial, z = result["keep"], result["score"], result["initial"], result["z"]

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
        decision["scores"] = {}
        decision["scores_initial"] = {}
        decision["snorm"] = {}
        decision["keep"] = {}
        decision["turns"] = {}
        for i, (item_id, k) in enumerate(units):
            if k is None:
                decision["scores"][item_id] = round(float(score[i]), 4)
                decision["scores_initial"][item_id] = round(float(initial[i]), 4)
                decision["snorm"][item_id] = None if z is None else round(float(z[i]), 3)
                decision["keep"][item_id] = bool(keep[i])
            else:
                turn = measurements[item_id]["turns"][k]
                decision["turns"].setdefault(item_id, []).append(
                    {
                        "start": turn["start"],
                        "end": turn["end"],
                        "score": round(float(score[i]), 4),
                        "score_initial": round(float(initial[i]), 4),
                        "snorm": None if z is None else round(float(z[i]), 3),
                        "keep": bool(keep[i]),
                    }
                )
        for item_id, turns in decision["turns"].items():  # a clip's score: its best turn
            best = max(turns, key=lambda t: t["score"])
            decision["scores"][item_id] = best["score"]
            decision["scores_initial"][item_id] = max(t["score_initial"] for t in turns)
            decision["snorm"][item_id] = best["snorm"]
            decision["keep"][item_id] = any(t["keep"] for t in turns)
        if p.report:
            self._report(ctx, np.array(list(decision["scores"].values())), decision)
        return decision

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
            why = (
                f"speaker similarity {score:.3f} is below the threshold {decision['threshold']:.3f}"
                if decision["calibration"]["method"] == "fixed"
                else f"not the target voice: normalised score {fields['speaker_snorm']:.2f} is "
                f"below {decision['calibration']['z_threshold']:g} (similarity {score:.3f})"
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

        info = sound_info(src)
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
        from audioprep.engines import base as engines

        return engines.engine_class("speaker", ENGINE).versions()


def _cluster_number(enrol: str) -> int:
    if enrol.startswith("cluster:") and enrol[8:].isdigit():
        return int(enrol[8:])
    return -1


def _measurement(wav: Any, v: Any, where: Any, embedding: Any, partials: Any) -> dict[str, Any]:
    """The item's embedding and, where its windows fall into two groups, its candidate turns
    (start and end in the clip, seconds, at the quietest point near each change)."""
    import numpy as np

    from audioprep.dsp.speakers import centroid, quietest, turns
    from audioprep.engines.speaker.resemblyzer import HOP_SAMPLES, RATE

    def rounded(e: Any) -> list[float]:
        return [round(float(x), 7) for x in e]

    m: dict[str, Any] = {
        "embedding": rounded(embedding),
        "voiced_seconds": round(len(v) / SR, 3),
        "windows": len(partials),
    }
    runs = turns(partials, change_similarity=TURN_SIMILARITY, min_windows=TURN_MIN_WINDOWS)
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
        lo, hi = first + (first > 0), stop - (stop < n)  # leave out windows across a change
        m["turns"].append(
            {
                "start": round(start, 3),
                "end": round(end, 3),
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
