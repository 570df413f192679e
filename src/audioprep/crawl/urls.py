"""URL lists: reading hand-kept link files and telling URLs from attributes.

A URL file has one or more URLs per line (separated by commas or spaces); blank lines and
``#`` comments are ignored. ``genre=`` and ``genre_keyword=`` on a URL's line apply to that
line; on a line of their own they apply to the lines that follow. Quote a search that has
spaces: ``"ytsearch20:rain on a tent"``.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

from audioprep.errors import UsageError

#: The attributes a URL line may set.
ATTRIBUTES = ("genre", "genre_keyword")
_SEARCH = re.compile(r"^[a-z]+search(?:\d+|all|date)?:.", re.IGNORECASE)
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_COMMENT = re.compile(r"(^|\s)#.*$")


@dataclasses.dataclass(frozen=True)
class UrlItem:
    """One URL to crawl, with the attributes given for it and where it came from."""

    url: str
    genre: str = ""
    genre_keyword: str = ""
    origin: str = "command line"


def kind(token: str) -> str:
    """What a token is: ``"url"``, ``"search"``, ``"info-json"`` or ``""`` (none of those).

    >>> kind("https://youtu.be/abc"), kind("ytsearch5:rain"), kind("rain")
    ('url', 'search', '')
    """
    if _URL.match(token):
        return "url"
    if _SEARCH.match(token):
        return "search"
    if token.endswith(".json") and Path(token).is_file():
        return "info-json"
    return ""


def parse_line(line: str, *, origin: str = "") -> tuple[list[str], dict[str, str]]:
    """Split one line into its URLs and its attributes (an info JSON path made absolute).

    >>> parse_line("https://a.org/1.mp3, https://a.org/2.mp3 genre=nature genre_keyword=fire")
    (['https://a.org/1.mp3', 'https://a.org/2.mp3'], {'genre': 'nature', 'genre_keyword': 'fire'})
    >>> parse_line('"ytsearch3:rain on a tent"  # three results')
    (['ytsearch3:rain on a tent'], {})
    """
    text = _COMMENT.sub("", line).strip()
    if not text:
        return [], {}
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"{origin}: cannot read this line ({exc}): {line.strip()}") from None
    urls: list[str] = []
    attrs: dict[str, str] = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        if eq and key in ATTRIBUTES and not kind(token):
            attrs[key] = value.strip()
            continue
        pieces = [token] if kind(token) == "search" else token.split(",")
        for piece in (p.strip() for p in pieces):
            if not piece:
                continue
            found = kind(piece)
            if found == "info-json":
                piece = str(Path(piece).absolute())
            elif not found:
                raise UsageError(
                    f"{origin}: {piece!r} is neither a URL (http:// or https://), a search "
                    f"(ytsearch10:words, quoted if it has spaces), an existing .json file nor "
                    f"one of {', '.join(a + '=' for a in ATTRIBUTES)}"
                )
            urls.append(piece)
    return urls, attrs


def read_url_file(path: str | Path, *, genre: str = "", genre_keyword: str = "") -> list[UrlItem]:
    """Read a URL file into items; ``genre``/``genre_keyword`` are the defaults for every line.

    Raises UsageError naming the file and line of anything that is not a URL or an attribute.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read the URL file {path}: {exc.strerror}") from None
    defaults = {"genre": genre, "genre_keyword": genre_keyword}
    items: list[UrlItem] = []
    for n, line in enumerate(text.splitlines(), start=1):
        origin = f"{path}:{n}"
        urls, attrs = parse_line(line, origin=origin)
        if attrs and not urls:
            defaults = {**defaults, **attrs}
            continue
        merged = {**defaults, **attrs}
        items.extend(UrlItem(url, origin=origin, **merged) for url in urls)
    return items


def collect(
    urls: Iterable[str],
    from_files: Iterable[str | Path] = (),
    *,
    genre: str = "",
    genre_keyword: str = "",
) -> list[UrlItem]:
    """The URLs given on the command line and in URL files, in that order, without repeats.

    >>> [i.url for i in collect(["https://a.org/x.mp3", "https://a.org/x.mp3"])]
    ['https://a.org/x.mp3']
    """
    items: list[UrlItem] = []
    for url in urls:
        found, attrs = parse_line(shlex.quote(url), origin="command line")
        items.extend(UrlItem(one, genre=genre, genre_keyword=genre_keyword) for one in found)
        if attrs:
            raise UsageError(f"give attributes with --genre/--genre-keyword, not {url!r}")
    for path in from_files:
        items.extend(read_url_file(path, genre=genre, genre_keyword=genre_keyword))
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.url not in seen:
            seen.add(item.url)
            unique.append(item)
    return unique
