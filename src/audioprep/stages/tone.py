"""tone: Cluster items by their 180-value tone vector, or classify them with a tone-train model."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

from audioprep.core.params import param
from audioprep.core.stage import CorpusStage, DecideContext, ItemContext, Output, WorkerContext
from audioprep.errors import AudioprepError, UsageError
from audioprep.manifests.records import Record

CLUSTERS_FILE = "tone_clusters.json"


@dataclasses.dataclass(frozen=True)
class ToneParams:
    clusters: int | None = param(
        None, help="Group the items into N clusters of similar tone (records tone_cluster).", min=2
    )
    method: str = param("kmeans", help="Clustering method.", choices=("kmeans", "agglomerative"))
    model: str | None = param(
        None,
        help="A tone-train model file: records tone and tone_probabilities.",
        path=True,
        metavar="MODEL",
    )
    keep: tuple[str, ...] = param(
        (), help="With --model: keep only items whose tone is one of these labels."
    )
    seed: int = param(0, help="Random seed of k-means.")


class ToneStage(CorpusStage):
    """The tone vector is 40 MFCC, 12 chroma and 128 mel means at 22.05 kHz. With `--clusters`
    the items are grouped (k-means or Ward on standardised vectors) and each records
    `tone_cluster` and `tone_cluster_distance`; with `--model` (from `audioprep tone-train`)
    each records `tone` and `tone_probabilities`, and `--keep` drops other tones.

    Example: `audioprep tone clips/ grouped/ --clusters 2` or
    `audioprep tone clips/ calm/ --model tone.npz --keep neutral,calm`
    """

    name = "tone"
    outputs = (Output(CLUSTERS_FILE, "--clusters: sizes and centroids of the clusters"),)
    version = "1"
    Params = ToneParams

    def check(self) -> None:
        p = self.params
        if p.clusters is None and p.model is None:
            raise UsageError("tone needs --clusters N or --model MODEL (or both)")
        if p.keep and p.model is None:
            raise UsageError("--keep filters by the predicted tone: give --model too")
        try:
            import librosa  # noqa: F401
            import sklearn  # noqa: F401
        except ImportError:
            raise UsageError(
                "tone needs librosa and scikit-learn: pip install 'audioprep[features]'"
            ) from None
        if p.model is not None:
            from audioprep.engines.tone.model import ToneModel

            model = ToneModel.load(Path(p.model))
            unknown = sorted(set(p.keep) - set(model.labels))
            if unknown:
                raise UsageError(
                    f"--keep {', '.join(unknown)}: not a label of {p.model} "
                    f"(its labels: {', '.join(model.labels)})"
                )

    def setup(self, ctx: WorkerContext) -> None:
        self._model = None
        if self.params.model is not None:
            from audioprep.engines import base as engines

            settings = engines.Settings(options={"model": self.params.model})
            self._model = engines.load("tone", "tone", settings)

    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        from audioprep.engines.tone.model import one_blas_thread

        with one_blas_thread():
            return self._measure(record, ctx)

    def _measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        from audioprep.engines.tone.model import TONE_RATE, file_tone_vector

        model = getattr(self, "_model", None)
        rate = model.sample_rate if model is not None else TONE_RATE
        try:
            vec = file_tone_vector(ctx.input_audio(record), sample_rate=rate)
        except ValueError as exc:
            from audioprep.errors import ItemError

            raise ItemError(f"no tone vector: {exc}") from None
        out: dict[str, Any] = {"vector": [float(v) for v in vec]}
        if model is not None:
            proba = model.predict_proba(vec[None, :])[0]
            out["probabilities"] = {
                k: round(float(p), 6) for k, p in zip(model.labels, proba, strict=True)
            }
        return out

    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        if self.params.clusters is None:
            return {}
        import numpy as np

        from audioprep.dsp.clusters import cluster_standardised

        ids = list(measurements)
        k = self.params.clusters
        if len(ids) < k:
            raise AudioprepError(f"--clusters {k} needs at least {k} items; there are {len(ids)}")
        x = np.array([measurements[i]["vector"] for i in ids], dtype=np.float64)
        labels, distances, centroids = cluster_standardised(
            x, n_clusters=k, method=self.params.method, seed=self.params.seed
        )
        sizes = np.bincount(labels, minlength=k).tolist()
        summary = {
            "method": self.params.method,
            "clusters": k,
            "sizes": sizes,
            "centroids_standardised": np.round(centroids, 5).tolist(),
        }
        ctx.write_text(CLUSTERS_FILE, json.dumps(summary, indent=1))
        return {
            "clusters": {
                i: [int(c), round(float(d), 6)]
                for i, c, d in zip(ids, labels, distances, strict=True)
            },
        }

    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        out: Record = dict(record)
        if "clusters" in decision:
            cluster, distance = decision["clusters"][record["id"]]
            out.update(tone_cluster=cluster, tone_cluster_distance=distance)
        probs = measurement.get("probabilities")
        if probs:
            tone = max(probs, key=probs.get)
            out.update(tone=tone, tone_probabilities=probs)
            if self.params.keep and tone not in self.params.keep:
                ctx.reject(
                    record,
                    f"tone is {tone} (p={probs[tone]:.2f}), not one of --keep "
                    f"{', '.join(self.params.keep)}",
                    tone=tone,
                    probability=probs[tone],
                )
                return []
        out["audio"] = ctx.link(ctx.input_audio(record), Path(record["audio"]).name)
        return [out]

    def tool_versions(self) -> dict[str, str]:
        from audioprep.engines import base as engines

        return engines.engine_class("tone", "tone").versions()

    @classmethod
    def report_section(cls, out_dir: Path) -> str | None:
        """Clusters or classes: how many items each holds, and a few players of each."""
        from audioprep.manifests.records import read_manifest

        out_dir = Path(out_dir)
        groups: dict[str, list[Record]] = {}
        for rec in read_manifest(out_dir):
            if "tone_cluster" in rec:
                key = f"cluster {rec['tone_cluster']}"
            elif "tone" in rec:
                key = str(rec["tone"])
            else:
                continue
            groups.setdefault(key, []).append(rec)
        if not groups:
            return None
        parts = [
            "<h2>Tone</h2><table><tr><th>group</th><th>items</th><th>seconds</th>"
            "<th>examples</th></tr>"
        ]
        for key in sorted(groups):
            recs = groups[key]
            if "tone_cluster_distance" in recs[0]:
                recs = sorted(recs, key=lambda r: r.get("tone_cluster_distance", 0.0))
            else:
                recs = sorted(
                    recs, key=lambda r: -max((r.get("tone_probabilities") or {0: 0}).values())
                )
            players = "".join(_player(out_dir, r) for r in recs[:3])
            seconds = sum(float(r.get("duration") or 0) for r in recs)
            parts.append(
                f"<tr><td>{html.escape(key)}</td><td>{len(recs)}</td><td>{seconds:.1f}</td>"
                f"<td>{players}</td></tr>"
            )
        parts.append("</table>")
        return "".join(parts)


def _player(out_dir: Path, rec: Record) -> str:
    """An item's id and an embedded player (the report's own sampler; none if it fails)."""
    label = html.escape(str(rec["id"]))
    try:
        from audioprep.reports.widgets import clip_media

        _png, mp3 = clip_media(out_dir, rec)
    except Exception:  # noqa: BLE001 - a report without a player is still a report
        return f"<div>{label}</div>"
    return f'<div>{label}<br><audio controls preload=none src="{mp3}"></audio></div>'
