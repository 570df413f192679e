"""One model directory for the whole toolkit: where every stage looks for weights first.

Resolution order: the ``--model-dir`` option, then ``AUDIOPREP_MODEL_DIR``, then
``~/.cache/audioprep/models``. The layout is one folder per engine, for example::

    MODEL_DIR/inaSpeechSegmenter/keras_speech_music_noise_cnn.hdf5
    MODEL_DIR/spleeter/2stems/{checkpoint, model.index, model.data-00000-of-00001}
    MODEL_DIR/whisper/base/{model.bin, config.json, tokenizer.json, vocabulary.txt}

Which files each engine needs, and where they come from, is the engine's ``weights()``
(:func:`known_weights` lists them all; ``audioprep models`` prints them). A model found there
is used as is; one that is missing may be downloaded into it by its engine where the network
allows, and otherwise fails with one sentence naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audioprep.engines.base import EngineInfo, Weights

ENV = "AUDIOPREP_MODEL_DIR"
#: The help of every stage's --model-dir option.
MODEL_DIR_HELP = (
    "Model weights folder (default: $AUDIOPREP_MODEL_DIR or ~/.cache/audioprep/models)."
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


def known_weights() -> list[tuple[EngineInfo, Weights]]:
    """Every registered engine's model files: ``(engine, weights)``, by family and name.

    >>> [w.label for e, w in known_weights() if e.name == "whisper"]
    ['whisper/base', 'whisper/tiny.en']
    """
    from audioprep.engines.base import available, engine_class

    return [(e, w) for e in available() for w in engine_class(e.family, e.name).weights()]
