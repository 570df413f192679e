"""The by-hand baseline for `make bench`: librosa.load each wav, then a log spectrogram (frame 512,
hop 256, dB) or the 180-value tone vector, saved as .npy. Usage: raw_librosa_features.py KIND IN OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import librosa
import numpy as np


def main() -> None:
    kind, src, dst = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.wav")):
        if kind == "logspec":
            y, sr = librosa.load(f, sr=None, mono=True)
            out = librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=512, hop_length=256)))
        else:
            y, sr = librosa.load(f, sr=22050, mono=True)
            mel = librosa.feature.melspectrogram(y=y, sr=sr)
            out = np.concatenate(
                [
                    librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=40).mean(1),
                    librosa.feature.chroma_stft(S=np.abs(librosa.stft(y)), sr=sr).mean(1),
                    mel.mean(1),
                ]
            )
        np.save(dst / f"{f.stem}.npy", out.astype(np.float32))


if __name__ == "__main__":
    main()
