"""One model directory for the whole toolkit: where every stage looks for weights first.

Resolution order: the ``--model-dir`` option, then ``AUDIOPREP_MODEL_DIR``, then
``~/.cache/audioprep/models``. The layout is one folder per engine::

    MODEL_DIR/inaSpeechSegmenter/keras_speech_music_noise_cnn.hdf5
    MODEL_DIR/inaSpeechSegmenter/keras_speech_music_cnn.hdf5
    MODEL_DIR/inaSpeechSegmenter/keras_male_female_cnn.hdf5
    MODEL_DIR/spleeter/2stems/{checkpoint, model.index, model.data-00000-of-00001}

A model found there is used as is; one that is missing may be downloaded into it by its
engine where the network allows, and otherwise fails with one sentence naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = "AUDIOPREP_MODEL_DIR"
#: The help of every stage's --model-dir option.
MODEL_DIR_HELP = (
    "Model weights folder (default: $AUDIOPREP_MODEL_DIR or ~/.cache/audioprep/models)."
)
INA_URL = "https://github.com/ina-foss/inaSpeechSegmenter/releases/download/models/"


@dataclass(frozen=True)
class ModelSpec:
    """A model a stage can use: its engine folder, the files it needs, and where it comes from."""

    engine: str
    name: str
    files: tuple[str, ...]
    origin: str
    used_by: str

    def path(self, model_dir: Path) -> Path:
        return model_dir / self.engine / self.name

    def present(self, model_dir: Path) -> bool:
        base = model_dir / self.engine
        return all((base / f).is_file() and (base / f).stat().st_size > 0 for f in self.files)


KNOWN_MODELS = (
    ModelSpec(
        "inaSpeechSegmenter",
        "keras_speech_music_noise_cnn.hdf5",
        ("keras_speech_music_noise_cnn.hdf5",),
        INA_URL,
        "segment --vad-engine smn",
    ),
    ModelSpec(
        "inaSpeechSegmenter",
        "keras_speech_music_cnn.hdf5",
        ("keras_speech_music_cnn.hdf5",),
        INA_URL,
        "segment --vad-engine sm",
    ),
    ModelSpec(
        "inaSpeechSegmenter",
        "keras_male_female_cnn.hdf5",
        ("keras_male_female_cnn.hdf5",),
        INA_URL,
        "segment --detect-gender",
    ),
    ModelSpec(
        "spleeter",
        "2stems",
        ("2stems/checkpoint", "2stems/model.index", "2stems/model.data-00000-of-00001"),
        "https://github.com/deezer/spleeter/releases/download/v1.4.0/2stems.tar.gz",
        "separate --model spleeter:2stems",
    ),
)


def model_dir_option() -> Any:
    """The shared ``--model-dir`` option of a stage's Params (one declaration for every stage
    that loads model files)."""
    from audioprep.core.params import model_dir_param

    return model_dir_param(MODEL_DIR_HELP)


def model_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """The model directory: ``option``, else ``$AUDIOPREP_MODEL_DIR``, else the user cache."""
    if option:
        return Path(option).expanduser().absolute()
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser().absolute()
    return Path("~/.cache/audioprep/models").expanduser()


def find(engine: str, name: str) -> ModelSpec:
    for spec in KNOWN_MODELS:
        if spec.engine == engine and spec.name == name:
            return spec
    raise KeyError(f"{engine}/{name}")


def missing_message(spec: ModelSpec, directory: Path) -> str:
    """One sentence: which file is missing, where to put it, and where it comes from."""
    return (
        f"model {spec.engine}/{spec.name} is not in {directory} and could not be downloaded: "
        f"put {', '.join(spec.files)} from {spec.origin} into {directory / spec.engine}/, or point "
        f"--model-dir (or {ENV}) at a folder that has it."
    )
