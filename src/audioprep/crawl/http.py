"""A resumable HTTP download with a rate limit, and the retry policy every backend shares."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from audioprep.errors import ItemError

T = TypeVar("T")
USER_AGENT = "audioprep (+https://github.com/audioprep)"
_TRANSIENT_TEXT = re.compile(
    r"connection refused|timed out|timeout|reset by peer|incompleteread|incomplete read|"
    r"remote end closed|connection aborted|broken pipe|content too short|"
    r"did not receive any data|temporary failure|http error (?:5\d\d|429)|"
    r"network is unreachable|name or service not known|got error: \d+ bytes read",
    re.IGNORECASE,
)


class TransientError(ItemError):
    """A network failure worth retrying (refused, reset, timed out, cut short, HTTP 5xx/429)."""


class CapExceeded(ItemError):
    """A download went past ``--max-filesize`` or ``--max-download-time`` (never retried)."""


#: Default caps of one download: 4 GiB and two hours (an endless stream stops there).
DEFAULT_MAX_FILESIZE = "4G"
DEFAULT_MAX_DOWNLOAD_TIME = 7200.0
ALLOWED_SCHEMES = ("http", "https")


def require_http(url: str) -> None:
    """Refuse (ItemError) a URL whose scheme is not http or https (``file:``, ``ftp:``...).

    >>> require_http("file:///etc/passwd")
    Traceback (most recent call last):
    ...
    audioprep.errors.ItemError: refusing a file: URL (only http and https are fetched): file:///etc/passwd
    """
    scheme = urllib.parse.urlsplit(str(url)).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise ItemError(
            f"refusing a {scheme or 'scheme-less'}: URL (only http and https are fetched): "
            f"{str(url)[:200]}"
        )


class DownloadCaps:
    """Size and time limits of one download; ``check`` raises :class:`CapExceeded`."""

    def __init__(self, max_bytes: float | None, max_seconds: float | None) -> None:
        self.max_bytes = max_bytes or None
        self.max_seconds = max_seconds or None
        self.start = time.monotonic()

    def check(self, got: int, expected: int | None = None) -> None:
        if self.max_bytes and max(got, expected or 0) > self.max_bytes:
            raise CapExceeded(
                f"the download is larger than --max-filesize ({_size(self.max_bytes)}"
                f"{', announced ' + _size(expected) if expected else ''}); "
                "raise the limit to keep it"
            )
        if self.max_seconds and time.monotonic() - self.start > self.max_seconds:
            raise CapExceeded(
                f"the download took longer than --max-download-time ({self.max_seconds:g} s, "
                f"{_size(got)} so far; an endless stream?); raise the limit to keep it"
            )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib's own handler also follows ftp:)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        require_http(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects())


def is_transient(exc: BaseException) -> bool:
    """True for network failures that may go away on their own.

    >>> is_transient(ConnectionRefusedError(111, "Connection refused"))
    True
    >>> is_transient(ItemError("HTTP Error 404: Not Found"))
    False
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, CapExceeded):
            return False
        if isinstance(err, TransientError):
            return True
        if isinstance(err, urllib.error.HTTPError):
            return err.code >= 500 or err.code == 429
        if isinstance(err, (ConnectionError, TimeoutError, http.client.HTTPException)):
            return True
        if isinstance(err, urllib.error.URLError) and isinstance(err.reason, OSError):
            return True
        if _TRANSIENT_TEXT.search(str(err)):
            return True
        todo += [err.__cause__, err.__context__, getattr(err, "cause", None)]
        exc_info = getattr(err, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            todo.append(exc_info[1])
    return False


def backoff(retry_wait: float) -> Iterator[float]:
    """Waits before each retry: ``retry_wait`` doubling, at most 60 s.

    >>> import itertools; list(itertools.islice(backoff(1.0), 5))
    [1.0, 2.0, 4.0, 8.0, 16.0]
    """
    wait = retry_wait
    while True:
        yield min(wait, 60.0)
        wait *= 2


def with_retries(
    call: Callable[[], T],
    *,
    retries: int,
    retry_wait: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; retry transient failures ``retries`` times with backoff, then give up.

    The final failure is an ItemError saying what was tried and how often.
    """
    waits = backoff(retry_wait)
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc):
                kind = CapExceeded if _caused_by(exc, CapExceeded) else ItemError
                raise kind(f"{what} failed: {message(exc)}") from None
            if attempt == retries:
                tries = f"{retries + 1} attempts" if retries else "1 attempt"
                raise ItemError(f"{what} failed after {tries}: {message(exc)}") from None
            sleep(next(waits))
    raise AssertionError("unreachable")  # pragma: no cover


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    err: BaseException | None = exc
    todo = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, kind):
            return True
        exc_info = getattr(err, "exc_info", None)
        todo += [err.__cause__, err.__context__]
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            todo.append(exc_info[1])
    return False


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def message(exc: BaseException) -> str:
    """A one-line reason for ``exc`` without yt-dlp's ``ERROR:`` prefix or colours."""
    text = _ANSI.sub("", str(exc) or type(exc).__name__).strip()
    text = re.sub(r"^ERROR:\s*", "", text)
    text = re.sub(r";\s*please report this issue.*$", "", text, flags=re.DOTALL | re.IGNORECASE)
    text = re.sub(r"\s*\(caused by .*\)\s*$", "", text, flags=re.DOTALL)
    return " ".join(text.split())


class _Throttle:
    """Sleep as needed so that ``rate`` bytes per second are not exceeded."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.done = 0

    def __call__(self, n: int) -> None:
        if not self.rate:
            return
        self.done += n
        ahead = self.done / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)


def download(
    url: str,
    dest: Path,
    *,
    rate_limit: float | None = None,
    timeout: float = 30.0,
    chunk: int = 1 << 16,
    headers: dict[str, str] | None = None,
    max_bytes: float | None = None,
    max_seconds: float | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` with a Range request if it exists.

    ``dest`` appears only once every byte the server announced has arrived; a connection that
    ends early raises :class:`TransientError` and keeps the ``.part`` file for the next try.
    Only http(s) URLs are fetched (redirects included). A download past ``max_bytes`` or
    ``max_seconds`` raises :class:`CapExceeded` and its ``.part`` file is removed.
    """
    require_http(url)
    caps = DownloadCaps(max_bytes, max_seconds)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = _OPENER.open(request, timeout=timeout)  # noqa: S310 - http(s) only
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part is already complete
            os.replace(part, dest)
            return dest
        raise ItemError(f"HTTP Error {exc.code}: {exc.reason} ({url})") from exc
    with contextlib.closing(response):
        if have and response.status != 206:
            have = 0  # the server ignored the Range: start over
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length and length.isdigit() else None
        throttle = _Throttle(rate_limit)
        try:
            caps.check(have, expected)
        except CapExceeded:
            part.unlink(missing_ok=True)
            raise
        with open(part, "ab" if have else "wb") as fh:
            got = have
            while True:
                try:
                    caps.check(got)
                except CapExceeded:
                    part.unlink(missing_ok=True)
                    raise
                try:
                    data = response.read(chunk)
                except (http.client.IncompleteRead, OSError) as exc:
                    raise TransientError(
                        f"connection dropped after {got} of {expected or '?'} bytes"
                    ) from exc
                if not data:
                    break
                fh.write(data)
                got += len(data)
                throttle(len(data))
            fh.flush()
            os.fsync(fh.fileno())
    if expected is not None and got < expected:
        raise TransientError(f"connection dropped after {got} of {expected} bytes")
    os.replace(part, dest)
    return dest
