"""A small, strict subset of the Confluence Query Language (CQL): a tokenizer and a recursive-descent parser.

Grammar (keywords and field names are case-insensitive)::

    query   := expr [ "ORDER" "BY" order ("," order)* ]
    order   := ("title" | "created" | "lastmodified") ["ASC" | "DESC"]
    expr    := term ("OR" term)*
    term    := factor ("AND" factor)*
    factor  := "NOT" factor | "(" expr ")" | clause
    clause  := field ("=" | "!=" | "~" | "!~") value | field ["NOT"] "IN" "(" value ("," value)* ")"
    value   := "double quoted" | 'single quoted' | word

Fields and their operators, as Confluence allows them: ``type`` (page, blogpost, comment, attachment), ``space``
(key), ``label``, ``id``, ``parent``, ``ancestor``: ``=``, ``!=``, ``IN``, ``NOT IN``; ``title``: ``=``, ``!=``
(whole title) and ``~``, ``!~``; ``text``: ``~``, ``!~``. ``~`` is a case-insensitive "contains" (a ``*``
wildcard is ignored), which is looser than Confluence's word search. Anything else raises :class:`CqlError`;
the search route answers it with Confluence's 400 "Could not parse cql".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CONTENT_TYPES = ("page", "blogpost", "comment", "attachment")
ORDER_FIELDS = ("title", "created", "lastmodified")
_EQUALITY = ("=", "!=", "in", "not in")
FIELD_OPERATORS: dict[str, tuple[str, ...]] = {
    "type": _EQUALITY,
    "space": _EQUALITY,
    "label": _EQUALITY,
    "id": _EQUALITY,
    "parent": _EQUALITY,
    "ancestor": _EQUALITY,
    "title": ("=", "!=", "~", "!~"),
    "text": ("~", "!~"),
}
_KEYWORDS = ("and", "or", "not", "in", "order", "by", "asc", "desc")
_TOKEN = re.compile(
    r"""\s*(?:(?P<op>!=|!~|=|~|\(|\)|,)|"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^'\\]|\\.)*)'"""
    r"""|(?P<word>[\w.:\-*]+))""",
    re.S,
)
_ESCAPE = re.compile(r"\\(.)", re.S)


class CqlError(ValueError):
    """The query is outside the supported CQL subset (or not CQL at all)."""


@dataclass(frozen=True)
class Token:
    """A token: ``kind`` is ``op``, ``string``, ``word`` or ``end``."""

    kind: str
    text: str


@dataclass(frozen=True)
class Clause:
    """``field op values`` (``values`` has one item unless ``op`` is ``in``/``not in``)."""

    field: str
    op: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Not:
    """The negation of a node."""

    node: Node


@dataclass(frozen=True)
class BoolOp:
    """``and`` or ``or`` of several nodes."""

    op: str
    nodes: tuple[Node, ...]


Node = Clause | Not | BoolOp


@dataclass(frozen=True)
class Query:
    """A parsed query: the condition and the ``ORDER BY`` items (field, descending)."""

    where: Node
    order: tuple[tuple[str, bool], ...] = ()


@dataclass
class Doc:
    """What a query is evaluated against: one piece of content."""

    type: str
    id: str
    space_key: str
    title: str
    text: str
    labels: set[str] = field(default_factory=set)
    parent: str | None = None
    ancestors: set[str] = field(default_factory=set)


def tokenize(cql: str) -> list[Token]:
    """Split a query into tokens; raise :class:`CqlError` on a character no token starts with."""
    tokens: list[Token] = []
    position = 0
    while cql[position:].strip():
        found = _TOKEN.match(cql, position)
        if not found:
            raise CqlError(f"unexpected character at {position}")
        if found.group("op"):
            tokens.append(Token("op", found.group("op")))
        elif found.group("word"):
            tokens.append(Token("word", found.group("word")))
        else:
            raw = found.group("dq") if found.group("dq") is not None else found.group("sq")
            tokens.append(Token("string", _ESCAPE.sub(r"\1", raw)))
        position = found.end()
    tokens.append(Token("end", ""))
    return tokens


class _Parser:
    def __init__(self, cql: str) -> None:
        self.tokens = tokenize(cql)
        self.at = 0

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.text.lower() in words:
            self.at += 1
            return True
        return False

    def expect_op(self, text: str) -> None:
        token = self.take()
        if token.kind != "op" or token.text != text:
            raise CqlError(f"expected {text!r}, found {token.text or 'the end'!r}")

    def query(self) -> Query:
        where = self.expr()
        order: list[tuple[str, bool]] = []
        if self.keyword("order"):
            if not self.keyword("by"):
                raise CqlError("expected BY after ORDER")
            while True:
                token = self.take()
                if token.kind != "word" or token.text.lower() not in ORDER_FIELDS:
                    raise CqlError(f"cannot order by {token.text!r}")
                descending = self.keyword("desc")
                if not descending:
                    self.keyword("asc")
                order.append((token.text.lower(), descending))
                if not (self.peek().kind == "op" and self.peek().text == ","):
                    break
                self.take()
        if self.peek().kind != "end":
            raise CqlError(f"unexpected {self.peek().text!r}")
        return Query(where, tuple(order))

    def expr(self) -> Node:
        nodes = [self.term()]
        while self.keyword("or"):
            nodes.append(self.term())
        return nodes[0] if len(nodes) == 1 else BoolOp("or", tuple(nodes))

    def term(self) -> Node:
        nodes = [self.factor()]
        while self.keyword("and"):
            nodes.append(self.factor())
        return nodes[0] if len(nodes) == 1 else BoolOp("and", tuple(nodes))

    def factor(self) -> Node:
        if self.keyword("not"):
            return Not(self.factor())
        if self.peek().kind == "op" and self.peek().text == "(":
            self.take()
            node = self.expr()
            self.expect_op(")")
            return node
        return self.clause()

    def value(self) -> str:
        token = self.take()
        if token.kind == "string" or (token.kind == "word" and token.text.lower() not in _KEYWORDS):
            return token.text
        raise CqlError(f"expected a value, found {token.text or 'the end'!r}")

    def clause(self) -> Clause:
        token = self.take()
        name = token.text.lower()
        if token.kind != "word" or name not in FIELD_OPERATORS:
            raise CqlError(f"unknown field {token.text or 'the end'!r}")
        if self.keyword("not"):
            if not self.keyword("in"):
                raise CqlError("expected IN after NOT")
            op = "not in"
        elif self.keyword("in"):
            op = "in"
        else:
            op_token = self.take()
            if op_token.kind != "op" or op_token.text not in ("=", "!=", "~", "!~"):
                raise CqlError(f"expected an operator after {token.text!r}")
            op = op_token.text
        if op not in FIELD_OPERATORS[name]:
            raise CqlError(f"the field {name!r} does not support the operator {op!r}")
        if op in ("in", "not in"):
            self.expect_op("(")
            values = [self.value()]
            while self.peek().kind == "op" and self.peek().text == ",":
                self.take()
                values.append(self.value())
            self.expect_op(")")
        else:
            values = [self.value()]
        if name == "type" and any(value.lower() not in CONTENT_TYPES for value in values):
            raise CqlError(f"type must be one of {', '.join(CONTENT_TYPES)}")
        return Clause(name, op, tuple(values))


def parse(cql: str) -> Query:
    """Parse a query of the supported subset; raise :class:`CqlError` for anything else (an empty one too)."""
    if not cql.strip():
        raise CqlError("the query is empty")
    return _Parser(cql).query()


def _contains(haystack: str, needle: str) -> bool:
    return needle.replace("*", "").strip().lower() in haystack.lower()


def _clause_matches(clause: Clause, doc: Doc) -> bool:
    name, values = clause.field, [value.lower() for value in clause.values]
    if clause.op in ("~", "!~"):
        target = doc.title if name == "title" else f"{doc.title}\n{doc.text}"
        found = _contains(target, values[0])
        return found if clause.op == "~" else not found
    have: set[str] = {
        "type": {doc.type},
        "space": {doc.space_key.lower()},
        "label": doc.labels,
        "id": {doc.id},
        "parent": {doc.parent} if doc.parent else set(),
        "ancestor": doc.ancestors,
        "title": {doc.title.lower()},
    }[name]
    wanted = {value.removeprefix("att") if name == "id" else value for value in values}
    hit = bool(have & wanted)
    return hit if clause.op in ("=", "in") else not hit


def matches(node: Node, doc: Doc) -> bool:
    """Whether ``doc`` satisfies the condition ``node``."""
    if isinstance(node, Clause):
        return _clause_matches(node, doc)
    if isinstance(node, Not):
        return not matches(node.node, doc)
    if node.op == "and":
        return all(matches(child, doc) for child in node.nodes)
    return any(matches(child, doc) for child in node.nodes)
