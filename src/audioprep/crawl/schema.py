"""The metadata every crawled item carries under ``source``, and the crawl filters.

The schema follows the ASMR corpus attributes: ``id`` (the item's id on its site), ``author``,
``title``, ``channel_url`` (the item's page URL), ``publish_date`` (YYYYMMDD), ``genre``,
``genre_keyword``, ``comment`` (left empty: ``segment`` fills it), ``file_size`` (bytes on
disk) and ``description``; plus ``duration`` (as the site gives it), ``extractor``, ``url``
(the URL that was crawled) and, when the item came from a playlist or feed, ``playlist`` and
``playlist_url``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import urllib.parse
from typing import Any

from audioprep.errors import UsageError

SCHEMA_FIELDS = (
    "id",
    "author",
    "title",
    "channel_url",
    "publish_date",
    "genre",
    "genre_keyword",
    "comment",
    "file_size",
    "description",
)


def parse_date(text: str, *, option: str = "date") -> str:
    """A date given as YYYYMMDD or YYYY-MM-DD, returned as YYYYMMDD.

    >>> parse_date("2024-03-01"), parse_date("20240301")
    ('20240301', '20240301')
    """
    cleaned = text.strip().replace("-", "")
    try:
        dt.datetime.strptime(cleaned, "%Y%m%d")
    except ValueError:
        msg = f"{option} must be a date like 2024-03-01 or 20240301, not {text!r}"
        raise UsageError(msg) from None
    return cleaned


def date_from_timestamp(timestamp: float | int | None) -> str:
    """YYYYMMDD (UTC) of a Unix timestamp, or '' when there is none.

    >>> date_from_timestamp(1700000000), date_from_timestamp(None)
    ('20231114', '')
    """
    if timestamp is None:
        return ""
    return dt.datetime.fromtimestamp(float(timestamp), dt.timezone.utc).strftime("%Y%m%d")


def clean_page_url(url: str | None) -> str:
    """A page URL without yt-dlp's smuggled data or any other fragment.

    >>> clean_page_url("https://a.org/ep1.mp3#__youtubedl_smuggle=%7B%22x%22%3A1%7D")
    'https://a.org/ep1.mp3'
    """
    if not url:
        return ""
    return urllib.parse.urldefrag(url)[0]


@dataclasses.dataclass(frozen=True)
class Filters:
    """Which items to keep. Dates are YYYYMMDD strings; durations in seconds."""

    max_items: int | None = None
    date_after: str | None = None
    date_before: str | None = None
    match_title: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None

    def check(self) -> None:
        """Raise UsageError for settings that cannot work."""
        if self.max_items is not None and self.max_items < 1:
            raise UsageError("--max-items must be at least 1")
        if self.date_after and self.date_before and self.date_after > self.date_before:
            raise UsageError("--date-after is later than --date-before: nothing could match")
        if (
            self.min_duration is not None
            and self.max_duration is not None
            and self.min_duration > self.max_duration
        ):
            raise UsageError("--min-duration is longer than --max-duration: nothing could match")
        if self.match_title:
            try:
                re.compile(self.match_title)
            except re.error as exc:
                msg = f"--match-title is not a valid regular expression: {exc}"
                raise UsageError(msg) from None

    def reason(self, meta: dict[str, Any]) -> str | None:
        """Why an item (``title``, ``publish_date``, ``duration``) is filtered out, or None.

        A field that is not known yet passes: the same filters run again on the full metadata.

        >>> Filters(min_duration=60).reason({"title": "x", "duration": 12.0})
        'shorter than --min-duration 60 s (12 s)'
        >>> Filters(date_after="20240101").reason({"publish_date": ""}) is None
        True
        """
        title = meta.get("title")
        if (
            self.match_title
            and title is not None
            and not re.search(self.match_title, str(title), re.IGNORECASE)
        ):
            return f"title does not match --match-title {self.match_title!r}: {title!r}"
        date = meta.get("publish_date") or ""
        if date and self.date_after and date < self.date_after:
            return f"published {date}, before --date-after {self.date_after}"
        if date and self.date_before and date > self.date_before:
            return f"published {date}, after --date-before {self.date_before}"
        duration = meta.get("duration")
        if duration is not None:
            if self.min_duration is not None and duration < self.min_duration:
                return (
                    f"shorter than --min-duration {self.min_duration:g} s ({float(duration):g} s)"
                )
            if self.max_duration is not None and duration > self.max_duration:
                return f"longer than --max-duration {self.max_duration:g} s ({float(duration):g} s)"
        return None


def _first(info: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = info.get(key)
        if value not in (None, ""):
            return value
    return None


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def from_ytdlp(info: dict[str, Any], *, url: str, genre: str = "", genre_keyword: str = "") -> dict:
    """Map a yt-dlp info dict (an entry of a playlist or a resolved video) to the schema.

    ``file_size`` is filled in once the file is on disk.

    >>> info = {"id": "dQw4w9WgXcQ", "uploader": "Rick", "title": "Song", "extractor": "youtube",
    ...         "webpage_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    ...         "upload_date": "20091025", "duration": 212, "description": "d"}
    >>> meta = from_ytdlp(info, url="https://youtu.be/dQw4w9WgXcQ", genre="music")
    >>> meta["author"], meta["publish_date"], meta["channel_url"], meta["genre"], meta["comment"]
    ('Rick', '20091025', 'https://www.youtube.com/watch?v=dQw4w9WgXcQ', 'music', '')
    """
    date = _first(info, "upload_date", "release_date") or date_from_timestamp(
        _first(info, "timestamp", "release_timestamp")
    )
    return {
        "id": str(_first(info, "id", "display_id") or ""),
        "author": str(
            _first(info, "uploader", "channel", "creator", "artist", "uploader_id") or ""
        ),
        "title": str(_first(info, "title", "episode", "fulltitle") or ""),
        "channel_url": clean_page_url(_first(info, "webpage_url", "original_url", "url") or url),
        "publish_date": str(date or ""),
        "genre": genre,
        "genre_keyword": genre_keyword,
        "comment": "",
        "file_size": None,
        "description": str(info.get("description") or ""),
        "duration": _number(info.get("duration")),
        "extractor": str(_first(info, "extractor", "ie_key") or "").lower(),
        "url": url,
        "uploader_url": str(_first(info, "uploader_url", "channel_url") or ""),
        **(
            {"playlist": info.get("playlist") or "", "playlist_url": info["playlist_url"]}
            if info.get("playlist_url")
            else {}
        ),
    }


def from_pytube(yt: Any, *, url: str, genre: str = "", genre_keyword: str = "") -> dict:
    """Map a ``pytube.YouTube`` object to the schema (reads its properties: network if unset)."""
    published = yt.publish_date
    return {
        "id": yt.video_id,
        "author": str(yt.author or ""),
        "title": str(yt.title or ""),
        "channel_url": f"https://www.youtube.com/watch?v={yt.video_id}",
        "publish_date": published.strftime("%Y%m%d") if published else "",
        "genre": genre,
        "genre_keyword": genre_keyword,
        "comment": "",
        "file_size": None,
        "description": str(yt.description or ""),
        "duration": _number(yt.length),
        "extractor": "youtube",
        "url": url,
        "uploader_url": yt.channel_url if yt.channel_id else "",
    }
