"""speakers: corpus-wide speaker ids, with the real Resemblyzer on LibriSpeech voices.

The fast tests check the refusals (in-process) and the clustering arithmetic; the slow ones
run the stage on real voices: 1998 (F) and 2609, 3005 (M) with several clips each, three
one-clip voices of train-clean, one voice named by references that stay out of the corpus.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest

from audioprep.core.stage import DecideContext
from audioprep.dsp.speaker_clusters import assign, cluster_corpus, stopping_point
from audioprep.errors import UsageError
from audioprep.manifests.layout import ManifestDir
from audioprep.run.runner import run_stage
from audioprep.stages.speakers import SPEAKERS_FILE, SpeakersStage
from audioprep.testing import LIBRI, cli, ffmpeg, make_manifest_dir, read_jsonl, require_shared

CLEAN = LIBRI.parent / "librispeech-train-clean-100"


def dctx(out: Path) -> DecideContext:
    """The context the runner gives decide: OUT_DIR with the stage's declared outputs."""
    return DecideContext(out_dir=out, files=ManifestDir(out, SpeakersStage.outputs))


def stage(**kw) -> SpeakersStage:
    return SpeakersStage(SpeakersStage.Params(**kw))


# -- refusals: one sentence, exit 2 -----------------------------------------------------------


def test_reference_folder_without_audio_is_refused(tmp_path):
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "notes.txt").write_text("no audio here")
    with pytest.raises(UsageError, match="holds no audio file"):
        stage(references=(f"host={tmp_path / 'refs'}",)).check()


def test_two_references_with_one_name_are_refused(tmp_path):
    a = tmp_path / "a.wav"
    a.write_bytes(b"")
    with pytest.raises(UsageError, match="given twice"):
        stage(references=(f"host={a}", f"host={a}")).check()


@pytest.mark.parametrize("text", ["host", "=x.wav", "host="])
def test_reference_without_name_or_path_is_refused(text):
    with pytest.raises(UsageError, match="NAME=PATH"):
        stage(references=(text,)).check()


def test_against_another_encoder_is_refused_exit_2(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / SPEAKERS_FILE).write_text(
        json.dumps({"encoder": {"engine": "resemblyzer", "resemblyzer": "0.0.1"}, "speakers": []})
    )
    with pytest.raises(UsageError, match="another speaker encoder"):
        stage(against=str(old)).check()
    src = make_manifest_dir(tmp_path / "in", [])
    proc = cli("speakers", src, tmp_path / "out", "--against", old, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "another speaker encoder" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_against_a_folder_without_speakers_json_is_refused(tmp_path):
    with pytest.raises(UsageError, match="is it a `speakers` output"):
        stage(against=str(tmp_path)).check()


# -- the clustering arithmetic ----------------------------------------------------------------


def _voices(rng, n_voices, per_voice, dim=64, noise=0.35):
    centres = rng.normal(size=(n_voices, dim))
    x = np.repeat(centres, per_voice, axis=0) + rng.normal(
        scale=noise, size=(n_voices * per_voice, dim)
    )
    return x, np.repeat(np.arange(n_voices), per_voice)


def test_sample_then_assign_equals_the_truth_on_separated_voices(tmp_path):
    rng = np.random.default_rng(3)
    x, truth = _voices(rng, 8, 300)
    mm = np.lib.format.open_memmap(tmp_path / "e.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    labels, cents, info = cluster_corpus(mm, stop_similarity=0.5, sample=500, block=97)
    assert info["speakers"] == 8 and info["sampled"] == 500
    for v in range(8):  # every voice wholly in one cluster, and no cluster shared
        assert len(set(labels[truth == v].tolist())) == 1
    assert len({labels[truth == v][0] for v in range(8)}) == 8


def test_max_speakers_caps_the_number_of_voices():
    rng = np.random.default_rng(4)
    x, _ = _voices(rng, 6, 10)
    labels, cents, info = cluster_corpus(x, stop_similarity=0.5, max_speakers=3)
    assert info["speakers"] == 3 == len(set(labels.tolist()))


def test_assign_margin_is_the_gap_to_the_second_centroid():
    c = np.eye(3)
    label, sim, margin = assign(np.array([[1.0, 0.5, 0.0]]), c)
    assert label.tolist() == [0]
    np.testing.assert_allclose(sim, [1 / np.sqrt(1.25)])
    np.testing.assert_allclose(margin, [0.5 / np.sqrt(1.25)])


def test_stopping_point_falls_in_the_widest_gap_of_the_band():
    same = np.linspace(0.82, 0.95, 30)
    other = np.linspace(0.40, 0.69, 60)
    stop, how = stopping_point(1 - np.concatenate([same, other]))
    assert how == "gap" and 0.69 < stop < 0.82


def test_one_embedding_is_one_voice():
    labels, cents, info = cluster_corpus(np.ones((1, 8)))
    assert labels.tolist() == [0] and info["speakers"] == 1


# -- real voices ------------------------------------------------------------------------------


def _render(src: Path, dst: Path, how: int) -> Path:
    """A clip through one of three codecs: clean wav, mp3 at 32 kb/s, AAC at 48 kb/s.
    (Noise beds and phone band lower Resemblyzer's same-voice similarity below what separates
    voices: measured by scripts/eval_speakers_ids.py, on the stage page.)"""
    ext, opts = [("wav", []), ("mp3", ["-b:a", "32k"]), ("m4a", ["-c:a", "aac", "-b:a", "48k"])][
        how
    ]
    out = dst.with_suffix(f".{ext}")
    ffmpeg("-i", src, "-ac", "1", *opts, out)
    return out


def _corpus(tmp_path: Path, voices: dict[str, int], singles: int = 3) -> tuple[Path, dict]:
    """A manifest of ``voices`` (speaker -> clips, from utterance 3 on: 0-2 are references)
    and ``singles`` one-clip train-clean voices; returns it and id -> true speaker."""
    require_shared()
    files, truth = {}, {}
    (tmp_path / "clips").mkdir()
    for spk, n in voices.items():
        for i, f in enumerate(sorted((LIBRI / spk).glob("*.flac"))[3 : 3 + n]):
            files[f.stem] = _render(f, tmp_path / "clips" / f.stem, i % 3)
            truth[f.stem] = spk
    for i, f in enumerate(sorted(CLEAN.glob("*.flac"))[:singles]):
        files[f.stem] = _render(f, tmp_path / "clips" / f.stem, i % 3)
        truth[f.stem] = f.name.split("-")[0]
    return make_manifest_dir(tmp_path / "in", files), truth


@pytest.mark.slow
def test_voices_get_one_id_each_ordered_by_hours_and_the_reference_names_one(tmp_path):
    src, truth = _corpus(tmp_path, {"1998": 7, "2609": 5, "3005": 4})
    refs = tmp_path / "refs"
    refs.mkdir()
    for f in sorted((LIBRI / "2609").glob("*.flac"))[:3]:
        (refs / f.name).symlink_to(f)
    out = tmp_path / "out"
    run_stage(stage(references=(f"reader={refs}",)), out, in_dir=src, jobs=1, progress=False)
    rows = read_jsonl(out / "manifest.jsonl")
    assert len(rows) == len(truth)
    by_voice = collections.defaultdict(collections.Counter)
    for r in rows:
        by_voice[truth[r["id"]]][r["speaker"]] += 1
        assert 0 < r["speaker_confidence"]["similarity"] <= 1
    for spk in ("1998", "2609", "3005"):  # each voice's clips in one cluster
        assert len(by_voice[spk]) == 1, by_voice
    main = {spk: by_voice[spk].most_common(1)[0][0] for spk in ("1998", "2609", "3005")}
    assert len(set(main.values())) == 3
    named = {r["speaker_name"] for r in rows if truth[r["id"]] == "2609"}
    assert named == {"reader"}
    assert not any(r.get("speaker_name") for r in rows if truth[r["id"]] != "2609")
    summary = json.loads((out / SPEAKERS_FILE).read_text())
    hours = [s["hours"] for s in summary["speakers"]]
    assert hours == sorted(hours, reverse=True) and summary["speakers"][0]["id"] == "spk00"
    assert summary["references"]["reader"]["speaker"] == main["2609"]
    assert (out / "embeddings.npy").exists()
    html = SpeakersStage.report_section(out)
    assert "<h2>Speakers</h2>" in html and "data-matrix" in html
    assert html.count("<audio") >= 3 * 3  # three players for each of the three voices
    # a second run --against the first, on the clips in a new order: the same ids
    src2 = make_manifest_dir(
        tmp_path / "in2",
        {
            k: src / "audio" / Path(r["audio"]).name
            for k, r in reversed([(r["id"], r) for r in rows])
        },
    )
    out2 = tmp_path / "out2"
    run_stage(stage(against=str(out)), out2, in_dir=src2, jobs=1, progress=False)
    again = {r["id"]: r["speaker"] for r in read_jsonl(out2 / "manifest.jsonl")}
    assert all(again[r["id"]] == r["speaker"] for r in rows if truth[r["id"]] in main)


@pytest.mark.slow
def test_one_voice_one_clip_and_clips_too_short(tmp_path):
    require_shared()
    one = sorted((LIBRI / "3005").glob("*.flac"))[:4]
    short = tmp_path / "short.wav"
    ffmpeg("-i", one[0], "-t", "0.5", short)
    src = make_manifest_dir(tmp_path / "in", {f.stem: f for f in one} | {"short": short})
    out = tmp_path / "out"
    run_stage(stage(min_seconds=20.0), out, in_dir=src, jobs=1, progress=False)
    rows = read_jsonl(out / "manifest.jsonl")
    assert {r["speaker"] for r in rows} == {"spk00"} and len(rows) == 4  # one voice
    (rejected,) = read_jsonl(out / "rejected.jsonl")
    assert rejected["id"] == "short" and "too short to embed" in rejected["reason"]
    # one clip: one voice, with less speech than --min-seconds: unknown, or rejected
    src1 = make_manifest_dir(tmp_path / "in1", {"only": one[1]})
    run_stage(stage(min_seconds=60.0), tmp_path / "o1", in_dir=src1, jobs=1, progress=False)
    (row,) = read_jsonl(tmp_path / "o1" / "manifest.jsonl")
    assert row["speaker"] == "unknown"
    run_stage(
        stage(min_seconds=60.0, drop_unknown=True),
        tmp_path / "o2",
        in_dir=src1,
        jobs=1,
        progress=False,
    )
    assert read_jsonl(tmp_path / "o2" / "manifest.jsonl") == []
    (rejected,) = read_jsonl(tmp_path / "o2" / "rejected.jsonl")
    assert "unknown voice" in rejected["reason"]


# -- the decision on synthetic embeddings (no encoder needed without references) -------------


def _measurements(rng, voices: dict[str, tuple[np.ndarray, int, float]]) -> dict[str, dict]:
    """id -> measurement, like the workers write: base64 float16 embeddings."""
    from audioprep.stages.speakers import _pack

    out = {}
    for name, (centre, n, seconds) in voices.items():
        for i in range(n):
            e = centre + rng.normal(scale=0.02, size=centre.shape)
            out[f"{name}-{i}"] = {
                "embedding": _pack(e / np.linalg.norm(e)),
                "voiced_seconds": seconds,
            }
    return out


def _finish(st, measurements, decision, tmp_path):
    from audioprep.core.stage import ItemContext

    rows = {}
    for item_id, m in measurements.items():
        ctx = ItemContext(stage_name="speakers", in_dir=tmp_path, out_dir=tmp_path)
        ctx.input_audio = lambda record: tmp_path / "x.wav"  # noqa: ARG005 - no audio here
        ctx.link = lambda src, name: f"audio/{name}"  # noqa: ARG005
        out = st.finish({"id": item_id, "audio": "audio/x.wav"}, m, decision, ctx)
        rows[item_id] = out[0] if out else {"rejected": ctx.rejected}
    return rows


def test_ids_by_hours_unknown_and_against_keep_ids_and_give_new_ones(tmp_path):

    rng = np.random.default_rng(7)
    base = np.abs(rng.normal(size=256))
    a, b, c, d = (base + 1.5 * rng.normal(size=256) for _ in range(4))
    first = _measurements(rng, {"a": (a, 3, 5.0), "b": (b, 6, 5.0), "c": (c, 1, 2.0)})
    run1 = tmp_path / "run1"
    run1.mkdir()
    st = stage(min_seconds=4.0)
    decision = st.decide(first, dctx(run1))
    rows = _finish(st, first, decision, tmp_path)
    assert {rows[f"b-{i}"]["speaker"] for i in range(6)} == {"spk00"}  # most hours
    assert {rows[f"a-{i}"]["speaker"] for i in range(3)} == {"spk01"}
    assert rows["c-0"]["speaker"] == "unknown"  # 2 s of speech, under --min-seconds 4
    conf = rows["a-0"]["speaker_confidence"]
    assert conf["similarity"] > 0.9 and conf["margin"] > 0.1
    summary = json.loads((run1 / SPEAKERS_FILE).read_text())
    assert [s["id"] for s in summary["speakers"]] == ["spk00", "spk01", "unknown"]
    assert summary["speakers"][0]["clips"] == 6 and summary["speakers"][0]["nearest"]
    assert summary["similarity_matrix"]["speakers"] == ["spk00", "spk01"]
    # episode two: a now speaks most, b a little, d is new
    second = _measurements(rng, {"a": (a, 8, 5.0), "b": (b, 1, 5.0), "d": (d, 2, 5.0)})
    run2 = tmp_path / "run2"
    run2.mkdir()
    st2 = stage(against=str(run1))
    decision2 = st2.decide(second, dctx(run2))
    rows2 = _finish(st2, second, decision2, tmp_path)
    assert rows2["a-0"]["speaker"] == "spk01" and rows2["b-0"]["speaker"] == "spk00"
    assert {rows2["d-0"]["speaker"], rows2["d-1"]["speaker"]} == {"spk02"}  # new, next free id
    # --drop-unknown rejects the unknown voice's clips with the reason
    st3 = stage(min_seconds=4.0, drop_unknown=True)
    run3 = tmp_path / "run3"
    run3.mkdir()
    rows3 = _finish(
        st3,
        first,
        st3.decide(first, dctx(run3)),
        tmp_path,
    )
    assert "unknown voice" in rows3["c-0"]["rejected"][0]["reason"]
