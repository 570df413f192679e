"""A small web server on 127.0.0.1 for crawl tests: feeds, pages, media, and bad behaviour.

Routes (files live in ``root``):
- ``/files/NAME`` serves ``root/NAME`` with Range support;
- ``/drop/NAME`` announces the whole file and closes the connection halfway, every time;
- ``/drop-N/NAME`` does that to the N-th GET of that path only (``drop-1``: the first; a
  crawl of a direct URL first probes it with a GET of its own, so its download is ``drop-2``);
- ``/pages/NAME`` serves ``root/NAME`` as ``text/html`` or RSS (by extension);
- anything else is a 404.
A request for another host (an absolute URI or CONNECT, which is how a proxied request
arrives) is answered 502 and logged under ``foreign`` so a test can prove nothing went out.
"""

from __future__ import annotations

import dataclasses
import http.server
import re
import threading
from pathlib import Path

TYPES = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".webm": "audio/webm",
    ".xml": "application/rss+xml",
    ".html": "text/html; charset=utf-8",
}


@dataclasses.dataclass
class Hit:
    method: str
    path: str
    range: str | None


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_CONNECT(self) -> None:  # noqa: N802 - http.server's naming
        self.server.foreign.append(self.path)
        self.send_error(502, "no network in tests")

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        if self.path.startswith("http://") or self.path.startswith("https://"):
            self.server.foreign.append(self.path)
            self.send_error(502, "no network in tests")
            return
        path = self.path.split("?", 1)[0]
        self.server.hits.append(Hit(self.command, path, self.headers.get("Range")))
        kind, _, name = path.lstrip("/").partition("/")
        file = self.server.root / name
        nth = re.fullmatch(r"drop-(\d+)", kind)
        if self.command == "GET":
            self.server.counts[path] = self.server.counts.get(path, 0) + 1
        known = kind in ("files", "drop", "pages") or nth
        if not known or not name or not file.is_file():
            self.send_error(404, "Not Found")
            return
        data = file.read_bytes()
        ctype = TYPES.get(file.suffix, "application/octet-stream")
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and kind != "pages":
            start = int(rng[6:].split("-", 1)[0] or 0)
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        part = data[start:]
        drop = kind == "drop" or bool(nth and self.server.counts.get(path) == int(nth[1]))
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(part)))
        self.send_header("Accept-Ranges", "bytes")
        if drop and body:
            self.send_header("Connection", "close")
        self.end_headers()
        if not body:
            return
        if drop:
            self.wfile.write(part[: len(part) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(part)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up (as tests make them) are not news

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.hits: list[Hit] = []
        self.foreign: list[str] = []
        self.counts: dict[str, int] = {}


class WebServer:
    """Start with ``WebServer(root)``; ``url(path)``, ``hits``, ``foreign``; ``close()``."""

    def __init__(self, root: Path) -> None:
        self.server = _Server(root)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    @property
    def hits(self) -> list[Hit]:
        return self.server.hits

    @property
    def foreign(self) -> list[str]:
        return self.server.foreign

    def downloads(self, name: str) -> list[Hit]:
        """GET requests for a media file (any route)."""
        return [h for h in self.hits if h.method == "GET" and h.path.endswith("/" + name)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
