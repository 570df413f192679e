"""The pytube backend: YouTube videos, playlists and channels with pytube.

pytube finds the item's metadata and stream URLs; the bytes come through
:func:`audioprep.crawl.http.download` (resumable, rate-limited, retried), so both backends
behave the same on a bad network.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audioprep.crawl.backend import CrawlBackend
from audioprep.crawl.http import download, with_retries
from audioprep.crawl.options import FetchOptions, Rejected, item_id
from audioprep.crawl.schema import from_pytube
from audioprep.crawl.urls import UrlItem, kind
from audioprep.errors import ItemError, UsageError

_SAFE_EXT = re.compile(r"^[a-z0-9]{1,5}$")


def pytube_version() -> str:
    """The installed pytube version."""
    from pytube.version import __version__

    return __version__


def url_kind(url: str) -> str:
    """What pytube makes of a URL: ``"video"``, ``"playlist"``, ``"channel"`` or ``""``.

    No request is made.

    >>> url_kind("https://youtu.be/dQw4w9WgXcQ"), url_kind("https://www.youtube.com/@asmr")
    ('video', 'channel')
    >>> url_kind("https://www.youtube.com/playlist?list=PL0123456789"), url_kind("https://a.org")
    ('playlist', '')
    """
    from pytube import extract
    from pytube.exceptions import RegexMatchError

    if kind(url) != "url" or not re.search(r"(youtube\.com|youtu\.be)/", url):
        return ""
    if re.search(r"youtube\.com/(@[^/?#]+|c/|channel/|user/)", url):
        return "channel"
    if re.search(r"[?&]list=", url) and "watch?" not in url:
        return "playlist"
    try:
        extract.video_id(url)
        return "video"
    except RegexMatchError:
        return ""


def choose_stream(streams: Any, *, video: bool) -> Any:
    """The stream to download: the best audio-only one (by bitrate), or the best progressive
    video with sound when ``video``; raise ItemError when there is none."""
    if video:
        stream = streams.filter(progressive=True).order_by("resolution").last()
    else:
        audio = [s for s in streams.filter(only_audio=True)]
        stream = max(audio, key=lambda s: s.bitrate or 0) if audio else None
    if stream is None:
        raise ItemError(f"no {'video' if video else 'audio-only'} stream offered")
    return stream


class PytubeBackend(CrawlBackend):
    """List and fetch YouTube URLs with pytube."""

    name = "pytube"
    package = "pytube"

    def __init__(self, options: FetchOptions) -> None:
        super().__init__(options)
        if options.format:
            raise UsageError("--format is a yt-dlp option; pytube picks the stream itself")

    @classmethod
    def takes(cls, url: str) -> bool:
        """YouTube video, playlist and channel URLs."""
        return bool(url_kind(url))

    @classmethod
    def version(cls) -> str:
        return pytube_version()

    def check_url(self, url: str) -> None:
        """Refuse URLs pytube cannot read, before anything runs."""
        if not self.takes(url):
            raise UsageError(
                f"--backend pytube reads YouTube video, playlist and channel URLs only, not "
                f"{url!r}; use --backend yt-dlp for it"
            )

    def expand(self, item: UrlItem) -> Iterator[dict[str, Any]]:
        """The videos ``item`` holds, each as an entry with its ``_key``."""
        from pytube import Channel, Playlist, YouTube

        which = url_kind(item.url)
        if which == "video":
            yield self._entry(YouTube(item.url).video_id, item.url)
            return
        holder = Playlist(item.url) if which == "playlist" else Channel(item.url)
        urls = with_retries(
            lambda: list(holder.video_urls),
            retries=self.options.retries,
            retry_wait=self.options.retry_wait,
            what=f"listing {item.url}",
        )
        title = ""
        try:
            title = holder.title if which == "playlist" else holder.channel_name
        except Exception:  # noqa: BLE001 - a missing title is not worth failing the list
            title = ""
        for url in urls:
            entry = self._entry(YouTube(url).video_id, url)
            entry.update(playlist=title, playlist_url=item.url)
            yield entry

    @staticmethod
    def _entry(video_id: str, url: str) -> dict[str, Any]:
        return {
            "_type": "url",
            "url": url,
            "id": video_id,
            "_key": {
                "extractor": "youtube",
                "site_id": video_id,
                "id": item_id("youtube", video_id, url),
            },
        }

    def fetch(self, entry: dict[str, Any], *, dest_dir: Path, name: str) -> tuple[dict, Path]:
        """Fetch one video's metadata and best stream into ``dest_dir/name.EXT``."""
        from pytube import YouTube

        return self.fetch_from(YouTube(entry["url"]), dest_dir=dest_dir, name=name)

    def fetch_from(self, yt: Any, *, dest_dir: Path, name: str) -> tuple[dict, Path]:
        """Like :meth:`fetch` for a ready ``pytube.YouTube`` object."""
        o = self.options
        retry = {"retries": o.retries, "retry_wait": o.retry_wait}
        if o.sleep:
            time.sleep(o.sleep)
        meta = with_retries(
            lambda: from_pytube(yt, url=yt.watch_url), what=f"reading {yt.watch_url}", **retry
        )
        reason = o.filters.reason(meta)
        if reason:
            raise Rejected(reason)
        what = f"listing streams of {yt.watch_url}"
        streams = with_retries(lambda: yt.streams, what=what, **retry)
        stream = choose_stream(streams, video=o.video)
        ext = stream.subtype if _SAFE_EXT.match(stream.subtype or "") else "media"
        dest = dest_dir / f"{name}.{ext}"
        with_retries(
            lambda: download(
                stream.url,
                dest,
                rate_limit=o.rate_limit,
                timeout=o.timeout,
                max_bytes=o.max_filesize,
                max_seconds=o.max_download_time,
            ),
            what=f"downloading {yt.watch_url}",
            **retry,
        )
        info = {**meta, "format": f"{stream.itag} {stream.mime_type}", "abr": stream.abr}
        return info, dest
