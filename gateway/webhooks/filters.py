"""Subscription filters: a JMESPath expression (https://jmespath.org/specification.html) on the
event document a subscriber receives (`id`, `type`, `tenant`, `backend`, `occurredAt`, `data`).

JMESPath only selects and compares: it runs no code, reads no file and calls only its own fixed
functions, so a tenant's expression is safe to evaluate in the gateway. A subscription receives
an event when the expression's result is truthy by JMESPath's own rules: anything but `false`,
`null`, an empty string, array or object (0 is truthy). An expression is checked once, when a
subscription is created or updated (`check`), compiled once per process per text
(`compiled`), and evaluated once per event per filtered subscription when the event's
deliveries are recorded (`Filters.matches`); an evaluation error counts as not matched.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import attrs
import jmespath
from jmespath import exceptions, lexer, parser
from jmespath.functions import Functions
from prometheus_client import CollectorRegistry, Counter

from gateway import payloads, wire
from gateway.logs import get_logger
from gateway.values import Event

MAX_LENGTH = 1024  # characters of an expression
MAX_DEPTH = 32  # nested levels of its syntax tree

log = get_logger("gateway.webhooks")

_FUNCTIONS: dict[str, Any] = Functions.FUNCTION_TABLE


@attrs.frozen
class FilterError(Exception):
    """Why an expression is not a filter: `message`, at `position` (a 0-based column, or None
    when the whole expression is at fault)."""

    message: str
    position: int | None = None


def check(expression: str) -> None:
    """Raise `FilterError` unless `expression` is a filter the gateway evaluates."""
    if len(expression) > MAX_LENGTH:
        raise FilterError(f"the expression is longer than {MAX_LENGTH} characters")
    if not expression.strip():
        raise FilterError("the expression is empty")
    try:
        # Counted on the tokens before parsing: a parenthesis adds no node to the tree, and the
        # parser's recursion limit depends on the process (mypy, for one, raises it).
        if _bracket_depth(expression) > MAX_DEPTH:
            raise FilterError(f"the expression nests deeper than {MAX_DEPTH} levels")
        tree = parser.Parser().parse(expression).parsed
    except exceptions.LexerError as exc:
        raise FilterError(str(exc.message), exc.lexer_position) from None
    except exceptions.IncompleteExpressionError as exc:
        raise FilterError("incomplete expression", exc.lex_position) from None
    except exceptions.ParseError as exc:
        raise FilterError(f'{exc.msg} (token "{exc.token_value}")', exc.lex_position) from None
    except RecursionError:
        raise FilterError(f"the expression nests deeper than {MAX_DEPTH} levels") from None
    if _depth(tree) > MAX_DEPTH:
        raise FilterError(f"the expression nests deeper than {MAX_DEPTH} levels")
    # Function names and argument counts are only looked up when evaluated: checked here, so
    # that a misspelt function is a 422 now rather than every event silently not matched.
    for name, given in _calls(tree):
        where = _call_position(expression, name)
        if name not in _FUNCTIONS:
            raise FilterError(f"unknown function {name}()", where)
        signature = _FUNCTIONS[name]["signature"]
        wanted = len(signature)
        if signature and signature[-1].get("variadic"):
            if given < wanted:
                raise FilterError(f"{name}() takes at least {wanted} arguments", where)
        elif given != wanted:
            raise FilterError(f"{name}() takes {wanted} arguments, not {given}", where)


@functools.lru_cache(maxsize=4096)
def compiled(expression: str) -> parser.ParsedResult:
    """The expression parsed, once per process per text (it was checked on its way in)."""
    return jmespath.compile(expression)


def document(event: Event) -> Any:
    """The event as a filter sees it: the JSON a subscriber receives, as Python values."""
    return wire.unstructure(payloads.Event.of(event))


def truthy(result: Any) -> bool:
    """JMESPath's truth: false for false, null and an empty string, array or object."""
    if result is None or result is False:
        return False
    return not isinstance(result, str | list | dict) or len(result) > 0


class Filters:
    """Evaluates subscriptions' filters on events, counting the evaluations that failed in
    `registry` (the app's), if given."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.errors = (
            Counter(
                "gateway_subscription_filter_errors_total",
                "Filter evaluations that failed (counted as not matched), e.g. a function"
                " given a value of the wrong type.",
                registry=registry,
            )
            if registry is not None
            else None
        )

    def matches(self, subscription_id: str, expression: str, doc: Any) -> bool:
        """Whether the subscription's filter keeps the event (`document(event)`)."""
        try:
            return truthy(compiled(expression).search(doc))
        # Any failure, not only JMESPath's: a filter never stops an event from being recorded.
        except Exception as exc:
            # The subscription and the kind of failure only: JMESPath's messages quote the
            # values they were given, which are the event's data.
            log.warning(
                "subscription.filter_failed",  # the event is not matched
                subscription_id=subscription_id,
                error=type(exc).__name__,
            )
            if self.errors is not None:
                self.errors.inc()
            return False


_OPENING = frozenset({"lparen", "lbracket", "lbrace", "filter"})  # `filter` is `[?`
_CLOSING = frozenset({"rparen", "rbracket", "rbrace"})


def _bracket_depth(expression: str) -> int:
    """How deep the expression's parentheses, brackets and braces nest."""
    depth = deepest = 0
    for token in lexer.Lexer().tokenize(expression):
        kind = token["type"]
        if kind in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        elif kind in _CLOSING:
            depth -= 1
    return deepest


def _depth(node: Any) -> int:
    children = node.get("children", ()) if isinstance(node, dict) else ()
    return 1 + max((_depth(c) for c in children if isinstance(c, dict)), default=0)


def _calls(node: Any) -> list[tuple[str, int]]:
    """(name, number of arguments) of every function call in the tree."""
    if not isinstance(node, dict):
        return []
    found = []
    children = [c for c in node.get("children", ()) if isinstance(c, dict)]
    if node.get("type") == "function_expression":
        found.append((str(node["value"]), len(children)))
    for child in children:
        found.extend(_calls(child))
    return found


def _call_position(expression: str, name: str) -> int | None:
    """Where the first call of `name` starts (its name followed by a parenthesis)."""
    tokens = list(lexer.Lexer().tokenize(expression))
    for token, after in itertools.pairwise(tokens):
        if token["value"] == name and after["type"] == "lparen":
            return int(token["start"])
    return None
