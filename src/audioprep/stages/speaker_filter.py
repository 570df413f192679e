"""speaker-filter: Keep only the target voice: Resemblyzer embeddings compared with reference audio.

Embeds every item, compares it with the target voice and keeps those at or above a threshold.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

from audioprep.errors import AudioprepError, ItemError, UsageError
from audioprep.manifest import Record, read_manifest, resolve_audio
from audioprep.media import MEDIA_EXTENSIONS, pcm16_chunks, require_ffmpeg
from audioprep.schema import param
from audioprep.stage import CorpusStage, DecideContext, ItemContext, WorkerContext

SR = 16000
DEFAULT_THRESHOLD = 0.75  # measured here on LibriSpeech: same speaker 0.80-0.96, others <= 0.74


def _quiet_imports() -> None:
    # webrtcvad (inside resemblyzer) imports pkg_resources, which warns on every import
    warnings.filterwarnings("ignore", message=".*pkg_resources.*", category=UserWarning)


def _load_encoder(threads: int, device: str = "cpu") -> Any:
    _quiet_imports()
    try:
        import torch
        from resemblyzer import VoiceEncoder
    except ImportError as exc:
        raise AudioprepError(
            f"resemblyzer is not installed ({exc}); run `make setup`, or "
            "`pip install torch==2.13.0 'setuptools<81' resemblyzer`."
        ) from None
    torch.set_num_threads(max(1, threads))
    return VoiceEncoder(device, verbose=False)


def _voiced(path: Path) -> Any:
    """The item decoded to 16 kHz mono, volume-normalised and with long silences cut
    (Resemblyzer's own ``preprocess_wav``, webrtcvad inside)."""
    import numpy as np

    _quiet_imports()
    from resemblyzer import preprocess_wav

    pcm = np.concatenate(list(pcm16_chunks(path, chunk_samples=SR * 60)) or [np.zeros(0, "<i2")])
    return preprocess_wav(pcm.astype(np.float32) / 32768, source_sr=SR)


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
    """Records `speaker_similarity` on every kept item; the others go to rejected.jsonl with their
    score. `--enrol dominant` needs no reference: it takes the voice most items share.

    Example: `audioprep speaker-filter clips/ host/ --reference host1.wav --reference host2.wav`
    """

    name = "speaker-filter"
    version = "1"

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
        threshold: float | None = param(  # None: automatic
            DEFAULT_THRESHOLD,
            help="Keep items at or above this similarity, or auto.",
            parse=_threshold,
            render=_threshold_text,
        )
        enrol: str = param(
            "reference",
            help="reference, or dominant: the voice most items share.",
            choices=("reference", "dominant"),
        )
        min_voiced: float = param(1.0, help="Reject items with less voiced audio (s).")
        report: bool = param(
            False, help="Write speaker_report.png and .json in OUT_DIR.", flags=("--report",)
        )
        device: str = param("cpu", help="cpu or cuda.", choices=("cpu", "cuda"))

    def check(self) -> None:
        p = self.params
        if p.enrol not in ("reference", "dominant"):
            raise UsageError("--enrol must be reference or dominant.")
        if p.enrol == "reference" and not p.references and not p.reference_manifest:
            raise UsageError(
                "give --reference FILE (or a folder), --reference-manifest DIR, "
                "or --enrol dominant."
            )
        if p.reference_manifest and not p.reference_ids:
            raise UsageError("--reference-manifest needs --reference-ids a,b,...")
        if p.threshold is not None and not -1 <= p.threshold <= 1:
            raise UsageError("--threshold is a cosine similarity, from -1 to 1, or auto.")
        if p.device not in ("cpu", "cuda"):
            raise UsageError("--device must be cpu or cuda.")
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
        # one torch thread per worker unless AUDIOPREP_THREADS says otherwise: measured here,
        # one thread embeds faster than two even with a single worker (README, make bench)
        threads = ctx.threads if os.environ.get("AUDIOPREP_THREADS") else 1
        self.encoder = _load_encoder(threads, self.params.device)

    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        wav = _voiced(ctx.input_audio(record))
        voiced = len(wav) / SR
        if voiced < self.params.min_voiced:
            ctx.reject(
                record,
                f"too short to embed reliably: {voiced:.2f} s of voiced audio "
                f"(--min-voiced {self.params.min_voiced:g} s)",
                voiced_seconds=round(voiced, 3),
            )
            return {}
        embedding = self.encoder.embed_utterance(wav)
        return {
            "embedding": [round(float(v), 7) for v in embedding],
            "voiced_seconds": round(voiced, 3),
        }

    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        import numpy as np

        from audioprep.dsp.speakers import (
            BIMODAL_SEPARATION,
            auto_threshold,
            centroid,
            dominant_voice,
            similarity,
        )

        p = self.params
        ids = list(measurements)
        embs = np.array([measurements[i]["embedding"] for i in ids]).reshape(len(ids), -1)
        decision: dict[str, Any] = {"enrol": p.enrol}
        if p.enrol == "dominant":
            if not len(ids):
                raise AudioprepError("--enrol dominant: no item could be embedded.")
            voice, size = dominant_voice(embs, threshold=p.threshold or DEFAULT_THRESHOLD)
            decision["dominant_cluster_size"] = size
        else:
            encoder = _load_encoder(1, p.device)
            refs = []
            for path in self._reference_files():
                try:
                    wav = _voiced(path)
                except ItemError as exc:
                    raise UsageError(f"reference {path}: {exc}") from None
                if len(wav) / SR < self.params.min_voiced:
                    raise UsageError(
                        f"reference {path} has under {self.params.min_voiced:g} s of voiced audio."
                    )
                refs.append(encoder.embed_utterance(wav))
            voice = centroid(np.array(refs))
            decision["references"] = [str(f) for f in self._reference_files()]
        scores = similarity(embs, voice) if len(ids) else np.zeros(0)
        threshold = p.threshold
        if threshold is None:
            valley, separation = auto_threshold(scores)
            bimodal = bool(separation >= BIMODAL_SEPARATION)
            decision["auto"] = {
                "valley": None if np.isnan(valley) else round(valley, 4),
                "separation": round(min(separation, 1e6), 3),
                "bimodal": bimodal,
            }
            if bimodal:
                threshold = valley
                decision["auto"]["note"] = "scores are bimodal: threshold at the valley"
            else:
                threshold = DEFAULT_THRESHOLD
                decision["auto"]["note"] = (
                    f"scores are not clearly bimodal (separation below {BIMODAL_SEPARATION}): "
                    f"used the default threshold {DEFAULT_THRESHOLD}"
                )
        decision["threshold"] = round(float(threshold), 4)
        decision["voice"] = [round(float(v), 7) for v in voice]
        decision["scores"] = {i: round(float(s), 4) for i, s in zip(ids, scores, strict=True)}
        if p.report:
            self._report(scores, decision, ctx.out_dir)
        return decision

    def _report(self, scores: Any, decision: dict[str, Any], out: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        counts, edges = np.histogram(scores, bins=40, range=(-0.2, 1.0))
        fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
        ax.hist(scores, bins=edges, color="#4477aa")
        ax.axvline(
            decision["threshold"], color="#cc3311", label=f"threshold {decision['threshold']}"
        )
        ax.set_xlabel("speaker similarity (cosine)")
        ax.set_ylabel("items")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "speaker_report.png")
        plt.close(fig)
        report = {
            "threshold": decision["threshold"],
            "auto": decision.get("auto"),
            "n": int(len(scores)),
            "kept": int((scores >= decision["threshold"]).sum()),
            "histogram": {"edges": [round(e, 3) for e in edges], "counts": counts.tolist()},
            "quantiles": {
                str(q): round(float(np.quantile(scores, q)), 4)
                for q in (0.05, 0.25, 0.5, 0.75, 0.95)
            }
            if len(scores)
            else {},
        }
        (out / "speaker_report.json").write_text(json.dumps(report, indent=2) + "\n")

    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        score = decision["scores"][record["id"]]
        if score < decision["threshold"]:
            ctx.reject(
                record,
                f"speaker similarity {score:.3f} is below the threshold "
                f"{decision['threshold']:.3f}",
                speaker_similarity=score,
            )
            return []
        src = ctx.input_audio(record)
        return [
            {
                **record,
                "audio": ctx.link(src, f"{record['id']}{src.suffix}"),
                "speaker_similarity": score,
                "voiced_seconds": measurement["voiced_seconds"],
            }
        ]

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"resemblyzer": version("resemblyzer"), "torch": version("torch")}
