"""The selection language of the analysis config: expressions such as
``"mjj > 200 and (ptj1 >= 30 or not deltaetajj < 2)"`` compiled into polars expressions.

Nothing is evaluated as Python: a small recursive-descent parser reads comparisons between
observable columns and numbers, combined with `and`, `or`, `not` and parentheses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

import polars as pl

from vbsad_batch.config.near_miss import did_you_mean
from vbsad_batch.ingest.lhe import OBSERVABLE_COLUMNS

__all__ = ["SelectionError", "selection_columns", "selection_expr"]

_OBSERVABLES: frozenset[str] = frozenset(OBSERVABLE_COLUMNS)


class SelectionError(ValueError):
    """An invalid selection expression; the message names the offending token and position."""


# --- selection expressions --------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>>=|<=|==|!=|>|<)
      | (?P<paren>[()])
      | (?P<minus>-)
    )""",
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not"})
_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "number", "name", "op", "paren", "minus", "keyword", "end"
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.lastgroup is None:
            start = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise SelectionError(
                f"unexpected character {text[start]!r} at position {start} in {text!r}"
            )
        kind = match.lastgroup
        value = match.group(kind)
        start = match.start(kind)
        if kind == "name" and value in _KEYWORDS:
            kind = "keyword"
        tokens.append(_Token(kind, value, start))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over: or := and ('or' and)*; and := not ('and' not)*;
    not := 'not' not | '(' or ')' | comparison; comparison := operand CMP operand."""

    def __init__(self, text: str, columns: frozenset[str]) -> None:
        self._text = text
        self._columns = columns
        self._tokens = _tokenize(text)
        self._i = 0
        self.used: list[str] = []

    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _next(self) -> _Token:
        token = self._tokens[self._i]
        self._i += 1
        return token

    def _fail(self, token: _Token, expected: str) -> NoReturn:
        found = "end of expression" if token.kind == "end" else repr(token.text)
        raise SelectionError(
            f"expected {expected} at position {token.pos}, found {found} in {self._text!r}"
        )

    def parse(self) -> pl.Expr:
        expr = self._or()
        token = self._peek()
        if token.kind != "end":
            self._fail(token, "'and', 'or' or the end")
        return expr

    def _or(self) -> pl.Expr:
        expr = self._and()
        while self._peek().kind == "keyword" and self._peek().text == "or":
            self._next()
            expr = expr | self._and()
        return expr

    def _and(self) -> pl.Expr:
        expr = self._not()
        while self._peek().kind == "keyword" and self._peek().text == "and":
            self._next()
            expr = expr & self._not()
        return expr

    def _not(self) -> pl.Expr:
        token = self._peek()
        if token.kind == "keyword" and token.text == "not":
            self._next()
            return ~self._not()
        if token.kind == "paren" and token.text == "(":
            self._next()
            expr = self._or()
            closing = self._next()
            if closing.text != ")":
                self._fail(closing, "')'")
            return expr
        return self._comparison()

    def _operand(self) -> tuple[pl.Expr, bool]:
        """An operand and whether it is a column."""
        token = self._next()
        if token.kind == "minus":
            number = self._next()
            if number.kind != "number":
                self._fail(number, "a number after '-'")
            return pl.lit(-float(number.text)), False
        if token.kind == "number":
            return pl.lit(float(token.text)), False
        if token.kind == "name":
            if token.text not in self._columns:
                hint = did_you_mean(token.text, self._columns)
                raise SelectionError(
                    f"unknown column {token.text!r} at position {token.pos} in "
                    f"{self._text!r}{hint}; known: {', '.join(sorted(self._columns))}"
                )
            self.used.append(token.text)
            return pl.col(token.text), True
        self._fail(token, "a column name, a number, 'not' or '('")

    def _comparison(self) -> pl.Expr:
        start = self._peek()
        left, left_is_column = self._operand()
        op = self._next()
        if op.kind != "op":
            self._fail(op, "a comparison (<, <=, >, >=, ==, !=)")
        right, right_is_column = self._operand()
        if not (left_is_column or right_is_column):
            raise SelectionError(
                f"comparison at position {start.pos} compares two numbers in {self._text!r}"
            )
        match op.text:
            case "<":
                return left < right
            case "<=":
                return left <= right
            case ">":
                return left > right
            case ">=":
                return left >= right
            case "==":
                return left == right
            case _:
                return left != right


def selection_expr(selection: str, *, columns: Iterable[str] | None = None) -> pl.Expr:
    """Parse a selection such as ``"mjj > 200 and (ptj1 >= 30 or not deltaetajj < 2)"``.

    The language: comparisons (<, <=, >, >=, ==, !=) between a column name and a number (or two
    column names), combined with `and`, `or`, `not` (precedence not > and > or) and
    parentheses. Numbers are decimal, optionally signed and with an exponent (`1.5e2`). Units
    are those of the columns (GeV, radians). An empty or blank string selects every event.
    Nothing is evaluated as Python.

    Args:
        selection: the expression.
        columns: names allowed; default the observable columns of the ingest.

    Raises:
        SelectionError: a syntax error or an unknown column (named, with its position).
    """
    if not isinstance(selection, str):
        raise SelectionError(f"selection must be a string, got {type(selection).__name__}")
    if not selection.strip():
        return pl.lit(True)
    allowed = _OBSERVABLES if columns is None else frozenset(columns)
    return _Parser(selection, allowed).parse()


def selection_columns(selection: str, *, columns: Iterable[str] | None = None) -> list[str]:
    """The column names a selection uses, in first-use order (validates it like
    `selection_expr`)."""
    if not selection.strip():
        return []
    allowed = _OBSERVABLES if columns is None else frozenset(columns)
    parser = _Parser(selection, allowed)
    parser.parse()
    return list(dict.fromkeys(parser.used))
