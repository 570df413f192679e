"""A small expression language over manifest records, for ``audioprep select --where``.

Parsed by the hand-written tokenizer and recursive-descent parser below: never Python's
``eval``, ``compile`` or ``ast``, so no expression can run code. The language:

- field paths: ``duration``, ``quality.snr_db``, ``source.channel`` (dotted names; a name
  with ``__`` is refused);
- literals: numbers (``12``, ``-3.5``, ``1e-3``), strings (``'en'`` or ``"en"``), ``true``,
  ``false``, ``null``;
- comparisons: ``== != < <= > >=``; ``x in [1, 2, 'a']``, ``x not in [...]``;
  ``x is null``, ``x is not null``, ``x exists``, ``x not exists``;
- ``and``, ``or``, ``not``, parentheses;
- a field path alone holds when the field is ``true`` (``quality_pass``).

**Null.** A missing field is null. A comparison with null is false, whichever operator (so
``x != 3`` is false where ``x`` is missing: ask ``x is null or x != 3`` to keep those too).
``not`` still negates: ``not x > 3`` holds where ``x`` is missing. ``exists`` asks whether the
field is present at all (a field present with the value null exists).

**Types.** ``< <= > >=`` compare numbers; ``== !=`` compare values of one kind (numbers,
strings, booleans). A string compared with a number is refused when both sides are literals
(parse time) and is a per-record error otherwise (evaluation time).

>>> e = parse("quality.snr_db >= 15 and duration < 12")
>>> e.evaluate({"quality": {"snr_db": 20.0}, "duration": 3.0})
True
>>> e.evaluate({"duration": 3.0})
False
>>> e.fields()
['quality.snr_db', 'duration']
>>> parse("__import__('os')")
Traceback (most recent call last):
...
audioprep.text.expr.ExprError: position 1: names with '__' are not field names.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "ExprError",
    "ExprEvalError",
    "Expression",
    "parse",
]

#: Longest expression accepted, in characters.
MAX_LENGTH = 100_000
#: Deepest nesting of parentheses and ``not`` accepted.
MAX_DEPTH = 64

_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false", "exists"})
_COMPARE = ("==", "!=", "<=", ">=", "<", ">")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS = frozenset("0123456789")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | _DIGITS
_NULL = object()  # a missing field, told apart from a present null only by ``exists``


class ExprError(ValueError):
    """The expression cannot be parsed: one sentence naming the position (1-based)."""


class ExprEvalError(ValueError):
    """The expression cannot be evaluated on one record (a string compared with a number)."""


@dataclasses.dataclass(frozen=True)
class _Tok:
    kind: str  # "name" "num" "str" "op" "kw" "end"
    text: str
    pos: int  # 0-based offset into the expression
    value: Any = None


def _fail(pos: int, message: str) -> ExprError:
    return ExprError(f"position {pos + 1}: {message}")


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER.match(text, i)
            assert m is not None  # a digit always matches
            end = m.end()
            if end < n and text[end] in _NAME_CHARS:
                raise _fail(i, f"{text[i : end + 1]!r} is neither a number nor a field name.")
            value = float(m.group())
            if not math.isfinite(value):
                raise _fail(i, f"the number {m.group()[:20]!r} is too large.")
            toks.append(_Tok("num", m.group(), i, value))
            i = end
            continue
        if c in _NAME_START:
            m = _NAME.match(text, i)
            assert m is not None
            word = m.group()
            kind = "kw" if word in _KEYWORDS else "name"
            toks.append(_Tok(kind, word, i, word))
            i = m.end()
            continue
        if c in "'\"":
            j, chars = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                chars.append(text[j])
                j += 1
            if j >= n:
                raise _fail(i, "the string is not closed.")
            toks.append(_Tok("str", text[i : j + 1], i, "".join(chars)))
            i = j + 1
            continue
        two = text[i : i + 2]
        if two in ("==", "!=", "<=", ">="):
            toks.append(_Tok("op", two, i))
            i += 2
            continue
        if c in "<>()[],.-":
            toks.append(_Tok("op", c, i))
            i += 1
            continue
        shown = two if two in ("**", "//", "&&", "||", "=>", "->") else c
        if c == "=":
            raise _fail(i, "unknown operator '='; write '==' to compare.")
        raise _fail(i, f"unknown operator {shown!r}.")
    toks.append(_Tok("end", "", n))
    return toks


# --- the tree -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Field:
    path: tuple[str, ...]
    pos: int

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclasses.dataclass(frozen=True)
class Literal:
    value: Any  # float, str, bool or None
    pos: int


@dataclasses.dataclass(frozen=True)
class Compare:
    op: str
    left: Field | Literal
    right: Field | Literal
    pos: int


@dataclasses.dataclass(frozen=True)
class Member:
    item: Field | Literal
    options: tuple[Literal, ...]
    negate: bool
    pos: int


@dataclasses.dataclass(frozen=True)
class Check:
    what: str  # "null" "notnull" "exists" "notexists" "true"
    item: Field | Literal
    pos: int


@dataclasses.dataclass(frozen=True)
class Not:
    operand: Node
    pos: int


@dataclasses.dataclass(frozen=True)
class BoolOp:
    op: str  # "and" "or"
    operands: tuple[Node, ...]
    pos: int


Node = Compare | Member | Check | Not | BoolOp


def _kind(value: Any) -> str:
    if value is None or value is _NULL:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__ if not isinstance(value, dict | list) else "object"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def _is(self, kind: str, text: str | None = None) -> bool:
        tok = self.tok
        return tok.kind == kind and (text is None or tok.text == text)

    def _expect(self, kind: str, text: str, what: str) -> _Tok:
        if not self._is(kind, text):
            raise _fail(self.tok.pos, f"expected {what}, found {self._show(self.tok)}.")
        return self._next()

    @staticmethod
    def _show(tok: _Tok) -> str:
        return "the end of the expression" if tok.kind == "end" else repr(tok.text[:40])

    def _enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _fail(pos, f"the expression nests deeper than {MAX_DEPTH} levels.")

    def parse(self) -> Node:
        node = self._or()
        if not self._is("end"):
            tok = self.tok
            if tok.text == ")":
                raise _fail(tok.pos, "')' has no matching '('.")
            raise _fail(tok.pos, f"expected 'and', 'or' or the end, found {self._show(tok)}.")
        return node

    def _or(self) -> Node:
        pos = self.tok.pos
        items = [self._and()]
        while self._is("kw", "or"):
            self._next()
            items.append(self._and())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items), pos)

    def _and(self) -> Node:
        pos = self.tok.pos
        items = [self._not()]
        while self._is("kw", "and"):
            self._next()
            items.append(self._not())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items), pos)

    def _not(self) -> Node:
        tok = self.tok
        if self._is("kw", "not"):
            self._next()
            self._enter(tok.pos)
            node = Not(self._not(), tok.pos)
            self.depth -= 1
            return node
        if self._is("op", "("):
            self._next()
            self._enter(tok.pos)
            node = self._or()
            if not self._is("op", ")"):
                raise _fail(
                    self.tok.pos,
                    f"expected ')' to close the '(' at position {tok.pos + 1}, "
                    f"found {self._show(self.tok)}.",
                )
            self._next()
            self.depth -= 1
            return node
        return self._comparison()

    def _comparison(self) -> Node:
        start = self.tok
        left = self._operand()
        tok = self.tok
        if tok.kind == "op" and tok.text in _COMPARE:
            self._next()
            right = self._operand()
            node = Compare(tok.text, left, right, tok.pos)
            _check_types(node)
            return node
        if self._is("kw", "in") or (
            self._is("kw", "not") and self.toks[self.i + 1].text in ("in", "exists")
        ):
            negate = self._next().text == "not"
            if negate and self._is("kw", "exists"):
                self._next()
                return Check("notexists", self._need_field(left, "exists", tok), tok.pos)
            if negate:
                self._next()
            return Member(left, self._list(), negate, tok.pos)
        if self._is("kw", "is"):
            self._next()
            negate = self._is("kw", "not")
            if negate:
                self._next()
            self._expect("kw", "null", "'null' after 'is'" if not negate else "'null'")
            return Check("notnull" if negate else "null", left, tok.pos)
        if self._is("kw", "exists"):
            self._next()
            return Check("exists", self._need_field(left, "exists", tok), tok.pos)
        if isinstance(left, Literal) and not isinstance(left.value, bool):
            raise _fail(
                start.pos,
                f"{start.text[:40]!r} alone is not a condition; compare it with something.",
            )
        return Check("true", left, start.pos)

    def _need_field(self, item: Field | Literal, word: str, tok: _Tok) -> Field:
        if not isinstance(item, Field):
            raise _fail(tok.pos, f"'{word}' needs a field name before it.")
        return item

    def _list(self) -> tuple[Literal, ...]:
        self._expect("op", "[", "'[' to start the list after 'in'")
        items: list[Literal] = []
        while not self._is("op", "]"):
            item = self._operand()
            if not isinstance(item, Literal):
                raise _fail(item.pos, "a list after 'in' holds literals (numbers, strings).")
            items.append(item)
            if self._is("op", ","):
                self._next()
            elif not self._is("op", "]"):
                raise _fail(self.tok.pos, f"expected ',' or ']', found {self._show(self.tok)}.")
        self._next()
        return tuple(items)

    def _operand(self) -> Field | Literal:
        tok = self.tok
        if tok.kind == "num":
            self._next()
            self._no_trailer(tok)
            return Literal(tok.value, tok.pos)
        if tok.kind == "op" and tok.text == "-":
            self._next()
            num = self.tok
            if num.kind != "num":
                raise _fail(tok.pos, "'-' goes only before a number (no arithmetic).")
            self._next()
            self._no_trailer(num)
            return Literal(-num.value, tok.pos)
        if tok.kind == "str":
            self._next()
            self._no_trailer(tok)
            return Literal(tok.value, tok.pos)
        if tok.kind == "kw" and tok.text in ("true", "false", "null"):
            self._next()
            self._no_trailer(tok)
            return Literal({"true": True, "false": False, "null": None}[tok.text], tok.pos)
        if tok.kind == "name":
            return self._field()
        if tok.kind == "kw":
            raise _fail(tok.pos, f"expected a field name or a value, found the word {tok.text!r}.")
        raise _fail(tok.pos, f"expected a field name or a value, found {self._show(tok)}.")

    def _no_trailer(self, tok: _Tok) -> None:
        nxt = self.tok
        if nxt.kind == "op" and nxt.text in ".([":
            raise _fail(nxt.pos, f"{tok.text[:40]!r} is a value: it has no attributes or calls.")

    def _field(self) -> Field:
        first = self.tok
        parts: list[str] = []
        while True:
            tok = self.tok
            if tok.kind not in ("name", "kw"):
                raise _fail(tok.pos, f"expected a field name after '.', found {self._show(tok)}.")
            if "__" in tok.text:
                raise _fail(tok.pos, "names with '__' are not field names.")
            parts.append(tok.text)
            self._next()
            if self._is("op", ".") and self.toks[self.i + 1].kind in ("name", "kw"):
                self._next()
                continue
            break
        nxt = self.tok
        if nxt.kind == "op" and nxt.text == "(":
            raise _fail(nxt.pos, "calls are not allowed; compare field values instead.")
        if nxt.kind == "op" and nxt.text == "[":
            raise _fail(nxt.pos, "indexing is not allowed; use a dotted field path.")
        if nxt.kind == "op" and nxt.text == ".":
            raise _fail(nxt.pos, "expected a field name after '.'.")
        return Field(tuple(parts), first.pos)


def _check_types(node: Compare) -> None:
    """Refuse, at parse time, a comparison whose literal sides cannot compare."""
    lits = [s for s in (node.left, node.right) if isinstance(s, Literal) and s.value is not None]
    kinds = {_kind(s.value) for s in lits}
    if node.op in ("<", "<=", ">", ">="):
        for s in lits:
            if _kind(s.value) != "number":
                raise _fail(
                    s.pos,
                    f"{node.op!r} compares numbers, and {_literal_text(s.value)} is a "
                    f"{_kind(s.value)}.",
                )
    if len(kinds) > 1:
        raise _fail(
            node.pos,
            f"cannot compare a {_kind(node.left.value)} with a {_kind(node.right.value)}.",  # type: ignore[union-attr]
        )


def _literal_text(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


# --- evaluation ---------------------------------------------------------------------------


def _lookup(record: Any, path: tuple[str, ...]) -> Any:
    cur = record
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return _NULL
        cur = cur[part]
    return cur


class _Eval:
    def __init__(self, record: Any) -> None:
        self.record = record
        self.read: dict[str, Any] = {}

    def value(self, side: Field | Literal) -> Any:
        if isinstance(side, Literal):
            return side.value
        value = _lookup(self.record, side.path)
        self.read[side.name] = None if value is _NULL else value
        return value

    def run(self, node: Node) -> bool:
        if isinstance(node, BoolOp):
            if node.op == "and":
                return all(self.run(n) for n in node.operands)
            return any(self.run(n) for n in node.operands)
        if isinstance(node, Not):
            return not self.run(node.operand)
        if isinstance(node, Check):
            value = self.value(node.item)
            if node.what == "null":
                return value is None or value is _NULL
            if node.what == "notnull":
                return not (value is None or value is _NULL)
            if node.what == "exists":
                return value is not _NULL
            if node.what == "notexists":
                return value is _NULL
            return value is True
        if isinstance(node, Member):
            value = self.value(node.item)
            if value is None or value is _NULL:
                return False
            found = any(_kind(o.value) == _kind(value) and o.value == value for o in node.options)
            return found != node.negate
        left, right = self.value(node.left), self.value(node.right)
        if left is None or left is _NULL or right is None or right is _NULL:
            return False
        lk, rk = _kind(left), _kind(right)
        if node.op in ("<", "<=", ">", ">="):
            for side, kind, value in ((node.left, lk, left), (node.right, rk, right)):
                if kind != "number":
                    raise ExprEvalError(
                        f"{_side_name(side, value)} is a {kind}, and {node.op!r} compares numbers"
                    )
        elif lk != rk:
            raise ExprEvalError(
                f"cannot compare {_side_name(node.left, left)} ({lk}) with "
                f"{_side_name(node.right, right)} ({rk})"
            )
        if node.op == "==":
            return bool(left == right)
        if node.op == "!=":
            return bool(left != right)
        if node.op == "<":
            return bool(left < right)
        if node.op == "<=":
            return bool(left <= right)
        if node.op == ">":
            return bool(left > right)
        return bool(left >= right)


def _side_name(side: Field | Literal, value: Any) -> str:
    if isinstance(side, Field):
        shown = repr(value) if not isinstance(value, dict | list) else _kind(value)
        return f"{side.name} = {shown[:40]}"
    return _literal_text(value)


@dataclasses.dataclass(frozen=True)
class Expression:
    """A parsed expression: :meth:`evaluate` it on records (dicts)."""

    text: str
    root: Node

    def evaluate(self, record: Any) -> bool:
        """Whether the record satisfies the expression; :class:`ExprEvalError` on a type clash."""
        return _Eval(record).run(self.root)

    def explain(self, record: Any) -> tuple[bool, dict[str, Any]]:
        """``(holds, {field: value read})``: the values evaluation looked at (missing: None)."""
        ev = _Eval(record)
        return ev.run(self.root), ev.read

    def values(self, record: Any) -> dict[str, Any]:
        """Every field the expression names, with its value in ``record`` (missing: None).

        >>> parse("a > 1 or b.c == 'x'").values({"a": 2})
        {'a': 2, 'b.c': None}
        """
        out = {}
        for name in self.fields():
            value = _lookup(record, tuple(name.split(".")))
            out[name] = None if value is _NULL else value
        return out

    def fields(self) -> list[str]:
        """The field paths the expression names, in order of first appearance."""
        out: list[str] = []

        def walk(node: Node | Field | Literal) -> None:
            if isinstance(node, Field):
                if node.name not in out:
                    out.append(node.name)
            elif isinstance(node, BoolOp):
                for n in node.operands:
                    walk(n)
            elif isinstance(node, Not):
                walk(node.operand)
            elif isinstance(node, Compare):
                walk(node.left)
                walk(node.right)
            elif isinstance(node, Member | Check):
                walk(node.item)

        walk(self.root)
        return out


def parse(text: str) -> Expression:
    """Parse ``text``; :class:`ExprError` (one sentence with the position) when it cannot.

    >>> parse("source.channel in ['a', 'b'] and not speaker_similarity < 0.75").fields()
    ['source.channel', 'speaker_similarity']
    >>> try:
    ...     parse("(a > 1")
    ... except ExprError as exc:
    ...     print(exc)
    position 7: expected ')' to close the '(' at position 1, found the end of the expression.
    """
    if not isinstance(text, str):
        raise ExprError("the expression must be text.")
    if len(text) > MAX_LENGTH:
        raise ExprError(
            f"the expression is {len(text):,} characters long; the limit is {MAX_LENGTH:,}."
        )
    if not text.strip():
        raise ExprError("the expression is empty.")
    return Expression(text, _Parser(text).parse())


def to_text(node: Node | Field | Literal) -> str:
    """Render a tree back to expression text (fully parenthesised), for tests and messages.

    >>> to_text(parse("a > 1 and not b is null").root)
    '((a > 1) and (not (b is null)))'
    """
    if isinstance(node, Field):
        return node.name
    if isinstance(node, Literal):
        v = node.value
        if isinstance(v, str):
            return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return _literal_text(v)
    if isinstance(node, BoolOp):
        return "(" + f" {node.op} ".join(to_text(n) for n in node.operands) + ")"
    if isinstance(node, Not):
        return f"(not {to_text(node.operand)})"
    if isinstance(node, Compare):
        return f"({to_text(node.left)} {node.op} {to_text(node.right)})"
    if isinstance(node, Member):
        opts = ", ".join(to_text(o) for o in node.options)
        return f"({to_text(node.item)} {'not in' if node.negate else 'in'} [{opts}])"
    word = {
        "null": "is null",
        "notnull": "is not null",
        "exists": "exists",
        "notexists": "not exists",
    }.get(node.what)
    return to_text(node.item) if word is None else f"({to_text(node.item)} {word})"
