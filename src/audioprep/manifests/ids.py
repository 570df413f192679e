"""Stable, filesystem-safe item ids."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def is_safe_id(value: object) -> bool:
    """Return True if ``value`` is a usable id: ASCII letters, digits, ``._-``, at most 200 chars.

    >>> is_safe_id("talk_01-3fa2c1d0"), is_safe_id("../etc"), is_safe_id("a b")
    (True, False, False)
    """
    return isinstance(value, str) and bool(_SAFE_ID.match(value)) and ".." not in value


def slugify(text: str, *, max_len: int = 60) -> str:
    """Turn any text (unicode, spaces, shell metacharacters) into a safe id fragment.

    >>> slugify("Épisode 1: l'été $(rm -rf)")
    'Episode_1_l_ete_rm_-rf'
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _UNSAFE_CHARS.sub("_", ascii_text).strip("._-")
    slug = re.sub(r"\.{2,}", ".", re.sub(r"_+", "_", slug))[:max_len].strip("._-")
    return slug or "item"


def make_id(name: str, key: str) -> str:
    """Build a stable id from a readable ``name`` and a unique ``key`` (hashed to 8 hex digits).

    >>> make_id("my talk", "/data/my talk.mp3")
    'my_talk-e6729899'
    """
    digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{slugify(name)}-{digest}"
