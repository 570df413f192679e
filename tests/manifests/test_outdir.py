"""One owner of OUT_DIR: declared side files are cleared by --overwrite (links removed, never
followed), written atomically through the contexts, and pruned to what the run names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from audioprep.core.stage import Output
from audioprep.manifests.layout import ManifestDir
from audioprep.run.runner import run_stage
from audioprep.testing import arrays_manifest_dir, read_jsonl

SR = 16000


def noise_dir(root: Path, n: int, *, seconds: float = 0.3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    files = {
        f"u{i}": ((0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)
        for i in range(n)
    }
    return arrays_manifest_dir(root, files)


def features(in_dir: Path, out: Path, **params) -> list[dict]:
    pytest.importorskip("librosa")
    from audioprep.stages.features import FeaturesStage

    stage = FeaturesStage(FeaturesStage.Params(kind="logspec", **params))
    summary = run_stage(stage, out, in_dir=in_dir, jobs=1, overwrite=True, progress=False)
    assert summary.items_failed == 0
    return read_jsonl(out / "manifest.jsonl")


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# -- ManifestDir --------------------------------------------------------------------------------
def test_only_declared_outputs_are_written_and_writes_replace_links(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").symlink_to(target)
    d = ManifestDir(out, [Output("report.json", "r"), Output("arrays", "a", folder=True)])
    d.write_text("report.json", "{}")
    assert target.read_text() == "keep me" and not (out / "report.json").is_symlink()
    with pytest.raises(ValueError, match="not an output this stage declares"):
        d.write_text("other.json", "{}")
    with pytest.raises(ValueError, match="not an output"):
        d.write_text("arrays/../x", "{}")
    assert not (out / ".tmp").exists() or not any((out / ".tmp").iterdir())


def test_prune_keeps_only_named_files_of_pruned_folders(tmp_path: Path) -> None:
    d = ManifestDir(tmp_path, [Output("arrays", "a", folder=True, pruned=True)])
    folder = d.folder("arrays/.parts")
    for name in ("a.npy", "b.npy"):
        (tmp_path / "arrays" / name).write_bytes(b"x")
    (folder / "c.npy").write_bytes(b"x")
    d.write_text("arrays/index.jsonl", "")
    d.prune({"arrays/a.npy"})
    assert files_under(tmp_path / "arrays") == ["a.npy", "index.jsonl"]
    assert not (tmp_path / "arrays" / ".parts").exists()


# -- --overwrite clears every side file -----------------------------------------------------------
def test_features_overwrite_keeps_only_the_new_runs_arrays(tmp_path: Path) -> None:
    ten, three = noise_dir(tmp_path / "ten", 10), noise_dir(tmp_path / "three", 3, seed=1)
    out = tmp_path / "out"
    features(ten, out)
    assert len(list((out / "arrays").glob("*.npy"))) == 10
    features(three, out)
    assert files_under(out / "arrays") == ["u0.npy", "u1.npy", "u2.npy"]
    # .npy files, then shards: no .npy is left beside the shards
    records = features(three, out, shard_size=2)
    assert files_under(out / "arrays") == ["index.jsonl", "shard-00000.npz", "shard-00001.npz"]
    assert [r["features"]["shard"] for r in records] == [
        "arrays/shard-00000.npz",
        "arrays/shard-00000.npz",
        "arrays/shard-00001.npz",
    ]


def test_a_damaged_shard_index_is_cleared_or_ignored(tmp_path: Path) -> None:
    in_dir = noise_dir(tmp_path / "in", 3)
    out = tmp_path / "out"
    features(in_dir, out, shard_size=2)
    (out / "arrays" / "index.jsonl").write_text('{"id": "u0", "sha\n[1, 2]\n"text"\n')
    features(in_dir, out, shard_size=2)  # --overwrite: cleared
    assert len(read_jsonl(out / "arrays" / "index.jsonl")) == 3
    (out / "arrays" / "index.jsonl").write_text("\x00\x01 not json\n")
    from audioprep.stages.features import FeaturesStage

    stage = FeaturesStage(FeaturesStage.Params(kind="logspec", shard_size=2))
    again = run_stage(stage, out, in_dir=in_dir, jobs=1, progress=False)  # a resume
    assert again.items_resumed == 3 and len(read_jsonl(out / "arrays" / "index.jsonl")) == 3


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_overwrite_removes_a_symlinked_arrays_folder_and_never_writes_through_it(
    tmp_path: Path, kind: str
) -> None:
    in_dir = noise_dir(tmp_path / "in", 2)
    out = tmp_path / "out"
    features(in_dir, out)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.npy").write_bytes(b"precious")
    os.rename(out / "arrays", tmp_path / "old-arrays")
    (out / "arrays").symlink_to(victim if kind == "folder" else victim / "precious.npy")
    features(in_dir, out)
    assert files_under(victim) == ["precious.npy"]
    assert (victim / "precious.npy").read_bytes() == b"precious"
    assert not (out / "arrays").is_symlink() and files_under(out / "arrays") == [
        "u0.npy",
        "u1.npy",
    ]


def _dedupe(in_dir: Path, out: Path, **kw) -> None:
    from audioprep.stages.dedupe import DedupeStage

    stage = DedupeStage(DedupeStage.Params())
    summary = run_stage(stage, out, in_dir=in_dir, jobs=1, progress=False, **kw)
    assert summary.items_failed == 0


def test_dedupe_overwrite_keeps_no_old_fingerprints_and_writes_through_no_link(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    _dedupe(noise_dir(tmp_path / "four", 4, seconds=1.0), out)
    assert len(list((out / "fingerprints").iterdir())) == 4
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "index.npz").write_bytes(b"old index")
    (out / "dedupe_index.npz").unlink()
    (out / "dedupe_index.npz").symlink_to(victim / "index.npz")
    os.rename(out / "fingerprints", tmp_path / "old-fp")
    (out / "fingerprints").symlink_to(victim)
    _dedupe(noise_dir(tmp_path / "two", 2, seconds=1.0, seed=3), out, overwrite=True)
    assert files_under(victim) == ["index.npz"] and (victim / "index.npz").read_bytes() == (
        b"old index"
    )
    assert not (out / "fingerprints").is_symlink() and not (out / "dedupe_index.npz").is_symlink()
    assert files_under(out / "fingerprints") == ["u0.npz", "u1.npz"]
    with np.load(out / "dedupe_index.npz") as index:
        assert list(index["ids"]) == ["u0", "u1"]


def test_a_symlinked_side_file_is_replaced_even_without_overwrite(tmp_path: Path) -> None:
    """A resumed run (no --overwrite) replaces a declared output that is a link, too."""
    in_dir = noise_dir(tmp_path / "in", 2, seconds=1.0)
    out = tmp_path / "out"
    _dedupe(in_dir, out)
    victim = tmp_path / "victim.npz"
    victim.write_bytes(b"old")
    (out / "dedupe_index.npz").unlink()
    (out / "dedupe_index.npz").symlink_to(victim)
    _dedupe(in_dir, out)
    assert victim.read_bytes() == b"old" and not (out / "dedupe_index.npz").is_symlink()


@pytest.mark.slow
def test_tone_clusters_through_a_link_are_not_written_through(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from audioprep.stages.tone import CLUSTERS_FILE, ToneStage

    in_dir = noise_dir(tmp_path / "in", 3, seconds=0.5)
    out = tmp_path / "out"
    stage = ToneStage(ToneStage.Params(clusters=2))
    run_stage(stage, out, in_dir=in_dir, jobs=1, progress=False)
    victim = tmp_path / "victim.json"
    victim.write_text("mine")
    (out / CLUSTERS_FILE).unlink()
    (out / CLUSTERS_FILE).symlink_to(victim)
    run_stage(stage, out, in_dir=in_dir, jobs=1, overwrite=True, progress=False)
    assert victim.read_text() == "mine"
    assert json.loads((out / CLUSTERS_FILE).read_text())["clusters"] == 2


@pytest.mark.slow
def test_speaker_report_is_written_through_the_context_never_through_a_link(
    tmp_path: Path,
) -> None:
    from audioprep.stages.ingest import IngestStage
    from audioprep.stages.speaker_filter import SpeakerFilterStage
    from audioprep.testing import LIBRI, require_shared

    require_shared()
    files = (
        sorted((LIBRI / "2033").glob("*.flac"))[:4] + sorted((LIBRI / "1688").glob("*.flac"))[:1]
    )
    raw = tmp_path / "raw"
    run_stage(
        IngestStage(IngestStage.Params(sources=tuple(map(str, files)))), raw, jobs=1, progress=False
    )
    stage = SpeakerFilterStage(
        SpeakerFilterStage.Params(enrol="dominant", report=True, threshold=0.5)
    )
    out = tmp_path / "out"
    run_stage(stage, out, in_dir=raw, jobs=1, progress=False)
    report = json.loads((out / "speaker_report.json").read_text())
    assert report["n"] == 5 and (out / "speaker_report.png").read_bytes()[:4] == b"\x89PNG"
    victim = tmp_path / "victim.json"
    victim.write_text("mine")
    (out / "speaker_report.json").unlink()
    (out / "speaker_report.json").symlink_to(victim)
    run_stage(stage, out, in_dir=raw, jobs=1, overwrite=True, progress=False)
    assert victim.read_text() == "mine" and not (out / "speaker_report.json").is_symlink()
    quiet = SpeakerFilterStage(SpeakerFilterStage.Params(enrol="dominant", threshold=0.5))
    run_stage(quiet, out, in_dir=raw, jobs=1, overwrite=True, progress=False)
    assert not (out / "speaker_report.json").exists()  # --overwrite cleared the old report


def test_overwrite_removes_a_symlinked_audio_folder_and_executor_logs(tmp_path: Path) -> None:
    from audioprep.testing import ToyStage

    in_dir = noise_dir(tmp_path / "in", 2)
    out = tmp_path / "out"
    run_stage(ToyStage(), out, in_dir=in_dir, jobs=1, progress=False)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.wav").write_bytes(b"x")
    os.rename(out / "audio", tmp_path / "old-audio")
    (out / "audio").symlink_to(victim)
    (out / ".ray-items.jsonl").write_text('{"id": "old"}\n')
    run_stage(
        ToyStage(ToyStage.Params(tag="b")),
        out,
        in_dir=in_dir,
        jobs=1,
        overwrite=True,
        progress=False,
    )
    assert files_under(victim) == ["keep.wav"] and not (out / "audio").is_symlink()
    assert files_under(out / "audio") == ["u0.wav", "u1.wav"]
    assert not (out / ".ray-items.jsonl").exists()
