"""Text as spoken (audioprep.text.spoken) and the rate check that counts it: properties over
many numbers and strings (hypothesis), and the cases the rate check must get right."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from audioprep.text.checks import check_rate, letters, run_checks, spoken_letters
from audioprep.text.spoken import number_en, number_ko, ordinal_en, spoken, year_en

WORDS_EN = re.compile(r"^[a-z]+(?:[- ][a-z]+)*$")
HANGUL = re.compile(r"^[\uac00-\ud7a3]+$")


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_english_numbers_are_words_and_differ(n: int) -> None:
    words = number_en(n)
    assert WORDS_EN.match(words), words
    if n:
        assert number_en(n - 1) != words


@given(st.integers(min_value=0, max_value=10**20 - 1))
def test_korean_numbers_are_hangul_and_differ(n: int) -> None:
    words = number_ko(n)
    assert HANGUL.match(words), words
    if n:
        assert number_ko(n - 1) != words


def test_every_english_number_below_a_hundred_thousand_is_read_differently() -> None:
    assert len({number_en(n) for n in range(100_000)}) == 100_000
    assert len({number_ko(n) for n in range(100_000)}) == 100_000


@given(st.integers(min_value=1, max_value=10**6))
def test_ordinals_end_like_ordinals(n: int) -> None:
    assert re.search(r"(first|second|third|th)$", ordinal_en(n)), ordinal_en(n)


@given(st.integers(min_value=1100, max_value=2099))
def test_years_are_words(n: int) -> None:
    assert WORDS_EN.match(year_en(n)), year_en(n)


TEXT = st.lists(
    st.sampled_from(
        list("abc XYZ.,!?$£€₩%&+@#:-0123456789가나다") + ["Mr. ", "3rd", "1813", "e.g."]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300)
@given(TEXT, st.sampled_from(["en", "ko"]))
def test_no_digit_survives_in_english_or_korean(text: str, language: str) -> None:
    out = spoken(text, language)
    assert not re.search(r"\d", out), (text, out)


@settings(max_examples=300)
@given(TEXT, st.sampled_from(["en", "ko", "de", "ja", None]))
@example("10", "ko")  # found by hypothesis in a full run: 십 is one letter for two digits
def test_speaking_never_loses_letters_and_is_idempotent(text: str, language: str | None) -> None:
    out = spoken(text, language)
    if language == "ko":  # 10 is 십, 100 백: one syllable for a number of several digits
        at_least = letters(re.sub(r"\d", "", text)) + len(re.findall(r"\d+", text))
    else:
        at_least = letters(text)
    assert letters(out) >= at_least, (text, out)
    assert spoken(out, language) == out


@given(st.text(alphabet="0123456789", min_size=1, max_size=12), st.sampled_from(["de", "fr"]))
def test_other_languages_count_each_digit_as_a_word(digits: str, language: str) -> None:
    out = spoken(f"x {digits} y", language)
    assert out.split() == ["x", *digits, "y"]


def test_the_rate_check_counts_what_is_spoken() -> None:
    assert check_rate("In 1813.", 1.54, bounds=(4.0, 30.0), language="en") is None
    assert letters("In 1813.") / 1.54 < 4.0  # what the digit count used to reject
    assert spoken_letters("In 1813.", "en") == len("ineighteenthirteen")
    hallucination = "Thanks to everyone who made this possible."  # 35 letters over 1 s
    assert check_rate("x" * 40, 1.0, bounds=(4.0, 30.0), language="en") is not None
    assert check_rate(hallucination + " 10", 1.0, bounds=(4.0, 30.0), language="en")
    assert [n for n, _ in run_checks("In 1813.", duration=1.54, language="en")] == []
    # Korean: digits become syllables (1813 is 5 syllables, not 4 digits)
    assert spoken_letters("1813년", "ko") == len("천팔백십삼년")
    assert check_rate("2024년", 1.0, bounds=(1.5, 12.0), language="ko") is None


def test_currencies_decimals_times_symbols() -> None:
    assert spoken("$1.01", "en") == "one dollar one cent"
    assert spoken("£3", "en") == "three pounds"
    assert spoken("pi is 3.14", "en") == "pi is three point one four"
    assert spoken("at 9:30, 50% & more", "en") == "at nine thirty, fifty percent and more"
    assert spoken("Dr. Who vs. the 21st century", "en") == (
        "doctor Who versus the twenty-first century"
    )
    assert spoken("₩5,000", "ko") == "오천 원"
    assert spoken("3.5%", "ko") == "삼 점 오 퍼센트"
