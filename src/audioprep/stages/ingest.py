"""ingest: Build a manifest directory from local media files, folders or globs.

Probes local media and keeps each file (hard-linked) with its duration, rate and channels.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import os
import re
from collections.abc import Iterator
from pathlib import Path

from audioprep.core.media import MEDIA_EXTENSIONS, ffmpeg_version, probe, require_ffmpeg
from audioprep.core.params import param
from audioprep.core.stage import ItemContext, SourceStage
from audioprep.errors import UsageError
from audioprep.manifests import guards
from audioprep.manifests.ids import make_id
from audioprep.manifests.records import Record

_GLOB_CHARS = re.compile(r"[*?\[]")
_SAFE_EXT = re.compile(r"^\.[a-z0-9]{1,5}$")


def _walk(folder: Path) -> Iterator[Path]:
    """Media files under ``folder`` in a stable order; folders named like media are yielded too."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        base = Path(root)
        for name in dirs:
            if Path(name).suffix.lower() in MEDIA_EXTENSIONS:
                yield base / name  # reported as an error: a folder named like audio
        for name in sorted(files):
            if Path(name).suffix.lower() in MEDIA_EXTENSIONS:
                yield base / name


class IngestStage(SourceStage):
    """Probes duration, sample rate and channels with ffprobe and hard-links each file into
    OUT_DIR/audio/ (copies across file systems). Files that are empty, truncated or not media
    go to OUT_DIR/errors.jsonl.

    Example: `audioprep ingest ~/podcasts "~/clips/**/*.mp3" raw/`
    """

    name = "ingest"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        sources: tuple[str, ...] = param(
            (),
            help="Media files, folders (walked recursively) or quoted globs.",
            positional=True,
            path=True,
        )

    def check(self) -> None:
        require_ffmpeg()
        if not self.params.sources:
            raise UsageError("ingest needs at least one file, folder or glob.")
        for src in self.params.sources:
            if not Path(src).exists() and not (
                _GLOB_CHARS.search(src) and glob.glob(src, recursive=True)
            ):
                raise UsageError(f"no such file, folder or matching glob: {src}")

    def source_paths(self) -> list[Path]:
        """The files and folders ingest reads (a glob by the folder it starts from): the
        runner refuses an OUT_DIR inside one of them, which would ingest its own output."""
        return [
            guards.glob_root(src) if _GLOB_CHARS.search(src) else Path(src)
            for src in self.params.sources
        ]

    def _expand(self) -> Iterator[Path]:
        for src in self.params.sources:
            path = Path(src)
            if path.is_dir():
                yield from _walk(path)
            elif path.exists():
                yield path
            else:
                for match in sorted(glob.glob(src, recursive=True)):
                    p = Path(match)
                    yield from (_walk(p) if p.is_dir() else [p])

    def inputs(self) -> Iterator[Record]:
        seen: set[Path] = set()
        for path in self._expand():
            path = path.absolute()
            if path in seen:
                continue
            seen.add(path)
            yield {"id": make_id(path.stem, str(path)), "source": {"path": str(path)}}

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        path = Path(record["source"]["path"])
        info = probe(path)
        stat = path.stat()
        ext = path.suffix.lower()
        if not _SAFE_EXT.match(ext):
            ext = ".media"
        audio = ctx.link(path, f"{record['id']}{ext}")
        mtime = dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc).isoformat(
            timespec="seconds"
        )
        return [
            {
                "id": record["id"],
                "audio": audio,
                "duration": round(info.duration, 6),
                "sample_rate": info.sample_rate,
                "channels": info.channels,
                "codec": info.codec,
                "container": info.container,
                "parent": None,
                "offset": 0.0,
                "source_offset": 0.0,
                "source": {
                    **record.get("source", {}),
                    "path": str(path),
                    "size": stat.st_size,
                    "mtime": mtime,
                    "has_video": info.has_video,
                },
            }
        ]

    def tool_versions(self) -> dict[str, str]:
        return {"ffprobe": ffmpeg_version()}
