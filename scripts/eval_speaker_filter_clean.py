"""speaker-filter on clean held-out speakers: each target against many impostors.

    python scripts/eval_speaker_filter_clean.py [--impostors 70]

The corpus: the six LibriSpeech test-other voices (1688, 1998, 2033, 2414, 2609, 3005; their
utterances after the first three, 7 each) and ``--impostors`` one-clip voices of train-clean-100
(the odd-numbered half, which the impostor bank never holds), all clean. Each of the six voices
in turn is the target, enrolled from its first three utterances (never in the corpus), with the
stage's defaults; the corpus is embedded once. Prints each target's precision and recall (of
its 7 clips) and their minimum. Needs ../shared (AUDIOPREP_SHARED).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from audioprep.core.stage import DecideContext, ItemContext, WorkerContext  # noqa: E402
from audioprep.manifests.records import read_manifest  # noqa: E402
from audioprep.stages.speaker_filter import SpeakerFilterStage  # noqa: E402
from audioprep.testing import DATA, LIBRI, make_manifest_dir  # noqa: E402

TARGETS = ("1688", "1998", "2033", "2414", "2609", "3005")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impostors", type=int, default=70)
    ap.add_argument("--engine", default=None, help="the speaker encoder (default: the stage's)")
    args = ap.parse_args()
    clean = sorted((DATA / "librispeech-train-clean-100").glob("*.flac"))
    impostors = [f for i, f in enumerate(clean) if i % 2 == 1][: args.impostors]
    utts = {s: sorted((LIBRI / s).glob("*.flac")) for s in TARGETS}
    extra = {"engine": args.engine} if args.engine else {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_manifest_dir(
            Path(tmp) / "raw", [u for s in TARGETS for u in utts[s][3:]] + impostors
        )
        records = list(read_manifest(corpus))
        stage = SpeakerFilterStage(SpeakerFilterStage.Params(references=("x",), **extra))
        stage.setup(WorkerContext())
        ctxs = [
            ItemContext(stage_name=stage.name, in_dir=corpus, out_dir=Path(tmp)) for _ in records
        ]
        measured = stage.measure_batch(records, ctxs)
        ms = {r["id"]: m for r, m in zip(records, measured, strict=True)}
        rows = {}
        for target in TARGETS:
            refs = tuple(str(u) for u in utts[target][:3])
            st = SpeakerFilterStage(SpeakerFilterStage.Params(references=refs, **extra))
            decision = st.decide(ms, DecideContext(out_dir=Path(tmp)))
            kept = {i for i, k in decision["keep"].items() if k}
            truth = {r["id"] for r in records if r["id"].startswith(target + "-")}
            rows[target] = {
                "precision": round(len(kept & truth) / max(1, len(kept)), 3),
                "recall": round(len(kept & truth) / len(truth), 3),
                "threshold": decision["threshold"],
            }
    print(f"{len(records)} clips: 6 targets x 7, {len(impostors)} one-clip impostors")
    print("| target | precision | recall | threshold |\n| --- | --- | --- | --- |")
    for t, r in rows.items():
        print(f"| {t} | {r['precision']:.3f} | {r['recall']:.3f} | {r['threshold']} |")
    low = {k: min(r[k] for r in rows.values()) for k in ("precision", "recall")}
    print(f"| **minimum** | {low['precision']:.3f} | {low['recall']:.3f} | |")
    print(json.dumps(low))
    return 0


if __name__ == "__main__":
    sys.exit(main())
