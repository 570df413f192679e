"""What every crawl backend needs to know: formats, politeness, retries and filters."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from pathlib import PurePosixPath

from audioprep.crawl.schema import Filters
from audioprep.errors import UsageError
from audioprep.manifests.ids import make_id, slugify

_YT_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_rate(text: str | None) -> float | None:
    """Bytes per second from ``500K``, ``2M``, ``1.5MB`` or a plain number; None for none.

    >>> parse_rate("500K"), parse_rate("2M"), parse_rate(None)
    (512000.0, 2097152.0, None)
    """
    if not text:
        return None
    m = _RATE.match(text)
    if not m:
        raise UsageError(f"--rate-limit must look like 500K or 2M (bytes per second), not {text!r}")
    return float(m.group(1)) * 1024 ** " kmg".index(m.group(2).lower() or " ")


def parse_size(text: str | None, *, option: str = "--max-filesize") -> float | None:
    """Bytes from ``4G``, ``500M``, ``2048K`` or a plain number; None for none or ``0``.

    >>> parse_size("4G"), parse_size("0"), parse_size(None)
    (4294967296.0, None, None)
    """
    if not text:
        return None
    m = _RATE.match(str(text))
    if not m:
        raise UsageError(f"{option} must look like 500M or 4G (bytes), not {text!r}")
    value = float(m.group(1)) * 1024 ** " kmg".index(m.group(2).lower() or " ")
    return value or None


class Rejected(Exception):
    """The item exists but a filter dropped it (the reason is the message)."""


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    """Download settings shared by the yt-dlp and pytube backends."""

    video: bool = False
    format: str | None = None
    rate_limit: float | None = None
    sleep: float = 0.0
    retries: int = 3
    retry_wait: float = 2.0
    timeout: float = 30.0
    filters: Filters = dataclasses.field(default_factory=Filters)
    max_filesize: float | None = None  # bytes; None: no cap
    max_download_time: float | None = None  # seconds; None: no cap


def item_id(extractor: str, site_id: str | None, url: str) -> str:
    """The manifest id of a crawled item: from its site and its id there, never its title.

    YouTube videos keep their own id; anything else gets the URL's file name (cleaned) and a
    hash of its site id, or of the URL when the site gives none.

    >>> item_id("Youtube", "dQw4w9WgXcQ", "https://youtu.be/dQw4w9WgXcQ")
    'youtube-dQw4w9WgXcQ'
    >>> item_id("generic", None, "https://a.org/feed/../ep%201.mp3")
    'generic-ep_1-74d2ff33'
    """
    ext = slugify(extractor.lower() or "generic", max_len=20)
    if ext == "youtube" and site_id and _YT_ID.match(site_id):
        return f"youtube-{site_id}"
    clean = urllib.parse.urldefrag(url)[0]
    stem = PurePosixPath(urllib.parse.unquote(urllib.parse.urlparse(clean).path)).stem
    return make_id(f"{ext}-{slugify(stem or 'item', max_len=40)}", f"{ext}:{site_id or clean}")
