"""The yt-dlp backend: list what a URL holds without downloading, then fetch one item.

Listing (:meth:`YtDlpBackend.expand`) runs in the main process: a YouTube video URL or a
direct media URL becomes one entry without any request; playlists, channels, searches,
feeds and pages are extracted flat (one request per page of the listing). Fetching
(:meth:`YtDlpBackend.fetch`) runs in a worker on one entry: yt-dlp resolves it, our filters
run on the full metadata, and the file is written under a name made from the item's id.

Nothing here ever re-extracts an item from its ``webpage_url`` after a failed download (what
``yt-dlp --load-info-json`` does): a failed format URL is an error for that item.
"""

from __future__ import annotations

import copy
import glob
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from audioprep.core.media import MEDIA_EXTENSIONS
from audioprep.crawl import rss
from audioprep.crawl.backend import CrawlBackend
from audioprep.crawl.http import CapExceeded, DownloadCaps, message, require_http, with_retries
from audioprep.crawl.options import FetchOptions, Rejected, item_id
from audioprep.crawl.schema import clean_page_url, from_ytdlp
from audioprep.crawl.urls import UrlItem, kind
from audioprep.errors import ItemError

MAX_DEPTH = 3
_SMUGGLE = "#__youtubedl_smuggle="


class _Quiet:
    """yt-dlp logger: keep its chatter out of our terminal, keep warnings for the record."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    info = debug

    def warning(self, msg: str) -> None:
        self.warnings.append(message(Exception(msg)))

    def error(self, msg: str) -> None:
        pass


def ytdlp_version() -> str:
    """The installed yt-dlp version."""
    from yt_dlp.version import __version__

    return __version__


class YtDlpBackend(CrawlBackend):
    """List and fetch with yt-dlp (YouTube, podcasts' RSS, pages with media, direct URLs)."""

    name = "yt-dlp"
    package = "yt-dlp"

    def __init__(self, options: FetchOptions) -> None:
        super().__init__(options)
        self._worker_ydl: Any = None

    @classmethod
    def takes(cls, url: str) -> bool:
        """Any URL, search or info JSON (yt-dlp's generic extractor takes any page)."""
        return bool(kind(url))

    @classmethod
    def version(cls) -> str:
        return ytdlp_version()

    # -- yt-dlp set-up -------------------------------------------------------------------
    def _params(self, **extra: Any) -> dict[str, Any]:
        o = self.options
        fmt = o.format or ("bv*+ba/b" if o.video else "bestaudio/best")
        params: dict[str, Any] = {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": _Quiet(),
            "format": fmt,
            "noplaylist": True,
            "lazy_playlist": True,
            "ignoreerrors": False,
            "cachedir": False,
            "updatetime": False,
            "continuedl": True,
            "overwrites": False,
            "socket_timeout": o.timeout,
            # our own loop retries (with back-off, resuming the .part file); yt-dlp's own
            # immediate retries would multiply with it
            "retries": 0,
            "fragment_retries": o.retries,
            "extractor_retries": 0,
            "retry_sleep_functions": {"fragment": lambda n: o.retry_wait * 2**n},
        }
        if o.max_filesize or o.max_download_time:
            params["progress_hooks"] = [self._cap_hook]
        if o.rate_limit:
            params["ratelimit"] = o.rate_limit
        if o.sleep:
            params["sleep_interval"] = o.sleep
            params["sleep_interval_requests"] = o.sleep
        params.update(extra)
        return params

    def _ydl(self, **extra: Any) -> Any:
        from yt_dlp import YoutubeDL

        return YoutubeDL(self._params(**extra))

    def _cap_hook(self, status: dict[str, Any]) -> None:
        """--max-filesize and --max-download-time for yt-dlp's own downloader: raising here
        stops the download (an endless stream without Content-Length included)."""
        if status.get("status") != "downloading":
            return
        caps = DownloadCaps(self.options.max_filesize, self.options.max_download_time)
        caps.start -= float(status.get("elapsed") or 0.0)
        total = status.get("total_bytes") or status.get("total_bytes_estimate")
        caps.check(int(status.get("downloaded_bytes") or 0), int(total) if total else None)

    # -- listing -------------------------------------------------------------------------
    def check_url(self, url: str) -> None:
        """Every URL kind is acceptable to yt-dlp (the generic extractor takes any page)."""
        return None

    def expand(self, item: UrlItem) -> Iterator[dict[str, Any]]:
        """The entries ``item`` holds, flat (not resolved), each with a ``_key`` (site, id)."""
        url = item.url
        if kind(url) == "info-json":
            yield from self._from_info_json(Path(url))
            return
        single = self._single(url)
        if single is not None:
            yield single
            return
        with self._ydl() as ydl:
            result = with_retries(
                lambda: ydl.extract_info(url, download=False, process=False),
                retries=self.options.retries,
                retry_wait=self.options.retry_wait,
                what=f"listing {url}",
            )
            yield from self._walk(ydl, result, url, depth=0)

    def _from_info_json(self, path: Path) -> Iterator[dict[str, Any]]:
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ItemError(f"cannot read the info JSON {path}: {exc}") from None
        if not isinstance(info, dict):
            raise ItemError(f"{path} is not a yt-dlp info JSON (expected an object)")
        if info.get("_type") in ("playlist", "multi_video"):
            for entry in info.get("entries") or []:
                if isinstance(entry, dict):
                    yield self._keyed(entry)
            return
        info.setdefault("_type", "video")
        yield self._keyed(info)

    def _single(self, url: str) -> dict[str, Any] | None:
        """A YouTube video or a direct media URL, known without a request; else None."""
        if kind(url) != "url":
            return None
        from yt_dlp.extractor import gen_extractor_classes

        for ie in gen_extractor_classes():
            if not ie.suitable(url):
                continue
            key = ie.ie_key()
            if key == "Youtube":
                vid = ie.get_temp_id(url)
                entry = {"_type": "url", "url": url, "ie_key": key, "id": vid}
                return self._keyed(entry)
            if key == "Generic":
                path = urllib.parse.urlparse(url).path
                if PurePosixPath(path).suffix.lower() in MEDIA_EXTENSIONS:
                    return self._keyed({"_type": "url", "url": url, "ie_key": "Generic"})
            return None
        return None

    def _walk(
        self, ydl: Any, result: dict[str, Any], url: str, *, depth: int
    ) -> Iterator[dict[str, Any]]:
        rtype = result.get("_type", "video")
        if rtype not in ("playlist", "multi_video"):
            if (
                rtype in ("url", "url_transparent")
                and depth < MAX_DEPTH
                and not self._is_single(ydl, result)
            ):
                yield from self._follow(ydl, result, depth=depth)
                return
            yield self._keyed(ydl.sanitize_info(result))
            return
        entries = result.get("entries") or []  # lazy for YouTube: --max-items stops the paging
        feed = episodes = None
        if str(result.get("extractor_key", "Generic")) == "Generic":
            entries = list(entries)  # a feed's entries are one list anyway
            feed = self._feed(ydl, url, entries)
            episodes = feed.by_url() if feed else None
        playlist = {
            "playlist": (feed.title if feed else None) or result.get("title") or "",
            "playlist_url": clean_page_url(result.get("webpage_url") or url) if not feed else url,
        }
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            etype = entry.get("_type", "video")
            if etype in ("playlist", "multi_video"):
                yield from self._walk(ydl, entry, url, depth=depth + 1)
                continue
            if (
                etype in ("url", "url_transparent")
                and depth < MAX_DEPTH
                and self._is_single(ydl, entry) is False
            ):
                yield from self._follow(ydl, entry, depth=depth)
                continue
            entry = ydl.sanitize_info(dict(entry))
            entry.update(playlist)
            if feed is not None and episodes is not None:
                self._enrich(entry, feed, episodes)
            yield self._keyed(entry)

    def _follow(self, ydl: Any, ref: dict[str, Any], *, depth: int) -> Iterator[dict[str, Any]]:
        """List what a URL result that is not a single video points to (a tab, a playlist)."""
        inner = ydl.extract_info(
            ref["url"], ie_key=ref.get("ie_key"), download=False, process=False
        )
        yield from self._walk(ydl, inner, ref["url"], depth=depth + 1)

    @staticmethod
    def _is_single(ydl: Any, entry: dict[str, Any]) -> bool | None:
        try:
            return ydl.get_info_extractor(entry["ie_key"]).is_single_video(entry["url"])
        except (KeyError, AttributeError, TypeError):
            return None

    def _feed(self, ydl: Any, url: str, entries: list[Any]) -> rss.Feed | None:
        """The podcast feed behind a generic playlist of smuggled enclosure URLs, if it is one."""
        if not any(isinstance(e, dict) and _SMUGGLE in str(e.get("url", "")) for e in entries):
            return None

        def fetch() -> bytes:
            with ydl.urlopen(url) as response:
                return response.read()

        data = with_retries(
            fetch,
            retries=self.options.retries,
            retry_wait=self.options.retry_wait,
            what=f"reading the feed {url}",
        )
        return rss.parse_feed(data)

    @staticmethod
    def _enrich(entry: dict[str, Any], feed: rss.Feed, episodes: dict[str, rss.Episode]) -> None:
        """Clean an RSS entry: the enclosure URL unsmuggled, the guid as id, author and page."""
        from yt_dlp.utils import unsmuggle_url

        clean, data = unsmuggle_url(entry.get("url", ""), {})
        entry["url"] = clean
        episode = episodes.get(clean)
        guid = (data or {}).get("force_videoid") or (episode.guid if episode else "")
        if guid:
            entry["id"] = guid
        entry.setdefault("ie_key", "Generic")
        entry["extractor"] = "rss"
        entry["uploader"] = (episode.author if episode else "") or feed.author or None
        entry["webpage_url"] = (episode.link if episode else "") or clean
        entry["media_url"] = clean
        if episode and episode.enclosure_length:
            entry["enclosure_length"] = episode.enclosure_length
        if episode and not entry.get("timestamp") and episode.publish_date:
            entry["upload_date"] = episode.publish_date

    @staticmethod
    def _keyed(entry: dict[str, Any]) -> dict[str, Any]:
        extractor = str(entry.get("extractor") or entry.get("ie_key") or "generic")
        if extractor != "rss":  # our own name for feed entries wins
            extractor = entry.get("extractor_key") or extractor
        site_id = entry.get("id")
        url = str(entry.get("media_url") or entry.get("webpage_url") or entry.get("url") or "")
        entry["_key"] = {
            "extractor": str(extractor).lower(),
            "site_id": str(site_id) if site_id is not None else None,
            "id": item_id(str(extractor), str(site_id) if site_id else None, url),
        }
        return entry

    # -- fetching ------------------------------------------------------------------------
    def fetch(self, entry: dict[str, Any], *, dest_dir: Path, name: str) -> tuple[dict, Path]:
        """Resolve and download one entry into ``dest_dir/name.EXT``; return (info, path).

        Raises :class:`Rejected` when a filter drops the item on its full metadata, and
        ItemError (after retries, for network failures) when it cannot be had.
        """
        dropped: list[str] = []
        filters = self.options.filters
        overrides = {k: v for k, v in entry.items() if k in _TRANSPARENT and v is not None}

        def match_filter(info: dict[str, Any], *, incomplete: bool = False) -> str | None:
            if incomplete:
                return None
            reason = filters.reason(from_ytdlp({**info, **overrides}, url=""))
            if reason:
                dropped.append(reason)
            return reason

        outtmpl = str(dest_dir).replace("%", "%%") + f"/{name}.%(ext)s"
        todo = {k: v for k, v in entry.items() if k != "_key"}
        # one YoutubeDL per worker (its set-up costs ~50 ms, and it keeps connections open);
        # yt-dlp reads these two settings afresh for every item
        if self._worker_ydl is None:
            self._worker_ydl = self._ydl()
        ydl = self._worker_ydl
        ydl.params["outtmpl"] = {"default": outtmpl}
        ydl.params["match_filter"] = match_filter
        for key in ("url", "webpage_url"):  # a feed or page may point anywhere
            value = entry.get(key)
            if isinstance(value, str) and urllib.parse.urlsplit(value).scheme:
                require_http(value)
        try:
            info = with_retries(
                lambda: ydl.process_ie_result(copy.deepcopy(todo), download=True),
                retries=self.options.retries,
                retry_wait=self.options.retry_wait,
                what=f"downloading {clean_page_url(entry.get('url') or entry.get('webpage_url'))}",
            )
        except CapExceeded:  # what came so far is no use, and resuming would hit the cap again
            for part in dest_dir.glob(glob.escape(name) + ".*"):
                part.unlink(missing_ok=True)
            raise
        if dropped:
            raise Rejected(dropped[0])
        if not isinstance(info, dict) or info.get("_type", "video") != "video":
            raise ItemError("this entry is a playlist inside a playlist; crawl its URL directly")
        downloads = info.get("requested_downloads") or []
        path = downloads[0].get("filepath") if downloads else None
        if not path or not Path(path).is_file():
            raise ItemError("yt-dlp finished without writing a file")
        merged = {**ydl.sanitize_info(info), **overrides}
        meta = from_ytdlp(merged, url="")
        meta.update({k: merged[k] for k in ("format_id", "ext", "acodec", "abr") if merged.get(k)})
        if merged.get("playlist_url"):
            meta.update(playlist=merged.get("playlist") or "", playlist_url=merged["playlist_url"])
        return meta, Path(path)


#: Entry fields from a playlist or feed that win over the resolved item's (as yt-dlp's
#: url_transparent does, plus what we read from the feed).
_TRANSPARENT = (
    "title",
    "description",
    "timestamp",
    "upload_date",
    "duration",
    "uploader",
    "webpage_url",
    "playlist",
    "playlist_url",
    "extractor",
    "id",
)
