"""The crawl-backend contract: list what a URL holds, fetch one entry; backends register
themselves by subclassing :class:`CrawlBackend` and say which URLs they take.

>>> names()
['yt-dlp', 'pytube']
>>> backend_class("pytube").takes("https://feeds.example.org/show.xml")
False
>>> backend_class("yt-dlp").takes("https://feeds.example.org/show.xml")
True
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from audioprep.crawl.options import FetchOptions
from audioprep.crawl.urls import UrlItem
from audioprep.errors import AudioprepError, UsageError

#: Modules that define the bundled backends (imported on first use; they import their
#: libraries lazily). A backend elsewhere registers itself when its module is imported.
BACKEND_MODULES = ("audioprep.crawl.ytdlp_backend", "audioprep.crawl.pytube_backend")
_REGISTRY: dict[str, type[CrawlBackend]] = {}


class CrawlBackend(abc.ABC):
    """A way of listing and downloading web media (yt-dlp, pytube).

    Subclasses set ``name`` (the ``--backend`` value) and ``package`` (the pip package it
    needs), implement :meth:`takes`, :meth:`expand`, :meth:`fetch` and :meth:`version`.
    """

    name: ClassVar[str] = ""
    package: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in vars(cls) and cls.name:  # a subclass keeping its parent's name replaces
            _REGISTRY[cls.name] = cls  # nothing

    def __init__(self, options: FetchOptions) -> None:
        self.options = options

    @classmethod
    @abc.abstractmethod
    def takes(cls, url: str) -> bool:
        """Whether this backend reads ``url`` (decided without a request)."""

    def check_url(self, url: str) -> None:
        """Raise UsageError for a URL this backend cannot read, before anything runs."""
        if not self.takes(url):
            raise UsageError(f"--backend {self.name} cannot read {url!r}")

    @abc.abstractmethod
    def expand(self, item: UrlItem) -> Iterator[dict[str, Any]]:
        """The entries ``item`` holds (a feed's episodes, a playlist's videos), each a dict
        with at least ``_key`` (a stable unique key)."""

    @abc.abstractmethod
    def fetch(self, entry: dict[str, Any], *, dest_dir: Path, name: str) -> tuple[dict, Path]:
        """Download one entry into ``dest_dir`` as ``name.EXT``; its metadata and the file."""

    @classmethod
    @abc.abstractmethod
    def version(cls) -> str:
        """The version of the library behind it (for stage.json)."""

    @classmethod
    def require(cls) -> None:
        """Raise AudioprepError when the library behind it is not installed."""
        try:
            importlib.import_module(cls.package.replace("-", "_"))
        except ImportError as exc:
            raise AudioprepError(
                f"{cls.package} is not installed ({exc.name}): run `make setup` or "
                f"`pip install '{cls.package}'`."
            ) from None


def _load_bundled() -> None:
    for module in BACKEND_MODULES:
        importlib.import_module(module)


def names() -> list[str]:
    """The registered backends' names: the bundled ones in :data:`BACKEND_MODULES` order (the
    default first), then any other by name, whatever order their modules were imported in."""
    _load_bundled()
    rank = {module: i for i, module in enumerate(BACKEND_MODULES)}
    return sorted(_REGISTRY, key=lambda n: (rank.get(_REGISTRY[n].__module__, len(rank)), n))


def backend_class(name: str) -> type[CrawlBackend]:
    """The backend registered as ``name``; UsageError listing the others if none is."""
    _load_bundled()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"--backend must be one of {', '.join(_REGISTRY)}") from None


def for_url(url: str) -> list[str]:
    """The backends that take ``url``, in registration order."""
    _load_bundled()
    return [n for n in names() if _REGISTRY[n].takes(url)]
