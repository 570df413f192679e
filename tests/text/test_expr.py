"""The select expression language: parsing, refusals and evaluation, with property tests."""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audioprep.text import expr
from audioprep.text.expr import ExprError, ExprEvalError, parse, to_text

REC = {
    "id": "a",
    "duration": 10.0,
    "quality": {"snr_db": 22.5, "ovrl": None},
    "speaker_similarity": 0.8,
    "source": {"channel": "asmr-one"},
    "quality_pass": True,
    "lang": "en",
}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("quality.snr_db >= 20 and duration < 12", True),
        ("quality.snr_db >= 25 or duration < 12", True),
        ("quality.snr_db >= 25 or duration > 12", False),
        ("not quality.snr_db >= 25", True),
        ("source.channel == 'asmr-one'", True),
        ('source.channel != "asmr-one"', False),
        ("source.channel in ['x', 'asmr-one']", True),
        ("source.channel not in ['x', 'asmr-one']", False),
        ("lang in [1, 2]", False),
        ("quality.ovrl is null", True),
        ("quality.ovrl exists", True),
        ("quality.missing is null", True),
        ("quality.missing exists", False),
        ("quality.missing not exists", True),
        ("quality.snr_db is not null", True),
        ("quality_pass", True),
        ("quality_pass == true", True),
        ("not quality_pass", False),
        ("duration", False),  # a bare field holds only when it is true
        ("(duration > 5 and (speaker_similarity >= 0.75))", True),
        ("duration > -1e3", True),
        ("speaker_similarity > .5", True),
        # null: a comparison with null is false, whichever operator
        ("missing > 3", False),
        ("missing != 3", False),
        ("missing == null", False),
        ("quality.ovrl < 3", False),
        ("not missing > 3", True),
        ("missing in [1]", False),
        ("missing not in [1]", False),
        ("missing.deeper.still == 1", False),
        ("true", True),
        ("false or duration == 10", True),
    ],
)
def test_evaluate(text: str, want: bool) -> None:
    assert parse(text).evaluate(REC) is want


def test_explain_lists_the_values_read() -> None:
    holds, read = parse("quality.snr_db >= 30 and duration < 12 or missing > 1").explain(REC)
    assert not holds
    assert read == {"quality.snr_db": 22.5, "missing": None}


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("a > 1 +", 7, "unknown operator '+'"),
        ("a = 1", 3, "unknown operator '='"),
        ("a > 1 && b", 7, "unknown operator '&&'"),
        ("a ** 2 > 1", 3, "unknown operator '**'"),
        ("(a > 1", 7, "to close the '('"),
        ("a > 1)", 6, "no matching '('"),
        ("__import__('os').system('x') == 1", 1, "'__'"),
        ("a.__class__ == 1", 3, "'__'"),
        ("open('x') == 1", 5, "calls are not allowed"),
        ("a.b.c(1) == 1", 6, "calls are not allowed"),
        ("'x'.upper == 1", 4, "is a value"),
        ("a[0] == 1", 2, "indexing is not allowed"),
        ("a. == 1", 2, "after '.'"),
        ("'x' == 1", 5, "cannot compare a string with a number"),
        ("a < 'x'", 5, "compares numbers"),
        ("3", 1, "alone is not a condition"),
        ("a >", 4, "the end of the expression"),
        ("a in 1", 6, "'['"),
        ("a in [b]", 7, "literals"),
        ("a is 3", 6, "'null'"),
        ("'abc == 1", 1, "not closed"),
        ("a > 1 b", 7, "expected 'and', 'or'"),
        ("1abc > 2", 1, "neither a number"),
        ("a > 1e999", 5, "too large"),
        ("a - 1 > 2", 3, "expected 'and', 'or'"),
        ("a > 1; import os", 6, "unknown operator ';'"),
        ("lambda: 1", 7, "unknown operator ':'"),
    ],
)
def test_refusals_name_the_position(text: str, where: int, words: str) -> None:
    with pytest.raises(ExprError) as err:
        parse(text)
    msg = str(err.value)
    assert msg.startswith(f"position {where}: "), msg
    assert words in msg, msg
    assert msg.endswith(".") and "\n" not in msg


def test_deep_nesting_and_length_are_refused_without_recursion_error() -> None:
    limit = sys.getrecursionlimit()
    for text in ("(" * 10_000 + "a > 1" + ")" * 10_000, "not " * 10_000 + "a > 1"):
        with pytest.raises(ExprError, match="nests deeper than"):
            parse(text)
    with pytest.raises(ExprError, match="the limit is"):
        parse("a > 1 and " * 100_000 + "a > 1")  # 1 MB
    with pytest.raises(ExprError, match="empty"):
        parse("   ")
    assert sys.getrecursionlimit() == limit
    # nesting up to the limit parses
    depth = expr.MAX_DEPTH
    assert parse("(" * depth + "a > 1" + ")" * depth).evaluate({"a": 2})


def test_type_clash_at_evaluation_is_a_per_record_error() -> None:
    e = parse("lang > 3")
    with pytest.raises(ExprEvalError, match="lang = 'en' is a string"):
        e.evaluate(REC)
    with pytest.raises(ExprEvalError, match="cannot compare"):
        parse("lang == 3").evaluate(REC)
    with pytest.raises(ExprEvalError):
        parse("quality_pass == 1").evaluate(REC)  # a boolean is not a number


# --- properties ----------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "duration", "quality", "snr_db", "x1", "is_ok"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda p: expr.Field(tuple(p), 0))
NUMS = st.floats(allow_nan=False, allow_infinity=False, width=64).map(lambda v: expr.Literal(v, 0))
STRS = st.text(max_size=8).map(lambda v: expr.Literal(v, 0))
LITS = st.one_of(NUMS, STRS, st.sampled_from([True, False]).map(lambda v: expr.Literal(v, 0)))


@st.composite
def leaves(draw: st.DrawFn) -> expr.Node:
    field = draw(PATHS)
    kind = draw(st.sampled_from(["cmp", "in", "test"]))
    if kind == "cmp":
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        lit = draw(NUMS) if op in ("<", "<=", ">", ">=") else draw(LITS)
        return expr.Compare(op, field, lit, 0)
    if kind == "in":
        return expr.Member(field, tuple(draw(st.lists(LITS, max_size=3))), draw(st.booleans()), 0)
    return expr.Check(
        draw(st.sampled_from(["null", "notnull", "exists", "notexists", "true"])), field, 0
    )


TREES = st.recursive(
    leaves(),
    lambda kids: st.one_of(
        kids.map(lambda k: expr.Not(k, 0)),
        st.tuples(st.sampled_from(["and", "or"]), st.lists(kids, min_size=2, max_size=3)).map(
            lambda t: expr.BoolOp(t[0], tuple(t[1]), 0)
        ),
    ),
    max_leaves=8,
)

VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=True),
        st.integers(-5, 5),
        st.text(max_size=4),
    ),
    lambda kids: st.dictionaries(NAMES, kids, max_size=3),
    max_leaves=6,
)
RECORDS = st.dictionaries(NAMES, VALUES, max_size=5)


def _eval(e: expr.Expression, record: dict) -> bool | None:
    try:
        return e.evaluate(record)
    except ExprEvalError:
        return None


@settings(max_examples=300)
@given(TREES, RECORDS)
def test_render_then_parse_is_the_same_expression(tree: expr.Node, record: dict) -> None:
    text = to_text(tree)
    parsed = parse(text)
    assert to_text(parsed.root) == text
    assert _eval(parsed, record) == _eval(expr.Expression(text, tree), record)


@settings(max_examples=300)
@given(TREES, RECORDS)
def test_not_negates_and_de_morgan_holds(tree: expr.Node, record: dict) -> None:
    e = parse(to_text(tree))
    value = _eval(e, record)
    negated = _eval(parse(f"not ({to_text(tree)})"), record)
    if value is not None:
        assert negated is (not value)
    a, b = to_text(tree), "duration > 3"
    lhs = _eval(parse(f"not ({a} and {b})"), record)
    rhs = _eval(parse(f"not ({a}) or not ({b})"), record)
    if lhs is not None and rhs is not None:
        assert lhs == rhs


@settings(max_examples=500)
@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_in_one_sentence(text: str) -> None:
    try:
        e = parse(text)
    except ExprError as err:
        msg = str(err)
        assert msg.endswith(".") and len(msg) < 400
        return
    _eval(e, REC)  # never anything but a clean result or ExprEvalError


ALPHABET = st.sampled_from(
    [
        "a",
        ".",
        "b",
        " ",
        "(",
        ")",
        "[",
        "]",
        ",",
        "'x'",
        "1",
        "-",
        "==",
        "<",
        "and",
        "or",
        "not",
        "in",
        "is",
        "null",
        "exists",
        "__",
        "_",
        "!",
        "=",
        "\\",
    ]
)


@settings(max_examples=500)
@given(st.lists(ALPHABET, max_size=25).map("".join))
def test_token_soup_parses_or_is_refused(text: str) -> None:
    try:
        e = parse(text)
    except ExprError as err:
        assert str(err).startswith(("position ", "the expression"))
        return
    assert isinstance(_eval(e, REC), bool | None)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_round_trip(v: float) -> None:
    e = parse(f"a == {to_text(expr.Literal(v, 0))}")
    assert e.evaluate({"a": v})
    assert not math.isnan(v)
