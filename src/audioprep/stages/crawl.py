"""crawl: Download audio and its metadata from YouTube, podcast feeds, pages and direct URLs.

The main process lists what each URL holds (a feed's episodes, a playlist's videos) and
yields one input item per entry; workers download one entry each. Downloads go to
OUT_DIR/.partial under the item's id (never its title) and move into audio/ only once
complete and probed, so a killed crawl resumes its partial files and never records a
download that did not finish.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audioprep.core.media import ffmpeg_version, probe, require_ffmpeg
from audioprep.core.params import param
from audioprep.core.stage import ItemContext, SourceStage, WorkerContext
from audioprep.crawl.backend import CrawlBackend, backend_class
from audioprep.crawl.backend import names as backend_names
from audioprep.crawl.http import DEFAULT_MAX_DOWNLOAD_TIME, DEFAULT_MAX_FILESIZE, message
from audioprep.crawl.options import FetchOptions, Rejected, parse_rate, parse_size
from audioprep.crawl.schema import Filters, date_from_timestamp, parse_date
from audioprep.crawl.urls import UrlItem, collect
from audioprep.errors import ItemError, UsageError
from audioprep.manifests.ids import make_id, slugify
from audioprep.manifests.records import Record, atomic_write_text

BACKENDS = tuple(backend_names())  # the registered crawl backends
_FINISHED = re.compile(r"^(?P<id>.+)\.(?P<ext>[a-z0-9]{1,5})$")


def _flat_meta(entry: dict[str, Any]) -> dict[str, Any]:
    """What a listing already says about an entry; None where it says nothing."""
    date = entry.get("upload_date") or date_from_timestamp(entry.get("timestamp")) or None
    return {"title": entry.get("title"), "publish_date": date, "duration": entry.get("duration")}


class CrawlStage(SourceStage):
    """Each item lands in OUT_DIR/audio/ named by its id (never its title), with its metadata
    under `source` (id, author, title, channel_url, publish_date, genre, genre_keyword,
    comment, file_size, description, duration, extractor, url). Re-running resumes partial
    downloads and downloads nothing twice; failures go to OUT_DIR/errors.jsonl, filtered
    items to OUT_DIR/rejected.jsonl.

    Example: `audioprep crawl https://feeds.example.org/show.xml --max-items 20 raw/`
    """

    name = "crawl"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        urls: tuple[str, ...] = param(
            (),
            help="URLs (videos, playlists, channels, searches, podcast feeds, pages, media "
            "files, yt-dlp .info.json files).",
            positional=True,
            path=True,  # in a chain config, a relative .info.json path is the config's
            metavar="[URL]...",
        )
        from_file: tuple[str, ...] = param(
            (),
            help="A file of URLs: one or more per line (commas allowed), # comments, "
            "genre=... genre_keyword=... on a line. Repeatable.",
            flags=("--from-file", "-f"),
            repeatable=True,
            path=True,
        )
        backend: str = param(
            "yt-dlp",
            help="yt-dlp (anything yt-dlp reads) or pytube (YouTube only).",
            choices=BACKENDS,
        )
        video: bool = param(
            False, help="Keep the video too (for a later convert).", flags=("--video",)
        )
        format: str | None = param(None, help="yt-dlp format selector (default: bestaudio/best).")
        genre: str = param("", help="source.genre of every item, e.g. nature.")
        genre_keyword: str = param("", help="source.genre_keyword of every item, e.g. fire.")
        max_items: int | None = param(None, help="At most this many items from each URL.", min=1)
        date_after: str | None = param(
            None, help="Keep items published on or after this date (2024-03-01)."
        )
        date_before: str | None = param(None, help="Keep items published on or before this date.")
        match_title: str | None = param(
            None, help="Keep items whose title matches this regex (case-insensitive)."
        )
        min_duration: float | None = param(None, help="Keep items at least this long (s).", min=0)
        max_duration: float | None = param(None, help="Keep items at most this long (s).", min=0)
        retries: int = param(3, help="Retries of a network failure, with back-off.", min=0)
        retry_wait: float = param(2.0, help="First back-off wait (s); doubles each retry.", min=0)
        rate_limit: str | None = param(
            None, help="Download speed limit per worker, e.g. 500K or 2M (bytes/s)."
        )
        sleep: float = param(0.0, help="Seconds to wait before each request and download.", min=0)
        timeout: float = param(30.0, help="Network timeout (s).", min=1)
        archive: str | None = param(
            None,
            help="Download archive shared between crawls: items listed there are not "
            "downloaded again (rejected with a reason).",
            path=True,
        )
        max_filesize: str | None = param(
            DEFAULT_MAX_FILESIZE,
            help="Stop and fail a download larger than this, e.g. 500M (0: no limit).",
        )
        max_download_time: float = param(
            DEFAULT_MAX_DOWNLOAD_TIME,
            help="Stop and fail a download taking longer (s), e.g. an endless stream "
            "(0: no limit).",
            min=0,
        )

    def __init__(self, params: Any | None = None) -> None:
        super().__init__(params)
        p = self.params  # URL files and the archive are kept by absolute path (stage.json)
        self.params = dataclasses.replace(
            p,
            from_file=tuple(os.path.abspath(f) for f in p.from_file),
            archive=os.path.abspath(p.archive) if p.archive else None,
        )

    # -- set-up --------------------------------------------------------------------------
    def options(self) -> FetchOptions:
        """The backend settings these parameters make (validated)."""
        p = self.params
        filters = Filters(
            max_items=p.max_items,
            date_after=parse_date(p.date_after, option="--date-after") if p.date_after else None,
            date_before=parse_date(p.date_before, option="--date-before")
            if p.date_before
            else None,
            match_title=p.match_title,
            min_duration=p.min_duration,
            max_duration=p.max_duration,
        )
        filters.check()
        if p.max_download_time < 0:
            raise UsageError("--max-download-time must be >= 0 (0: no limit)")
        if p.retries < 0 or p.retry_wait < 0 or p.sleep < 0 or p.timeout <= 0:
            raise UsageError("--retries, --retry-wait and --sleep must be >= 0, --timeout > 0")
        return FetchOptions(
            video=p.video,
            format=p.format,
            rate_limit=parse_rate(p.rate_limit),
            sleep=p.sleep,
            retries=p.retries,
            retry_wait=p.retry_wait,
            timeout=p.timeout,
            filters=filters,
            max_filesize=parse_size(p.max_filesize),
            max_download_time=p.max_download_time or None,
        )

    def backend(self) -> CrawlBackend:
        """The backend object (``--backend``), its library checked to be installed."""
        cls = backend_class(self.params.backend)
        options = self.options()
        cls.require()
        return cls(options)

    def url_items(self) -> list[UrlItem]:
        """The URLs to crawl, with their genre attributes."""
        p = self.params
        return collect(p.urls, p.from_file, genre=p.genre, genre_keyword=p.genre_keyword)

    def check(self) -> None:
        require_ffmpeg()
        items = self.url_items()
        if not items:
            raise UsageError("crawl needs at least one URL (as an argument or in --from-file).")
        backend = self.backend()
        for item in items:
            backend.check_url(item.url)
        if self.params.archive:
            parent = Path(self.params.archive).absolute().parent
            if not parent.is_dir():
                raise UsageError(f"the folder of --archive does not exist: {parent}")

    def setup(self, ctx: WorkerContext) -> None:
        self._backend = self.backend()
        self._archive = self._read_archive()

    # -- listing (main process) ----------------------------------------------------------
    def inputs(self) -> Iterator[Record]:
        backend = self.backend()
        filters = backend.options.filters
        seen: set[str] = set()
        for item in self.url_items():
            base = {
                "url": item.url,
                "genre": item.genre,
                "genre_keyword": item.genre_keyword,
                "listed_in": item.origin,
            }
            kept = 0
            try:
                for entry in backend.expand(item):
                    rid = entry["_key"]["id"]
                    if rid in seen:
                        continue
                    seen.add(rid)
                    source: dict[str, Any] = {**base, "entry": entry}
                    reason = filters.reason(_flat_meta(entry))
                    if reason:
                        source["filtered"] = reason
                    else:
                        kept += 1
                    yield {"id": rid, "source": source}
                    if filters.max_items and kept >= filters.max_items:
                        break
            except Exception as exc:  # noqa: BLE001 - becomes this URL's line in errors.jsonl
                host = urllib.parse.urlparse(item.url).netloc or "url"
                rid = make_id(f"unlisted-{slugify(host, max_len=40)}", item.url)
                if rid not in seen:
                    seen.add(rid)
                    error = f"listing failed: {message(exc)}"
                    yield {"id": rid, "source": {**base, "error": error}}

    # -- one item (worker) ---------------------------------------------------------------
    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        source = record["source"]
        if source.get("error"):
            raise ItemError(source["error"])
        if source.get("filtered"):
            ctx.reject(record, source["filtered"])
            return []
        rid = record["id"]
        entry = source["entry"]
        key = entry["_key"]
        ctx.partial_dir.mkdir(parents=True, exist_ok=True)
        meta_file = ctx.partial_dir / f"{rid}.meta.json"
        archive_key = f"{key['extractor']} {key['site_id'] or entry.get('url')}"
        found = self._finished(rid, ctx)
        if found is not None and meta_file.is_file():  # done by a run killed before recording it
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            path = found
        else:
            if archive_key in self._archive:
                ctx.reject(
                    record, f"already downloaded: listed in the archive {self.params.archive}"
                )
                return []
            try:
                meta, path = self._backend.fetch(entry, dest_dir=ctx.partial_dir, name=rid)
            except Rejected as exc:
                ctx.reject(record, str(exc))
                return []
            except ItemError:
                raise
            except Exception as exc:  # noqa: BLE001 - a download error of this item
                raise ItemError(message(exc)) from None
            atomic_write_text(meta_file, json.dumps(meta, ensure_ascii=False) + "\n")
        try:
            info = probe(path)
        except ItemError as exc:
            path.unlink(missing_ok=True)
            meta_file.unlink(missing_ok=True)
            raise ItemError(f"the downloaded file is not usable: {exc}") from None
        size = path.stat().st_size
        filename = f"{rid}{path.suffix.lower()}"
        audio = ctx.relpath(filename) if path.parent == ctx.audio_dir else ctx.adopt(path, filename)
        meta_file.unlink(missing_ok=True)
        self._remember(archive_key)
        listed_in = source.get("listed_in", "command line")
        return [
            {
                "id": rid,
                "audio": audio,
                "duration": round(info.duration, 6),
                "sample_rate": info.sample_rate,
                "channels": info.channels,
                "codec": info.codec,
                "container": info.container,
                "parent": None,
                "offset": 0.0,
                "source": {
                    **meta,
                    "url": source["url"],
                    "genre": source["genre"],
                    "genre_keyword": source["genre_keyword"],
                    "comment": "",
                    "file_size": size,
                    "has_video": info.has_video,
                    "backend": self.params.backend,
                    **({"listed_in": listed_in} if listed_in != "command line" else {}),
                },
            }
        ]

    @staticmethod
    def _finished(rid: str, ctx: ItemContext) -> Path | None:
        """A complete download of ``rid`` already in audio/ or .partial/, if any."""
        for folder in (ctx.audio_dir, ctx.partial_dir):
            with contextlib.suppress(FileNotFoundError):
                for path in folder.iterdir():
                    m = _FINISHED.match(path.name)
                    if m and m["id"] == rid and path.is_file():
                        return path
        return None

    # -- the download archive ------------------------------------------------------------
    def _read_archive(self) -> set[str]:
        if not self.params.archive:
            return set()
        try:
            text = Path(self.params.archive).read_text(encoding="utf-8")
        except FileNotFoundError:
            return set()
        return {line.strip() for line in text.splitlines() if line.strip()}

    def _remember(self, line: str) -> None:
        if not self.params.archive or line in self._archive:
            return
        fd = os.open(self.params.archive, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, (line + "\n").encode("utf-8"))
        finally:
            os.close(fd)
        self._archive.add(line)

    def tool_versions(self) -> dict[str, str]:
        versions = {"ffprobe": ffmpeg_version()}
        cls = backend_class(self.params.backend)
        with contextlib.suppress(ImportError):
            versions[cls.package] = cls.version()
        return versions
