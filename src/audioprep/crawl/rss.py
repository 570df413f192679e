"""Podcast feeds: the per-episode fields yt-dlp's RSS support leaves out.

yt-dlp turns an RSS feed into entries whose URL is the enclosure with a
``#__youtubedl_smuggle=`` fragment (carrying the guid), names the playlist after the feed
URL and does not read ``itunes:author``. :func:`parse_feed` reads those from the feed itself,
so the manifest gets clean page URLs, authors and guids.
"""

from __future__ import annotations

import dataclasses
import email.utils
import xml.etree.ElementTree as ET

from audioprep.crawl.schema import date_from_timestamp

ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
DC = "{http://purl.org/dc/elements/1.1/}"


@dataclasses.dataclass
class Episode:
    """One ``<item>`` of a feed."""

    enclosure_url: str
    guid: str = ""
    title: str = ""
    author: str = ""
    link: str = ""
    publish_date: str = ""
    enclosure_length: int | None = None
    enclosure_type: str = ""


@dataclasses.dataclass
class Feed:
    """A podcast feed: its own title, author and link, and its episodes in feed order."""

    title: str = ""
    author: str = ""
    link: str = ""
    episodes: list[Episode] = dataclasses.field(default_factory=list)

    def by_url(self) -> dict[str, Episode]:
        """Episodes keyed by enclosure URL."""
        return {e.enclosure_url: e for e in self.episodes}


def _text(node: ET.Element | None, *paths: str) -> str:
    if node is None:
        return ""
    for path in paths:
        found = node.find(path)
        if found is not None and (found.text or "").strip():
            return (found.text or "").strip()
    return ""


def _date(text: str) -> str:
    if not text:
        return ""
    try:
        return date_from_timestamp(email.utils.parsedate_to_datetime(text).timestamp())
    except (TypeError, ValueError, IndexError):
        return ""


def parse_feed(data: bytes) -> Feed | None:
    """Parse RSS 2.0 bytes; None when ``data`` is not an RSS feed.

    >>> xml = (b'<rss xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>'
    ...        b'<title>Show</title><itunes:author>Ann</itunes:author><item><title>One</title>'
    ...        b'<guid>ep-1</guid><enclosure url="https://a.org/1.mp3" length="10" '
    ...        b'type="audio/mpeg"/></item></channel></rss>')
    >>> feed = parse_feed(xml)
    >>> feed.author, feed.episodes[0].guid, feed.episodes[0].author
    ('Ann', 'ep-1', 'Ann')
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    if root.tag != "rss" or root.find("channel") is None:
        return None
    channel = root.find("channel")
    feed = Feed(
        title=_text(channel, "title"),
        author=_text(channel, f"{ITUNES}author", "managingEditor", f"{DC}creator"),
        link=_text(channel, "link"),
    )
    for item in channel.findall("item") if channel is not None else []:
        enclosure = item.find("enclosure")
        url = (enclosure.get("url") if enclosure is not None else None) or _text(item, "link")
        if not url:
            continue
        length = enclosure.get("length") if enclosure is not None else None
        feed.episodes.append(
            Episode(
                enclosure_url=url.strip(),
                guid=_text(item, "guid"),
                title=_text(item, "title", f"{ITUNES}title"),
                author=_text(item, f"{ITUNES}author", "author", f"{DC}creator") or feed.author,
                link=_text(item, "link"),
                publish_date=_date(_text(item, "pubDate")),
                enclosure_length=int(length) if length and length.isdigit() else None,
                enclosure_type=(enclosure.get("type") or "") if enclosure is not None else "",
            )
        )
    return feed
