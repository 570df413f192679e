"""select: Keep the records an expression over their fields holds for (score once, choose later).

The expression language is :mod:`audioprep.text.expr` (parsed by the project, never run as
Python): field paths, numbers, strings, comparisons, ``and or not``, ``in [...]``,
``is null``, ``exists``.
"""

from __future__ import annotations

import dataclasses

from audioprep.core.params import param
from audioprep.core.stage import ItemContext, MapStage
from audioprep.errors import ItemError, UsageError
from audioprep.manifests.records import Record
from audioprep.text.expr import ExprError, Expression, ExprEvalError, parse


@dataclasses.dataclass(frozen=True)
class SelectParams:
    where: str = param(
        "",
        help='The condition a record must meet, e.g. "quality.snr_db >= 15 and duration < 12" '
        "(a missing field is null; a comparison with null is false).",
        metavar="EXPR",
    )


class SelectStage(MapStage):
    """Records for which --where holds are kept (audio hard-linked, every field unchanged); the
    others go to rejected.jsonl with the expression and the values of the fields it names. A
    record on which the expression cannot be evaluated (a string compared with a number) goes
    to errors.jsonl.
    Pair it with the filters' --annotate-only (quality_pass, speaker_pass, text_pass,
    dedupe_pass) to score once and choose thresholds later.

    Example: `audioprep select scored/ chosen/ --where "quality.snr_db >= 15 and duration < 12"`
    """

    name = "select"
    version = "1"
    Params = SelectParams

    def check(self) -> None:
        if not self.params.where.strip():
            raise UsageError('--where is required, e.g. --where "quality.snr_db >= 15".')
        try:
            self.expression: Expression = parse(self.params.where)
        except ExprError as exc:
            raise UsageError(f"--where: {exc}") from None

    def _expr(self) -> Expression:
        expression = getattr(self, "expression", None)
        if expression is None:  # a worker built from the params alone
            self.check()
            expression = self.expression
        return expression

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        expression = self._expr()
        try:
            holds = expression.evaluate(record)
        except ExprEvalError as exc:
            raise ItemError(f"--where cannot be evaluated: {exc}") from None
        if not holds:
            values = expression.values(record)  # every field it names, not only those read
            shown = ", ".join(f"{k} = {_short(v)}" for k, v in values.items())
            ctx.reject(
                record,
                f"{expression.text} is false ({shown})" if shown else f"{expression.text} is false",
                expression=expression.text,
                values=values,
            )
            return []
        if "audio" not in record:
            return [dict(record)]
        src = ctx.input_audio(record)
        return [{**record, "audio": ctx.link(src, f"{record['id']}{src.suffix}")}]


def _short(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    text = repr(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
