"""The selection language of the analysis config: expressions such as
``"mjj > 200 and (ptj1 >= 30 or not deltaetajj < 2)"`` compiled into polars expressions.

Nothing is evaluated as Python: a small recursive-descent parser reads comparisons between
observable columns and numbers, combined with `and`, `or`, `not` and parentheses, into a
syntax tree (`parse_selection`, no polars: the config validates its selection without it),
which `selection_expr` compiles into a polars expression.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NoReturn, TypeAlias

if TYPE_CHECKING:
    import polars as pl

from vbsad_batch.config.near_miss import did_you_mean
from vbsad_batch.ingest.lhe import OBSERVABLE_COLUMNS

__all__ = [
    "BinaryOp",
    "Column",
    "Compare",
    "Node",
    "Not",
    "Number",
    "SelectionError",
    "parse_selection",
    "selection_columns",
    "selection_expr",
]

_OBSERVABLES: frozenset[str] = frozenset(OBSERVABLE_COLUMNS)


@dataclass(frozen=True, slots=True)
class Column:
    """An observable column (GeV, radians) in a comparison."""

    name: str


@dataclass(frozen=True, slots=True)
class Number:
    """A number in a comparison."""

    value: float


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right``, op one of <, <=, >, >=, ==, !=."""

    op: str
    left: Column | Number
    right: Column | Number


@dataclass(frozen=True, slots=True)
class Not:
    """``not node``."""

    node: Node


@dataclass(frozen=True, slots=True)
class BinaryOp:
    """``left and right`` or ``left or right``."""

    op: Literal["and", "or"]
    left: Node
    right: Node


Node: TypeAlias = Compare | Not | BinaryOp
"""A node of a selection's syntax tree (see `parse_selection`)."""

_COMPARE = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


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

    def parse(self) -> Node:
        node = self._or()
        token = self._peek()
        if token.kind != "end":
            self._fail(token, "'and', 'or' or the end")
        return node

    def _or(self) -> Node:
        node = self._and()
        while self._peek().kind == "keyword" and self._peek().text == "or":
            self._next()
            node = BinaryOp("or", node, self._and())
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._peek().kind == "keyword" and self._peek().text == "and":
            self._next()
            node = BinaryOp("and", node, self._not())
        return node

    def _not(self) -> Node:
        token = self._peek()
        if token.kind == "keyword" and token.text == "not":
            self._next()
            return Not(self._not())
        if token.kind == "paren" and token.text == "(":
            self._next()
            node = self._or()
            closing = self._next()
            if closing.text != ")":
                self._fail(closing, "')'")
            return node
        return self._comparison()

    def _operand(self) -> Column | Number:
        token = self._next()
        if token.kind == "minus":
            number = self._next()
            if number.kind != "number":
                self._fail(number, "a number after '-'")
            return Number(-float(number.text))
        if token.kind == "number":
            return Number(float(token.text))
        if token.kind == "name":
            if token.text not in self._columns:
                hint = did_you_mean(token.text, self._columns)
                raise SelectionError(
                    f"unknown column {token.text!r} at position {token.pos} in "
                    f"{self._text!r}{hint}; known: {', '.join(sorted(self._columns))}"
                )
            self.used.append(token.text)
            return Column(token.text)
        self._fail(token, "a column name, a number, 'not' or '('")

    def _comparison(self) -> Node:
        start = self._peek()
        left = self._operand()
        op = self._next()
        if op.kind != "op":
            self._fail(op, "a comparison (<, <=, >, >=, ==, !=)")
        right = self._operand()
        if isinstance(left, Number) and isinstance(right, Number):
            raise SelectionError(
                f"comparison at position {start.pos} compares two numbers in {self._text!r}"
            )
        return Compare(op.text, left, right)


def _to_polars(node: Node) -> pl.Expr:
    import polars as pl  # noqa: PLC0415 - the config itself loads without polars

    def operand(value: Column | Number) -> pl.Expr:
        return pl.col(value.name) if isinstance(value, Column) else pl.lit(value.value)

    if isinstance(node, Compare):
        result: pl.Expr = _COMPARE[node.op](operand(node.left), operand(node.right))
        return result
    if isinstance(node, Not):
        return ~_to_polars(node.node)
    left, right = _to_polars(node.left), _to_polars(node.right)
    return left & right if node.op == "and" else left | right


def parse_selection(selection: str, *, columns: Iterable[str] | None = None) -> Node | None:
    """The syntax tree of a selection (None for an empty one: every event), validated.

    Nodes: `BinaryOp` ("and", "or"), `Not`, `Compare` of `Column`s and `Number`s. No polars
    needed.

    Raises:
        SelectionError: a syntax error or an unknown column (named, with its position).
    """
    if not isinstance(selection, str):
        raise SelectionError(f"selection must be a string, got {type(selection).__name__}")
    if not selection.strip():
        return None
    allowed = _OBSERVABLES if columns is None else frozenset(columns)
    return _Parser(selection, allowed).parse()


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
    node = parse_selection(selection, columns=columns)
    if node is None:
        import polars as pl  # noqa: PLC0415 - the config itself loads without polars

        return pl.lit(True)
    return _to_polars(node)


def selection_columns(selection: str, *, columns: Iterable[str] | None = None) -> list[str]:
    """The column names a selection uses, in first-use order (validates it like
    `selection_expr`)."""
    if not selection.strip():
        return []
    allowed = _OBSERVABLES if columns is None else frozenset(columns)
    parser = _Parser(selection, allowed)
    parser.parse()
    return list(dict.fromkeys(parser.used))
