"""Checks on a transcript against its clip: pure functions, strings and numbers in, a reason out.

Each check returns ``None`` when the transcript passes and one sentence saying why not
otherwise. :func:`run_checks` runs them all and returns ``[(check, reason), ...]``. Nothing
here loads a model or reads a file.

>>> run_checks("", duration=2.0)
[('empty', 'the transcript is empty')]
>>> run_checks("hello world, this is fine", duration=2.0, language="en")
[]
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from audioprep.text.spoken import spoken

#: Characters per second (letters and digits, spaces and punctuation not counted) that speech
#: of each language plausibly has: read and conversational speech sits well inside these;
#: outside them the text does not fit the audio (a hallucination, a missed half, a wrong clip).
CPS_RANGES: dict[str, tuple[float, float]] = {
    "en": (4.0, 30.0),
    "de": (4.0, 30.0),
    "fr": (4.0, 30.0),
    "es": (4.0, 30.0),
    "it": (4.0, 30.0),
    "pt": (4.0, 30.0),
    "nl": (4.0, 30.0),
    "ru": (4.0, 30.0),
    "ko": (1.5, 12.0),  # Hangul syllables: about 5-8 per second in speech
    "ja": (2.0, 16.0),
    "zh": (1.5, 10.0),
    "yue": (1.5, 10.0),
}
DEFAULT_CPS_RANGE = (1.5, 30.0)

#: Text Whisper is known to produce from silence, music or noise (its training subtitles'
#: credits and sign-offs). A transcript that contains a credit, or that is nothing but a
#: sign-off, is rejected.
HALLUCINATION_CREDITS = (
    "subtitles by the amara.org community",
    "amara.org",
    "subtitled by",
    "transcribed by",
    "captions by",
    "untertitel im auftrag des zdf",
    "untertitel der amara.org-community",
    "sous-titres réalisés par",
    "sous-titrage st'501",
    "字幕由amara.org社区提供",
    "字幕志愿者",
    "자막 제공",
    "자막 by",
    "ご視聴ありがとうございました",
)
HALLUCINATION_SIGNOFFS = (
    "thank you for watching",
    "thanks for watching",
    "thank you so much for watching",
    "please subscribe",
    "like and subscribe",
    "don't forget to like and subscribe",
    "see you in the next video",
    "thank you",
    "you",
    "bye",
    "시청해주셔서 감사합니다",
    "시청해 주셔서 감사합니다",
    "구독과 좋아요 부탁드립니다",
    "구독 좋아요 알림설정",
    "감사합니다",
    "mbc 뉴스 이덕영입니다",
    "продолжение следует",
    "спасибо за просмотр",
    "vielen dank fürs zuschauen",
    "merci d'avoir regardé",
    "gracias por ver",
    "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
    "ありがとうございました",
)

#: Unicode script of each language's letters, for the wrong-script check.
_SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "ko": ((0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3130, 0x318F)),
    "ja": ((0x3040, 0x30FF), (0x4E00, 0x9FFF)),
    "zh": ((0x4E00, 0x9FFF), (0x3400, 0x4DBF)),
    "yue": ((0x4E00, 0x9FFF), (0x3400, 0x4DBF)),
    "ru": ((0x0400, 0x04FF),),
    "uk": ((0x0400, 0x04FF),),
    "el": ((0x0370, 0x03FF),),
    "ar": ((0x0600, 0x06FF),),
    "he": ((0x0590, 0x05FF),),
    "hi": ((0x0900, 0x097F),),
    "th": ((0x0E00, 0x0E7F),),
}
_LATIN = ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F))
for _code in ("en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "da", "no", "fi", "tr"):
    _SCRIPTS[_code] = _LATIN
#: Languages written without spaces between words: loops are looked for in characters.
UNSPACED = frozenset({"zh", "ja", "th", "lo", "my", "yue"})


def letters(text: str) -> int:
    """The number of letters and digits in ``text`` (spaces and punctuation not counted).

    >>> letters("Hi, there! 안녕")
    9
    """
    return sum(1 for c in text if c.isalnum())


def normalise(text: str) -> str:
    """Text for comparisons: NFKC, lower case, punctuation removed, spaces collapsed.

    >>> normalise("  Thank you   for WATCHING!! ")
    'thank you for watching'
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(c if (c.isalnum() or c.isspace() or c in "'.-") else " " for c in text)
    text = re.sub(r"(?<!\w)[.'-]|[.'-](?!\w)", " ", text)
    return " ".join(text.split())


_TTS_MAP = str.maketrans(
    {"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "…": "..."}
)
_TTS_KEEP = set(".,?!'\"-:; ")


def normalise_for_tts(text: str) -> str:
    """The normalised text column of an LJSpeech export: NFKC, typographic quotes and dashes
    made plain, symbols other than basic punctuation dropped, spaces collapsed; case and
    numbers kept (no number or abbreviation expansion, which is language-specific).

    >>> normalise_for_tts("“Hello,” she said — twice… ♪ 안녕!")
    '"Hello," she said - twice... 안녕!'
    """
    text = unicodedata.normalize("NFKC", text).translate(_TTS_MAP)
    text = "".join(c if (c.isalnum() or c in _TTS_KEEP or c.isspace()) else " " for c in text)
    return " ".join(text.split())


def check_empty(text: str) -> str | None:
    """Empty (or only punctuation).

    >>> check_empty(" ... "), check_empty("a")
    ('the transcript is empty', None)
    """
    return None if letters(text) else "the transcript is empty"


def cps_range(language: str | None) -> tuple[float, float]:
    """The plausible characters-per-second range of ``language`` (a default for others)."""
    return CPS_RANGES.get((language or "").split("-")[0], DEFAULT_CPS_RANGE)


def spoken_letters(text: str, language: str | None = None) -> int:
    """Letters of ``text`` as spoken (:func:`audioprep.text.spoken.spoken`): what the rate
    checks count, so that "In 1813." counts the 17 letters of "in eighteen thirteen".

    >>> spoken_letters("In 1813.", "en"), letters("In 1813.")
    (18, 6)
    """
    return letters(spoken(text, language))


def check_rate(
    text: str, duration: float, *, bounds: tuple[float, float], language: str | None = None
) -> str | None:
    """Characters per second outside ``bounds`` (low, high), counted on the text as spoken
    in ``language`` (:func:`spoken_letters`: numbers, symbols, abbreviations written out).

    >>> check_rate("x" * 40, 0.5, bounds=(4, 30))
    '80.0 characters per second is outside 4-30 for this clip (0.50 s, 40 characters)'
    >>> check_rate("In 1813.", 1.54, bounds=(4, 30), language="en") is None
    True
    """
    n = spoken_letters(text, language)
    if n == 0 or duration <= 0:
        return None  # the empty check says it
    cps = n / duration
    low, high = bounds
    if cps < low or cps > high:
        return (
            f"{cps:.1f} characters per second is outside {low:g}-{high:g} for this clip "
            f"({duration:.2f} s, {n} characters)"
        )
    return None


def iqr_bounds(values: Sequence[float], *, k: float = 1.5) -> tuple[float, float]:
    """Tukey's fences of ``values``: (Q1 - k·IQR, Q3 + k·IQR), the corpus's own range of
    characters per second (Emilia drops clips outside it). NaN for an empty sequence.

    >>> iqr_bounds([10, 11, 12, 13, 14])
    (8.0, 16.0)
    """
    data = sorted(float(v) for v in values if v is not None and math.isfinite(v))
    if not data:
        return (math.nan, math.nan)

    def quantile(q: float) -> float:
        pos = q * (len(data) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(data) - 1)
        return data[lo] + (data[hi] - data[lo]) * (pos - lo)

    q1, q3 = quantile(0.25), quantile(0.75)
    return (q1 - k * (q3 - q1), q3 + k * (q3 - q1))


def _units(text: str, language: str | None) -> list[str]:
    norm = normalise(text)
    if (language or "") in UNSPACED or (norm and " " not in norm and len(norm) > 20):
        return [c for c in norm if not c.isspace()]
    return norm.split()


def longest_loop(units: Sequence[str], *, max_n: int = 8) -> tuple[int, int, int]:
    """The most-repeated run of one n-gram repeated back to back: ``(n, repeats, start)``.

    >>> longest_loop("a b c b c b c b c d".split())
    (2, 4, 1)
    """
    best = (1, 1 if units else 0, 0)
    size = len(units)
    for n in range(1, max_n + 1):
        for start in range(0, size - 2 * n + 1):
            gram = units[start : start + n]
            reps = 1
            pos = start + n
            while pos + n <= size and units[pos : pos + n] == gram:
                reps += 1
                pos += n
            longer = reps * n > best[0] * best[1]
            if reps > 1 and (longer or (reps * n == best[0] * best[1] and reps > best[1])):
                best = (n, reps, start)
    return best


def compression_ratio(text: str) -> float:
    """zlib compression ratio of the text's UTF-8 bytes (Whisper flags > 2.4 as repetitive).

    >>> round(compression_ratio("la " * 50), 1) > 2.4
    True
    """
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def check_loop(
    text: str, language: str | None = None, *, min_repeats: int = 4, max_ratio: float = 2.4
) -> str | None:
    """A word or phrase repeated back to back (``min_repeats`` times or more, 5 for single
    words and characters), or text that compresses like a loop.

    >>> check_loop("I think that I think that I think that I think that we should go")
    "a 3-word phrase repeats 4 times in a row ('i think that')"
    >>> check_loop("no, no, I said no") is None
    True
    """
    units = _units(text, language)
    n, reps, start = longest_loop(units)
    needed = min_repeats + 1 if n == 1 else min_repeats
    if reps >= needed:
        chars = all(len(u) == 1 for u in units)
        phrase = ("" if chars else " ").join(units[start : start + n])
        what = "word" if n == 1 else f"{n}-word phrase"
        if chars:
            what = "character" if n == 1 else f"{n}-character run"
        return f"a {what} repeats {reps} times in a row ({phrase!r})"
    if len(text.encode("utf-8")) >= 60:
        ratio = compression_ratio(text)
        if ratio > max_ratio:
            return f"the text compresses {ratio:.1f}:1 (over {max_ratio:g}), like a loop"
    return None


def check_hallucination(text: str) -> str | None:
    """A known Whisper hallucination: a subtitle credit anywhere, or a transcript that is
    nothing but a sign-off such as "Thank you for watching".

    >>> check_hallucination("Subtitles by the Amara.org community")
    "a known Whisper hallucination: 'subtitles by the amara.org community'"
    >>> check_hallucination("thank you for the tea, it was lovely") is None
    True
    """
    norm = normalise(text)
    for phrase in HALLUCINATION_CREDITS:
        if normalise(phrase) in norm:
            return f"a known Whisper hallucination: {normalise(phrase)!r}"
    for phrase in HALLUCINATION_SIGNOFFS:
        p = normalise(phrase)
        rest = norm
        while rest.startswith(p):  # "thank you. thank you." counts too
            rest = rest[len(p) :].strip()
        if not rest and norm:
            return f"a known Whisper hallucination: {p!r}"
    return None


def script_share(text: str, language: str) -> float | None:
    """Share of the letters of ``text`` written in ``language``'s script (None: unknown).

    >>> script_share("안녕 hello", "ko")
    0.2857142857142857
    """
    ranges = _SCRIPTS.get(language.split("-")[0])
    chars = [c for c in text if c.isalpha()]
    if ranges is None or not chars:
        return None
    inside = sum(1 for c in chars if any(a <= ord(c) <= b for a, b in ranges))
    return inside / len(chars)


def check_language(
    asked: str | None,
    *,
    text: str = "",
    detected: str | None = None,
    detected_prob: float | None = None,
    asked_prob: float | None = None,
    min_prob: float | None = None,
) -> str | None:
    """The language is not the one asked for, or is too uncertain.

    - ``asked`` None (auto): fails when ``detected_prob`` < ``min_prob``.
    - ``asked`` given: fails when the detector heard another language and gave the asked one
      less than ``min_prob`` (0.5 when not given), or when under half the letters of the text
      are in the asked language's script.

    >>> check_language("ko", text="Hello there", detected="en", detected_prob=0.97, asked_prob=0.01)
    'the speech sounds like en (0.97), not ko (0.01)'
    >>> check_language("ko", text="hello everyone here")
    'the text is not written in ko: 0% of its letters are'
    >>> check_language(None, detected="en", detected_prob=0.4, min_prob=0.8)
    'language en detected with probability 0.40, under --min-language-prob 0.8'
    """
    if asked in (None, "", "auto"):
        if min_prob is not None and detected_prob is not None and detected_prob < min_prob:
            return (
                f"language {detected} detected with probability {detected_prob:.2f}, "
                f"under --min-language-prob {min_prob:g}"
            )
        return None
    threshold = 0.5 if min_prob is None else min_prob
    if (
        detected is not None
        and detected != asked
        and asked_prob is not None
        and asked_prob < threshold
    ):
        prob = "" if detected_prob is None else f" ({detected_prob:.2f})"
        return f"the speech sounds like {detected}{prob}, not {asked} ({asked_prob:.2f})"
    share = script_share(text, asked)
    if share is not None and letters(text) >= 4 and share < 0.5:
        return f"the text is not written in {asked}: {share:.0%} of its letters are"
    return None


def check_word_times(
    words: Iterable[dict[str, Any]], duration: float, *, tolerance: float = 0.25
) -> str | None:
    """Word times outside the clip (beyond ``tolerance`` seconds) or ending before they start.

    >>> check_word_times([{"word": "a", "start": 0.1, "end": 0.3}], 1.0) is None
    True
    >>> check_word_times([{"word": "late", "start": 2.0, "end": 2.4}], 1.0)
    "word 'late' at 2.00-2.40 s lies outside the clip (0-1.00 s)"
    """
    for w in words:
        start, end = float(w["start"]), float(w["end"])
        if start < -tolerance or end > duration + tolerance or end < start:
            return (
                f"word {w.get('word', '')!r} at {start:.2f}-{end:.2f} s lies outside the clip "
                f"(0-{duration:.2f} s)"
            )
    return None


def run_checks(
    text: str,
    *,
    duration: float,
    language: str | None = None,
    asked_language: str | None = None,
    words: Sequence[dict[str, Any]] = (),
    detected: str | None = None,
    detected_prob: float | None = None,
    asked_prob: float | None = None,
    min_language_prob: float | None = None,
    cps_bounds: tuple[float, float] | None = None,
    skip: Iterable[str] = (),
) -> list[tuple[str, str]]:
    """Run every check; ``[(name, reason), ...]`` for those that fail, in a fixed order:
    ``empty``, ``rate``, ``loop``, ``hallucination``, ``language``, ``word_times``.
    An empty transcript fails ``empty`` alone. ``skip`` names checks not to run."""
    skip = set(skip)
    failed: list[tuple[str, str]] = []
    reason = check_empty(text)
    if reason:
        return [] if "empty" in skip else [("empty", reason)]
    lang = language or asked_language
    checks = {
        "rate": lambda: check_rate(
            text, duration, bounds=cps_bounds or cps_range(lang), language=lang
        ),
        "loop": lambda: check_loop(text, lang),
        "hallucination": lambda: check_hallucination(text),
        "language": lambda: check_language(
            asked_language,
            text=text,
            detected=detected,
            detected_prob=detected_prob,
            asked_prob=asked_prob,
            min_prob=min_language_prob,
        ),
        "word_times": lambda: check_word_times(words, duration),
    }
    for name, fn in checks.items():
        if name in skip:
            continue
        reason = fn()
        if reason:
            failed.append((name, reason))
    return failed


def _edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two token lists (substitutions, insertions, deletions)."""
    row = list(range(len(hyp) + 1))
    for i, a in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, b in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a != b))
    return row[-1]


def char_error_rate(reference: str, hypothesis: str) -> float:
    """Character error rate (edit distance over the reference's length), spaces and
    punctuation ignored, after :func:`normalise`.

    >>> char_error_rate("안녕하세요", "안녕하세여")
    0.2
    """
    ref = [c for c in normalise(reference) if c.isalnum()]
    hyp = [c for c in normalise(hypothesis) if c.isalnum()]
    if not ref:
        return float(bool(hyp))
    return _edit_distance(ref, hyp) / len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate after :func:`normalise`.

    >>> word_error_rate("the cat sat", "the cat sat down")
    0.3333333333333333
    """
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    if not ref:
        return float(bool(hyp))
    return _edit_distance(ref, hyp) / len(ref)
