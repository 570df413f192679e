"""The engine registry: every engine has the one shape, its family's protocol, and is found
without importing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audioprep.engines import base
from audioprep.engines.base import Engine, Settings, Weights
from audioprep.errors import UsageError

#: The engines that exist today, by family (others may be added: the checks are "at least").
BUILT_IN = {
    "segment": {"ina", "silero"},
    "asr": {"whisper", "vosk"},
    "separate": {"spleeter"},
    "speaker": {"resemblyzer", "campplus"},
    "quality": {"dnsmos"},
    "fingerprint": {"landmarks"},
    "tone": {"tone"},
}
#: What each family's protocol asks of an engine (engines/<family>/base.py).
PROTOCOL = {
    "segment": ("segment", "segment_many"),
    "asr": ("transcribe_many", "resolve_model"),
    "separate": ("separate",),
    "speaker": ("embed_many",),
    "quality": ("stream", "score"),
    "fingerprint": ("fingerprint", "fingerprint_file"),
    "tone": ("predict_proba",),
    "enhance": ("enhance", "stream"),
}


def test_every_engine_of_today_is_registered() -> None:
    for family, expected in BUILT_IN.items():
        assert expected <= set(base.names(family)), family
    assert set(base.families()) >= set(BUILT_IN)


@pytest.mark.parametrize("entry", base.available(), ids=lambda e: f"{e.family}/{e.name}")
def test_every_engine_has_the_one_shape(entry: base.EngineInfo) -> None:
    cls = base.engine_class(entry.family, entry.name)
    assert issubclass(cls, Engine)
    assert (cls.name, cls.family) == (entry.name, entry.family)
    assert entry.module == f"audioprep.engines.{entry.family}.{Path(entry.module).suffix[1:]}"
    assert cls.devices and set(cls.devices) <= {"cpu", "cuda"}, cls.devices
    assert cls.runtime and cls.summary
    # what the registry read from the source, without importing, is what the class says
    assert entry.attr("devices", cls.devices) == cls.devices
    assert entry.attr("runtime", cls.runtime) == cls.runtime
    for method in ("from_settings", "close", "versions", "weights", "check", "used_options"):
        assert callable(getattr(cls, method))
    for method in PROTOCOL[entry.family]:
        assert callable(getattr(cls, method, None)), f"{cls.__name__} lacks {method}"
    versions = cls.versions()
    assert isinstance(versions, dict) and all(isinstance(v, str) for v in versions.values())
    for w in cls.weights():
        assert isinstance(w, Weights) and w.files and w.origin


def test_family_bases_define_no_engine() -> None:
    """A family's base class has a family but no name: the registry does not list it."""
    names = {e.cls for e in base.available()}
    assert not names & {
        "SegmenterEngine",
        "RecogniserEngine",
        "SeparatorEngine",
        "EmbedderEngine",
        "ScorerEngine",
        "FingerprinterEngine",
        "EnhancerEngine",
    }


def test_an_unknown_engine_is_one_sentence_naming_the_choices() -> None:
    with pytest.raises(UsageError, match=r"unknown segment engine 'nope' \(engines: .*ina"):
        base.load("segment", "nope")


def test_default_check_refuses_a_device_the_engine_lacks() -> None:
    silero = base.engine_class("segment", "silero")
    with pytest.raises(UsageError, match="silero runs on the CPU"):
        silero.check(Settings(device="cuda"))
    base.engine_class("quality", "dnsmos").check(Settings(device="cpu"))


def test_used_options_resolve_what_the_engine_reads(tmp_path: Path) -> None:
    ina = base.engine_class("segment", "ina")
    settings = Settings(
        model_dir=tmp_path, options={"vad_engine": "sm", "detect_gender": None, "beam": 3}
    )
    assert ina.used_options(settings) == {
        "vad_engine": "sm",
        "detect_gender": False,  # no gender model in tmp_path
        "model_dir": tmp_path,
    }
    (tmp_path / "inaSpeechSegmenter").mkdir()
    (tmp_path / "inaSpeechSegmenter" / "keras_male_female_cnn.hdf5").write_bytes(b"x")
    assert ina.used_options(settings)["detect_gender"] is True
    assert base.engine_class("segment", "silero").used_options(settings) == {}


def test_weights_are_present_only_when_every_file_has_bytes(tmp_path: Path) -> None:
    w = Weights("whisper/tiny.en", ("model.bin", "config.json"), "`make setup`")
    folder = tmp_path / "whisper" / "tiny.en"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"x")
    assert not w.present(tmp_path)
    (folder / "config.json").write_bytes(b"")
    assert not w.present(tmp_path)
    (folder / "config.json").write_bytes(b"{}")
    assert w.present(tmp_path)
    assert "whisper/tiny.en" in w.missing_message(tmp_path)


def test_whisper_lists_the_models_make_setup_installs() -> None:
    weights = {w.path: w for w in base.engine_class("asr", "whisper").weights()}
    assert set(weights) >= {"whisper/base", "whisper/tiny.en"}
    for w in weights.values():
        assert set(w.files) == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
        assert "make setup" in w.origin


def test_the_registry_imports_no_engine() -> None:
    """Listing engines (what --engine choices and --help need) imports no engine module and
    no numerical library: the scan reads the source with ast."""
    code = (
        "import sys\n"
        "from audioprep.engines import base\n"
        "assert base.names('segment')[:2] == ['ina', 'silero']\n"
        "assert base.info('separate', 'spleeter').attr('models') == "
        "('2stems', '4stems', '5stems')\n"
        "bad = [m for m in sys.modules if m.startswith(('numpy', 'audioprep.engines.segment.'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_engine_runtime_is_one_doctor_can_probe() -> None:
    """A runtime doctor has no probe for is imported by name: that name must be a module
    (DFN3 once declared "libdf", and doctor said it was not installed where it runs)."""
    import importlib.util

    from audioprep.cli.doctor import runtimes

    known = set(runtimes(sys.executable)) | {"numpy"}
    for entry in base.available():
        runtime = base.engine_class(entry.family, entry.name).runtime
        if runtime not in known:
            assert importlib.util.find_spec(runtime) is not None, (entry, runtime)
