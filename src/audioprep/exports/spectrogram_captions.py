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
from typing import Any

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


#: The format specs a caption field may carry: fill/align, sign, width (at most 3 digits),
#: grouping, precision (at most 2 digits) and one presentation type; anything else is refused.
_SPEC = re.compile(
    r"(?:.?[<>^=])?[+\- ]?0?(?P<width>\d{1,3})?[,_]?(?:\.(?P<prec>\d{1,2}))?[sdfFeEgG%n]?"
)
MAX_WIDTH, MAX_PRECISION = 200, 12


def caption_fields(template: str) -> list[str]:
    """The field names a caption template uses; UsageError for a malformed template, a
    positional field (``{0}``), a conversion other than ``!s``/``!r``/``!a``, a nested or
    unknown format spec, or a width over 200 / precision over 12.

    >>> caption_fields("{genre} {genre_keyword}, {title} ({duration:.1f} s)")
    ['genre', 'genre_keyword', 'title', 'duration']
    >>> caption_fields("{duration:.999999999f}")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    audioprep.errors.UsageError: --caption '{duration:.999999999f}': format spec ... not allowed ...
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"--caption {template!r} is not a valid template ({exc})") from None
    names = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise UsageError(
                f"--caption {template!r}: use plain field names in braces, like {{title}} "
                f"(not {name!r})"
            )
        if conversion not in (None, "s", "r", "a"):
            raise UsageError(
                f"--caption {template!r}: conversion !{conversion} is not allowed "
                "(use !s, !r or !a)"
            )
        m = _SPEC.fullmatch(spec or "")
        if m is None or int(m["width"] or 0) > MAX_WIDTH or int(m["prec"] or 0) > MAX_PRECISION:
            raise UsageError(
                f"--caption {template!r}: format spec {spec!r} is not allowed (use a width up "
                f"to {MAX_WIDTH} and a precision up to {MAX_PRECISION}, like {{duration:.1f}})"
            )
        names.append(name)
    return names


def _format(value: object, spec: str, conversion: str | None) -> str:
    """One field: converted and formatted, or as plain text when the spec does not fit its
    type (``{duration:d}`` on 1.5 gives ``1.5``, ``{title:.2f}`` on text gives the text)."""
    if conversion == "r":
        value = repr(value)
    elif conversion == "a":
        value = ascii(value)
    elif conversion == "s":
        value = str(value)
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        return str(value)


def render_caption(template: str, record: Record) -> tuple[str, set[str]]:
    """The caption of ``record`` and the fields it lacked (rendered empty). Fields come from
    the record's top level, then its ``source``; spaces and stray commas are tidied. The
    template is checked with :func:`caption_fields` first.

    >>> rec = {"id": "a", "source": {"genre": "nature", "genre_keyword": "fire", "title": "Camp"}}
    >>> render_caption("{genre} {genre_keyword}, {title}", rec)
    ('nature fire, Camp', set())
    >>> text, missing = render_caption("{genre} {genre_keyword}, {title}", {"title": "Rain"})
    >>> text, sorted(missing)
    ('Rain', ['genre', 'genre_keyword'])
    """
    caption_fields(template)
    fields: dict[str, object] = {}
    missing: set[str] = set()
    for key, value in (record.get("source") or {}).items():
        if value not in (None, "") and not isinstance(value, (dict, list)):
            fields[key] = value
    for key, value in record.items():
        if value not in (None, "") and not isinstance(value, (dict, list)):
            fields[key] = value
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name not in fields:
            missing.add(name)
            continue
        out.append(_format(fields[name], spec or "", conversion))
    text = "".join(out)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,;.:])", r"\1", text)
    text = re.sub(r"([,;:])(\s*[,;:])+", r"\1", text)
    text = text.strip(" ,;:")
    return text, missing


#: Spectrogram frames kept per item before neighbours are averaged (bounded memory: 4096
#: frames of 128 bands is 2 MB whatever the item's length; a 256-pixel image needs far fewer).
POOL_LIMIT = 4096


class _RowPool:
    """Feature rows of any length in bounded memory: once ``limit`` rows are held, neighbouring
    pairs are averaged and every later row counts half as much, so ``result()`` is the whole
    item at a uniform, coarser resolution (an item under ``limit`` rows is kept exactly).

    >>> import numpy as np
    >>> pool = _RowPool(limit=4)
    >>> for i in range(10):
    ...     pool.add(np.full((1, 1), float(i)))
    >>> pool.result()[:, 0].tolist()
    [1.5, 5.5, 8.5]
    """

    def __init__(self, *, limit: int) -> None:
        import numpy as np

        self.limit = limit
        self.factor = 1  # input rows per kept row
        self.kept: list[np.ndarray] = []  # kept rows, one (bins,) each
        self.acc: np.ndarray | None = None  # sum of the rows of the group being filled
        self.n = 0  # rows in that group

    def add(self, rows: Any) -> None:
        import numpy as np

        for row in np.asarray(rows, dtype=np.float64):
            self.acc = row.copy() if self.acc is None else self.acc + row
            self.n += 1
            if self.n == self.factor:
                self.kept.append(self.acc / self.n)
                self.acc, self.n = None, 0
                if len(self.kept) >= self.limit:
                    self.kept = [
                        (a + b) / 2 for a, b in zip(self.kept[::2], self.kept[1::2], strict=True)
                    ]
                    self.factor *= 2

    def result(self) -> Any:
        import numpy as np

        kept = self.kept + ([self.acc / self.n] if self.n else [])
        if not kept:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(kept).astype(np.float32)


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
            with job.item(record):  # an undecodable item is skipped, the rest exported
                sr = int(record["sample_rate"])
                path = resolve_audio(job.in_dir, record["audio"])
                blocks = mono_blocks(path, sample_rate=sr)
                pool = _RowPool(limit=POOL_LIMIT)
                for rows in feature_rows(
                    blocks, kind="mel", sr=sr, frame=1024, hop=256, n_mels=height
                ):
                    pool.add(rows)
                db = pool.result().T
                if not db.size:
                    raise ValueError("the audio holds no samples")
                if not np.isfinite(db).all():
                    raise ValueError("the audio holds NaN or infinite samples")
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
