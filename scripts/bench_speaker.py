"""speaker-filter beside the encoder's own loop, on the same clips, in one run (make bench-speaker).

Times, in this one process, one torch thread each, for each engine (``--engine``: campplus and
resemblyzer by default):

1. the encoder alone: Resemblyzer's ``preprocess_wav(path)`` + ``VoiceEncoder.embed_utterance``,
   or CAM++'s: the file read at 16 kHz, Kaldi fbank, mean normalisation, one forward pass, for
   every clip (the model loaded once, before the clock starts);
2. ``speaker-filter`` through the runner (``-j 1``, three references, defaults): decoding, the
   voiced map, the embedding pass, turn analysis, clustering, the decision and writing the
   clips; the encoder is loaded in the worker's set-up, inside the clock;
3. ``speaker-filter`` again with another ``--threshold`` and ``--overwrite``: the embeddings come
   from OUT_DIR's cache.

Prints the seconds and the ratio 2/1 (issue 24: at most 1.3).

    python scripts/bench_speaker.py                 # the 60 LibriSpeech test-other utterances
    python scripts/bench_speaker.py --in DIR        # the clips of a manifest directory
    python scripts/bench_speaker.py --profile FILE  # and a cProfile of run 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _alone(name: str, clips: list[Path]) -> tuple[float, float]:
    """The encoder's own loop over ``clips``: (seconds taken, seconds of audio embedded)."""
    if name == "resemblyzer":
        from audioprep.engines.speaker.resemblyzer import load_encoder, quiet_imports

        quiet_imports()
        from resemblyzer import preprocess_wav

        encoder = load_encoder(1)
        t0 = time.perf_counter()
        seconds = 0.0
        for path in clips:
            wav = preprocess_wav(path)
            seconds += len(wav) / 16000
            if len(wav) >= 16000:
                encoder.embed_utterance(wav)
        return time.perf_counter() - t0, seconds
    import soundfile as sf
    import torch

    from audioprep.dsp.fbank import fbank
    from audioprep.engines import base as engines
    from audioprep.engines.models import model_dir

    model = engines.load("speaker", name, engines.Settings(model_dir=model_dir(None))).model
    t0 = time.perf_counter()
    seconds = 0.0
    for path in clips:
        wav = sf.read(str(path), dtype="float32")[0]
        seconds += len(wav) / 16000
        feats = fbank(wav)
        with torch.no_grad():
            model(torch.from_numpy(feats - feats.mean(axis=0))[None])
    return time.perf_counter() - t0, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--in", dest="in_dir", default=None, help="a manifest directory of clips")
    ap.add_argument("--reference", action="append", default=None)
    ap.add_argument("--profile", default=None, help="write a cProfile of speaker-filter here")
    ap.add_argument("--engine", action="append", default=None, help="campplus, resemblyzer")
    args = ap.parse_args(argv)
    os.environ.setdefault("AUDIOPREP_SHARED", str(REPO.parent / "shared"))

    import dataclasses

    import torch

    from audioprep.manifests.records import read_manifest, resolve_audio
    from audioprep.run.runner import run_stage
    from audioprep.stages.speaker_filter import SpeakerFilterStage
    from audioprep.testing import LIBRI, make_manifest_dir

    tmp = Path(tempfile.mkdtemp(prefix="bench-speaker-"))
    speakers = sorted(p.name for p in LIBRI.iterdir() if p.is_dir())
    if args.in_dir:
        corpus = Path(args.in_dir)
        refs = args.reference or [str(p) for p in sorted((LIBRI / "1998").glob("*.flac"))[:3]]
    else:
        files = [f for s in speakers for f in sorted((LIBRI / s).glob("*.flac"))]
        corpus = make_manifest_dir(tmp / "in", files)
        refs = args.reference or [str(f) for f in files[:3]]
    clips = [resolve_audio(corpus, r["audio"]) for r in read_manifest(corpus)]
    torch.set_num_threads(1)

    rows = []
    for name in args.engine or ["campplus", "resemblyzer"]:
        alone, seconds = _alone(name, clips)
        # 2. speaker-filter, the whole stage
        params = SpeakerFilterStage.Params(references=tuple(refs), engine=name)
        stage = SpeakerFilterStage(params)
        prof = None
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        out = tmp / f"out-{name}"
        t0 = time.perf_counter()
        run_stage(stage, out, in_dir=corpus, jobs=1, progress=False)
        ours = time.perf_counter() - t0
        if prof is not None:
            prof.disable()
            prof.dump_stats(f"{args.profile}.{name}")
        # 3. again with another threshold: from the cache
        params = dataclasses.replace(params, threshold=0.7)
        t0 = time.perf_counter()
        run_stage(
            SpeakerFilterStage(params), out, in_dir=corpus, jobs=1, progress=False, overwrite=True
        )
        again = time.perf_counter() - t0
        kept = sum(1 for _ in read_manifest(out))
        rows.append((name, alone, ours, again, kept))
    print(f"{len(clips)} clips, {seconds:.0f} s of voiced audio, one torch thread, -j 1")
    print("| engine | its own loop (s) | speaker-filter (s) | ratio | again, cached (s) |")
    print("| --- | --- | --- | --- | --- |")
    for name, alone, ours, again, _ in rows:
        print(f"| {name} | {alone:.1f} | {ours:.1f} | {ours / alone:.2f} | {again:.1f} |")
    print(json.dumps({"clips": len(clips), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
