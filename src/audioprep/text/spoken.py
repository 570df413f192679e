"""Text as it is spoken: numbers, symbols and common abbreviations written out, per language.

What the rate checks count (:func:`audioprep.text.checks.check_rate`): "In 1813." is read
"in eighteen thirteen", 17 letters, not 6. English and Korean are expanded (years, ordinals,
decimals, currencies, percentages, times, symbols, abbreviations); in other languages each
digit is counted as a word of its own (a fallback: every language reads numbers its way).
Pure functions, strings in and out.

>>> spoken("In 1813.", "en")
'In eighteen thirteen.'
>>> spoken("Mr. Smith paid $12.50 on the 3rd.", "en")
'mister Smith paid twelve dollars fifty cents on the third.'
>>> spoken("1813년에 3.5%", "ko")
'천팔백십삼년에 삼 점 오 퍼센트'
>>> spoken("Im Jahr 1813", "de")
'Im Jahr 1 8 1 3'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_ORDINAL = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_DIGITS_EN = dict(enumerate(_ONES[:10]))


def number_en(n: int) -> str:
    """An integer in English words (digit by digit from 10^15 up).

    >>> number_en(0), number_en(21), number_en(1_000_005)
    ('zero', 'twenty-one', 'one million five')
    >>> number_en(342)
    'three hundred forty-two'
    """
    if n < 0:
        return "minus " + number_en(-n)
    if n >= 10**15:
        return " ".join(_DIGITS_EN[int(d)] for d in str(n))
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_en(rest)}" if rest else "")
    for scale, word in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return f"{number_en(high)} {word}" + (f" {number_en(rest)}" if rest else "")
    raise AssertionError(n)  # pragma: no cover


def year_en(n: int) -> str:
    """A year as read aloud: 1813 "eighteen thirteen", 1905 "nineteen oh five", 2005 "two
    thousand five", 1900 "nineteen hundred".

    >>> year_en(1813), year_en(1905), year_en(2005), year_en(1900), year_en(2024)
    ('eighteen thirteen', 'nineteen oh five', 'two thousand five', 'nineteen hundred', 'twenty twenty-four')
    """  # noqa: E501
    high, low = divmod(n, 100)
    if 2000 <= n <= 2009 or not 1100 <= n <= 2099:
        return number_en(n)
    if low == 0:
        return f"{number_en(high)} hundred"
    if low < 10:
        return f"{number_en(high)} oh {number_en(low)}"
    return f"{number_en(high)} {number_en(low)}"


def ordinal_en(n: int) -> str:
    """An ordinal in English words.

    >>> ordinal_en(1), ordinal_en(22), ordinal_en(40), ordinal_en(112)
    ('first', 'twenty-second', 'fortieth', 'one hundred twelfth')
    """
    words = number_en(n)
    head, sep, last = words.rpartition("-" if "-" in words.split(" ")[-1] else " ")
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


_ABBREVIATIONS_EN = {
    "mr.": "mister",
    "mrs.": "missus",
    "ms.": "miz",
    "dr.": "doctor",
    "st.": "saint",
    "jr.": "junior",
    "sr.": "senior",
    "prof.": "professor",
    "mt.": "mount",
    "vs.": "versus",
    "etc.": "et cetera",
    "e.g.": "for example",
    "i.e.": "that is",
    "no.": "number",
    "approx.": "approximately",
    "dept.": "department",
    "km": "kilometers",
    "kg": "kilograms",
    "cm": "centimeters",
    "mm": "millimeters",
}
_SYMBOLS_EN = {
    "&": " and ",
    "%": " percent",
    "+": " plus ",
    "=": " equals ",
    "@": " at ",
    "°": " degrees",
    "#": " number ",
    "×": " times ",
}
_CURRENCY_EN = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "sen", "sen"),
    "₩": ("won", "won", "jeon", "jeon"),
}

_NUM = r"\d{1,3}(?:,\d{3})+|\d+"
_CURRENCY_RE = re.compile(r"([$£€¥₩])\s?(" + _NUM + r")(?:\.(\d{1,2}))?(?!\d)")
_DECIMAL_RE = re.compile(r"(" + _NUM + r")\.(\d+)")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_TIME_RE = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_YEAR_RE = re.compile(r"(?<![\d.,])(1[1-9]\d\d|20\d\d)(?![\d,]|\.\d)(s?)")
_INT_RE = re.compile(_NUM)


def _plural_year(words: str, s: str) -> str:
    if not s:
        return words
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _english(text: str) -> str:
    def abbreviation(m: re.Match[str]) -> str:
        return _ABBREVIATIONS_EN[m.group(0).lower()]

    pattern = "|".join(
        (r"(?<![\w.])" + re.escape(a) + (r"(?!\w)" if a.endswith(".") else r"\b"))
        for a in sorted(_ABBREVIATIONS_EN, key=len, reverse=True)
    )
    text = re.sub(r"(?<=\d)\s?(" + "|".join(("km", "kg", "cm", "mm")) + r")\b", r" \1", text)
    text = re.sub(pattern, abbreviation, text, flags=re.IGNORECASE)

    def currency(m: re.Match[str]) -> str:
        one, many, sub_one, sub_many = _CURRENCY_EN[m.group(1)]
        whole = int(m.group(2).replace(",", ""))
        out = f"{number_en(whole)} {one if whole == 1 else many}"
        if m.group(3):
            cents = int(m.group(3).ljust(2, "0"))
            if cents:
                out += f" {number_en(cents)} {sub_one if cents == 1 else sub_many}"
        return out

    text = _CURRENCY_RE.sub(currency, text)
    text = _TIME_RE.sub(
        lambda m: (
            number_en(int(m.group(1)))
            + (
                ""
                if m.group(2) == "00"
                else (" oh " if m.group(2)[0] == "0" else " ") + number_en(int(m.group(2)))
            )
        ),
        text,
    )
    text = _ORDINAL_RE.sub(lambda m: ordinal_en(int(m.group(1))), text)
    text = _DECIMAL_RE.sub(
        lambda m: (
            f"{number_en(int(m.group(1).replace(',', '')))} point "
            + " ".join(_DIGITS_EN[int(d)] for d in m.group(2))
        ),
        text,
    )
    text = _YEAR_RE.sub(lambda m: _plural_year(year_en(int(m.group(1))), m.group(2)), text)
    text = _INT_RE.sub(lambda m: number_en(int(m.group(0).replace(",", ""))), text)
    return _symbols(text, _SYMBOLS_EN)


_KO_DIGITS = "영일이삼사오육칠팔구"
_KO_SMALL = ((1000, "천"), (100, "백"), (10, "십"))
_KO_GROUPS = ("", "만", "억", "조", "경")


def number_ko(n: int) -> str:
    """An integer in Sino-Korean numerals (digit by digit from 10^20 up).

    >>> number_ko(0), number_ko(1813), number_ko(10000), number_ko(20_503)
    ('영', '천팔백십삼', '만', '이만오백삼')
    """
    if n < 0:
        return "마이너스 " + number_ko(-n)
    if n == 0:
        return _KO_DIGITS[0]
    if n >= 10**20:
        return "".join(_KO_DIGITS[int(d)] for d in str(n))
    out = []
    for i, unit in enumerate(_KO_GROUPS):
        group = (n // 10 ** (4 * i)) % 10000
        if not group:
            continue
        words = ""
        rest = group
        for value, name in _KO_SMALL:
            digit, rest = divmod(rest, value)
            if digit:
                words += ("" if digit == 1 else _KO_DIGITS[digit]) + name
        if rest:
            words += _KO_DIGITS[rest]
        if unit == "만" and group == 1:
            words = ""
        out.append(words + unit)
    return "".join(reversed(out))


_SYMBOLS_KO = {
    "%": " 퍼센트",
    "&": " 앤드 ",
    "+": " 플러스 ",
    "=": " 는 ",
    "@": " 골뱅이 ",
    "°": " 도",
    "×": " 곱하기 ",
}
_CURRENCY_KO = {"$": "달러", "£": "파운드", "€": "유로", "¥": "엔", "₩": "원"}


def _korean(text: str) -> str:
    def currency(m: re.Match[str]) -> str:
        out = number_ko(int(m.group(2).replace(",", "")))
        if m.group(3):
            out += " 점 " + " ".join(_KO_DIGITS[int(d)] for d in m.group(3))
        return f"{out} {_CURRENCY_KO[m.group(1)]}"

    text = _CURRENCY_RE.sub(currency, text)
    text = _DECIMAL_RE.sub(
        lambda m: (
            f"{number_ko(int(m.group(1).replace(',', '')))} 점 "
            + " ".join(_KO_DIGITS[int(d)] for d in m.group(2))
        ),
        text,
    )
    text = _INT_RE.sub(lambda m: _integer_ko(m.group(0)), text)
    return _symbols(text, _SYMBOLS_KO)


def _integer_ko(digits: str) -> str:
    """A written integer in Korean: digit by digit where it has leading zeros ("007", "00": a
    code, not a quantity), else as a number.

    >>> _integer_ko("00"), _integer_ko("1,813")
    ('영영', '천팔백십삼')
    """
    plain = digits.replace(",", "")
    if len(plain) > 1 and plain.startswith("0"):
        return "".join(_KO_DIGITS[int(d)] for d in plain)
    return number_ko(int(plain))


def _fallback(text: str) -> str:
    text = re.sub(r"(?<=\d)[,.](?=\d)", " ", text)
    return re.sub(r"\d", lambda m: f" {m.group(0)} ", text)


def _symbols(text: str, table: dict[str, str]) -> str:
    for symbol, words in table.items():
        text = text.replace(symbol, words)
    return text


_LANGUAGES: dict[str, Callable[[str], str]] = {"en": _english, "ko": _korean}


def spoken(text: str, language: str | None = None) -> str:
    """``text`` as spoken in ``language`` (NFKC first; spaces collapsed). Languages without
    rules here get each digit as a word of its own. ``None`` means English.

    >>> spoken("the 1990s, 10:05, 25% & 2nd", "en")
    'the nineteen nineties, ten oh five, twenty-five percent and second'
    """
    lang = (language or "en").split("-")[0].lower()
    text = unicodedata.normalize("NFKC", text)
    text = _LANGUAGES.get(lang, _fallback)(text)
    text = re.sub(r"\s+([.,!?;:])", r"\1", text)
    return " ".join(text.split())
