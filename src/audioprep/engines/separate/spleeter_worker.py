"""A long-lived Spleeter worker, run by the Python of Spleeter's own virtual environment.

Spleeter 2.4.2 needs Python < 3.12, tensorflow 2.12.1, numpy < 2 and typer < 0.4, so it cannot
share audioprep's environment. This file imports nothing from audioprep: only the standard
library, numpy and spleeter. It loads the model once and separates request after request.

Protocol (binary, on stdin / stdout):
- on start it writes one JSON line: ``{"ready": true, "stems": [...]}`` (or ``{"error": ...}``);
- a request is a JSON line ``{"frames": n}`` followed by ``n * 2`` little-endian float32
  samples (44.1 kHz stereo, interleaved);
- the answer is a JSON line ``{"frames": n, "stems": [...]}`` followed, for each stem in that
  order, by ``n * 2`` float32 samples. An empty line or end of input stops the worker.
Anything Spleeter or TensorFlow prints goes to stderr, never into the protocol.
"""

import json
import os
import sys


def _send(stream, header, arrays=()):
    stream.write((json.dumps(header) + "\n").encode())
    for array in arrays:
        stream.write(array.astype("<f4").tobytes())
    stream.flush()


def _read_exact(stream, size):
    chunks, left = [], size
    while left:
        data = stream.read(left)
        if not data:
            raise EOFError("input ended inside a request")
        chunks.append(data)
        left -= len(data)
    return b"".join(chunks)


def _session_runner(separator, stems):
    """A function separating one window with a graph built and a checkpoint restored ONCE.

    ``Separator.separate`` (spleeter 2.4) calls ``Estimator.predict`` on every call, which builds
    the graph again, opens a session and restores the checkpoint from disk: about 2 CPU-s per
    call, as much as separating 30 s of audio. The CLI pays it once per file; a windowed caller
    paid it per window. This builds the same graph (Spleeter's own ``EstimatorSpecBuilder`` on
    its placeholders, waveform shape ``(None, 2)``, so no rebuild per window length) and runs it
    in one session; the output is the same to the bit.
    """
    graph = separator._tf_graph
    with graph.as_default():
        features = separator._get_features()
        outputs = separator._get_builder().outputs
        outputs = {s: outputs[s] for s in stems}
        session = separator._get_session()
    waveform, audio_id = features["waveform"], features["audio_id"]

    def separate(x):
        return session.run(outputs, feed_dict={waveform: x, audio_id: ""})

    return separate


def main():
    # this file's folder is sys.path[0]: keep audioprep's modules out of Spleeter's imports
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    model_path, model = sys.argv[1], sys.argv[2]
    device = sys.argv[3] if len(sys.argv) > 3 else "cpu"
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from TensorFlow or Spleeter go to stderr
    os.environ["MODEL_PATH"] = model_path
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import numpy as np
        from spleeter.separator import Separator

        if device == "cuda":
            import tensorflow as tf

            if not tf.config.list_physical_devices("GPU"):
                raise RuntimeError(
                    "--device cuda: this environment's TensorFlow sees no GPU (make spleeter "
                    "installs tensorflow-cpu; install tensorflow==2.12.1 with CUDA into it)"
                )
        separator = Separator(model, multiprocess=False)
        stems = list(separator._params["instrument_list"])
        separate = _session_runner(separator, stems)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        _send(proto, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    _send(proto, {"ready": True, "stems": stems})
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line.strip():
            return 0
        frames = int(json.loads(line)["frames"])
        x = np.frombuffer(_read_exact(stdin, frames * 8), dtype="<f4").reshape(frames, 2)
        result = separate(x)
        _send(proto, {"frames": frames, "stems": stems}, [result[s] for s in stems])


if __name__ == "__main__":
    sys.exit(main())
