"""spectrogram-captions: mel spectrogram PNGs of one size and a caption per image.

Writes ``images/ID.png`` (greyscale, ``height`` mel bands by ``width`` columns, dB scaled: white
at the item's loudest, black 80 dB below) and ``metadata.jsonl`` with ``file_name`` and ``text``
(the caption, from a template over the record's fields), so that
``datasets.load_dataset("imagefolder", data_dir=OUT)`` gives ``image`` and ``text`` columns.
"""

from __future__ import annotations

import json
import os
import re
import string
from pathlib import Path

from audioprep.errors import UsageError
from audioprep.exports._base import ExportJob
from audioprep.manifests.records import Record, resolve_audio

NAME = "spectrogram-captions"
HELP = (
    "spectrogram-captions: images/ID.png (mel, dB, fixed size) and metadata.jsonl captions "
    "(--caption), a datasets imagefolder"
)

DEFAULT_CAPTION = "{genre} {genre_keyword}, {title}"
WIDTH, HEIGHT = 256, 128


class _Fields(dict):
    """Template fields: the record's scalar fields over its ``source`` ones; missing ones empty."""

    def __missing__(self, key: str) -> str:
        self.missing.add(key)
        return ""

    missing: set[str]


def caption_fields(template: str) -> list[str]:
    """The field names a caption template uses; UsageError for a malformed template.

    >>> caption_fields("{genre} {genre_keyword}, {title}")
    ['genre', 'genre_keyword', 'title']
    """
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise UsageError(f"--caption {template!r} is not a valid template ({exc})") from None
    bad = [n for n in names if not n or not re.fullmatch(r"\w+", n)]
    if bad:
        raise UsageError(
            f"--caption {template!r}: use plain field names in braces, like {{title}} "
            f"(not {bad[0]!r})"
        )
    return names


def render_caption(template: str, record: Record) -> tuple[str, set[str]]:
    """The caption of ``record`` and the fields it lacked (rendered empty). Fields come from
    the record's top level, then its ``source``; spaces and stray commas are tidied.

    >>> rec = {"id": "a", "source": {"genre": "nature", "genre_keyword": "fire", "title": "Camp"}}
    >>> render_caption("{genre} {genre_keyword}, {title}", rec)
    ('nature fire, Camp', set())
    >>> text, missing = render_caption("{genre} {genre_keyword}, {title}", {"title": "Rain"})
    >>> text, sorted(missing)
    ('Rain', ['genre', 'genre_keyword'])
    """
    fields = _Fields()
    fields.missing = set()
    for key, value in (record.get("source") or {}).items():
        if value not in (None, "") and not isinstance(value, (dict, list)):
            fields[key] = value
    for key, value in record.items():
        if value not in (None, "") and not isinstance(value, (dict, list)):
            fields[key] = value
    text = template.format_map(fields)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,;.:])", r"\1", text)
    text = re.sub(r"([,;:])(\s*[,;:])+", r"\1", text)
    text = text.strip(" ,;:")
    return text, fields.missing


def check(job: ExportJob) -> None:
    """Refuse a malformed ``--caption`` before anything is written."""
    caption_fields(getattr(job, "caption", None) or DEFAULT_CAPTION)


def write(job: ExportJob, *, width: int = WIDTH, height: int = HEIGHT) -> None:
    """Write the images and ``metadata.jsonl`` of the job's records into its folder."""
    import numpy as np
    from PIL import Image

    from audioprep.dsp.features import db_image, feature_rows
    from audioprep.engines.tone.model import mono_blocks, one_blas_thread

    template = getattr(job, "caption", None) or DEFAULT_CAPTION
    (job.out / "images").mkdir(parents=True, exist_ok=True)
    lacking: dict[str, int] = {}
    stats = job.stats
    with job.atomic_text("metadata.jsonl") as fh, one_blas_thread():
        for record in job.records():
            sr = int(record["sample_rate"])
            path = resolve_audio(job.in_dir, record["audio"])
            blocks = mono_blocks(path, sample_rate=sr)
            rows = list(feature_rows(blocks, kind="mel", sr=sr, frame=1024, hop=256, n_mels=height))
            db = np.concatenate(rows).T
            name = f"images/{job.stem(record)}.png"
            tmp = job.out / "images" / f".{Path(name).name}.tmp"
            Image.fromarray(db_image(db, width=width), mode="L").save(tmp, format="PNG")
            os.replace(tmp, job.out / name)
            text, missing = render_caption(template, record)
            for key in missing:
                lacking[key] = lacking.get(key, 0) + 1
            row = {"file_name": name, "text": text, "id": record["id"]}
            row["duration"] = record.get("duration")
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            stats["items"] += 1
            stats["seconds"] += float(record.get("duration") or 0.0)
            if not text:
                stats["without_text"] += 1
    if lacking:
        stats["caption_fields_missing"] = lacking
