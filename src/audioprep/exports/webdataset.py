"""webdataset: tar shards of N items, each item its audio plus its JSON record.

``shard-000000.tar``, ``shard-000001.tar``, … (``--shard-size``, default ``SHARD_SIZE``, items
each) and ``shards.json``
(the shard names and item counts). An item is two members sharing a key: ``KEY.EXT`` (the
audio bytes, unchanged) and ``KEY.json`` (the manifest record, its ``audio`` field set to the
member name) — the layout WebDataset and lhotse's Shar readers stream, and the one the Emilia
corpus is released in. Keys contain no dot (WebDataset splits a key at the first one).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audioprep.manifests.records import Record, resolve_audio

NAME = "webdataset"
HELP = "WebDataset: tar shards of N items (audio + JSON record each) and shards.json"
SHARD_SIZE = 1000


def member_key(stem: str) -> str:
    """A WebDataset key from a file stem: dots (key separators) become underscores.

    >>> member_key("talk.part-1")
    'talk_part-1'
    """
    return stem.replace(".", "_")


def _add(tar: tarfile.TarFile, name: str, data: bytes | Path) -> None:
    """Add a member from bytes, or streamed from a file (never read whole into memory)."""
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = 0, 0o644
    info.uname = info.gname = ""
    if isinstance(data, Path):
        with open(data, "rb") as fh:
            info.size = os.fstat(fh.fileno()).st_size
            tar.addfile(info, fh)  # copies in blocks of its own
        return
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def write(job: Any) -> None:
    size = getattr(job, "shard_size", None) or SHARD_SIZE  # checked by exports.export
    shards: list[dict[str, Any]] = []
    for batch in _batches(job.records(), size):
        name = f"shard-{len(shards):06d}.tar"
        tmp = job.out / f".{name}.tmp"
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for record in batch:
                source = resolve_audio(job.in_dir, record["audio"])
                ext = Path(record["audio"]).suffix.lower().lstrip(".") or "audio"
                ext = ext if ext.isalnum() and len(ext) <= 5 else "audio"
                key = job.stem(record, dotless=True)  # unique after the dots are gone
                row: Record = {**record, "audio": f"{key}.{ext}"}
                _add(tar, f"{key}.{ext}", source)
                _add(tar, f"{key}.json", json.dumps(row, ensure_ascii=False).encode("utf-8"))
                job.count(record)
        os.replace(tmp, job.out / name)
        shards.append({"name": name, "items": len(batch)})
    with job.atomic_text("shards.json") as fh:
        json.dump({"shard_size": size, "shards": shards}, fh, indent=1)
        fh.write("\n")
