"""Read the form a race's endpoint was sent, field by field, refusing what cannot be used with a
reason (``BadForm``, a 400): a field sent twice, bytes that are not UTF-8, a strategy anywhere
but the query string, a number or a name out of its range. Each endpoint declares what it reads
as a ``ParsedForm``."""

import dataclasses
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Self, TypeVar, dataclass_transform

from django.http import QueryDict

NOT_UTF8_TEXT = (
    "The form holds bytes that are not UTF-8 (raw, %-escaped or base64-encoded): send every field "
    "as UTF-8 text."
)
STRATEGY_IN_FORM = "Send strategy in the query string (?strategy=NAME), not in the form."
QUERY_TAKES_STRATEGY_ONLY = "The query string takes strategy alone (?strategy=NAME); {name!r} is not read."
# What Django's parsers leave in place of bytes that are not UTF-8.
REPLACEMENT_CHARACTER = "\ufffd"
# What the scenarios name things with: voucher codes, activity names, invoice numbers, keys.
TOKEN = re.compile(r"[A-Za-z0-9_-]+")
# Sixteen digits at most: a longer number is refused before int() reads it.
WHOLE_NUMBER = re.compile(r"[0-9]{1,16}")

S = TypeVar("S", bound=StrEnum)


class BadForm(ValueError):
    """A field a client sent cannot be used; the message says how to send it."""


def read_form(request) -> QueryDict:
    """The form of a request ``refuse_unreadable_post`` (races/views.py) let through, POSTed or
    PATCHed.

    BadForm when the form is not UTF-8 text: Django reads it with the bytes that are not UTF-8
    replaced (U+FFFD), or a raw body that is not UTF-8 as Latin-1, and would store what the client
    never wrote. BadForm too for a strategy anywhere but the query string, and for anything else in
    the query string (``strategy[]``, ``amount``): either would go unread, and the endpoint would
    run its default (the naive strategy, the default amount) instead of what was asked.
    """
    # Django parses a form body for POST only; any other method's is read here, as UTF-8.
    body = request.POST if request.method == "POST" else QueryDict(request.body, encoding="utf-8")
    try:
        request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadForm(NOT_UTF8_TEXT) from None
    if any(REPLACEMENT_CHARACTER in text for name, values in body.lists() for text in (name, *values)):
        raise BadForm(NOT_UTF8_TEXT)
    stray = sorted(name for name in request.GET if name != "strategy")
    if stray:
        raise BadForm(QUERY_TAKES_STRATEGY_ONLY.format(name=stray[0]))
    if "strategy" in body:
        raise BadForm(STRATEGY_IN_FORM)
    return body


def single_field(values: QueryDict, name: str, *, default: str) -> str:
    """The one value of ``name`` (``default`` when absent): a field sent twice is refused, not
    silently narrowed to its last value."""
    given = values.getlist(name)
    if len(given) > 1:
        raise BadForm(f"{name} was given {len(given)} times; send it once.")
    return given[0] if given else default


def token_field(body: QueryDict, name: str, *, max_length: int, error: str) -> str:
    """A required field of 1 to ``max_length`` letters, digits, '-' or '_'; ``error`` otherwise."""
    value = single_field(body, name, default="").strip()
    if len(value) > max_length or not TOKEN.fullmatch(value):
        raise BadForm(error)
    return value


def whole_number_field(
    body: QueryDict, name: str, *, maximum: int, error: str, default: int | None = None
) -> int:
    """A plain whole number from 1 to ``maximum``; ``error`` otherwise. Required unless it has a
    ``default``, and a field that is present but empty is an error, not the default."""
    value = single_field(body, name, default="" if default is None else str(default)).strip()
    if not WHOLE_NUMBER.fullmatch(value) or not 1 <= int(value) <= maximum:
        raise BadForm(error)
    return int(value)


def strategy_error(strategies: type[StrEnum]) -> str:
    return "strategy must be one of: " + ", ".join(strategies) + "."


def chosen_strategy(query: QueryDict, strategies: type[S]) -> S:
    """``?strategy=``: one of ``strategies``, or the first of them (the naive one) when absent."""
    name = single_field(query, "strategy", default=next(iter(strategies)).value)
    try:
        return strategies(name)
    except ValueError:
        raise BadForm(strategy_error(strategies)) from None


# How a ParsedForm's field is read: ``read(body, name, earlier)``, ``earlier`` the fields read
# before it, by name (a transfer's destination is compared with its source).
Reader = Callable[[QueryDict, str, Mapping[str, object]], object]
_READ = "read"


def form_field(read: Reader) -> Any:
    """A field of a ParsedForm, read from the form by ``read``."""
    return dataclasses.field(metadata={_READ: read})


def token(*, max_length: int, error: str) -> Any:
    """A ParsedForm's field read by ``token_field``: 1 to ``max_length`` letters, digits, '-' or '_'."""
    return form_field(lambda body, name, _: token_field(body, name, max_length=max_length, error=error))


def whole_number(*, maximum: int, error: str, default: int | None = None) -> Any:
    """A ParsedForm's field read by ``whole_number_field``: a whole number from 1 to ``maximum``."""
    return form_field(
        lambda body, name, _: whole_number_field(body, name, maximum=maximum, error=error, default=default)
    )


@dataclass_transform(
    kw_only_default=True, field_specifiers=(dataclasses.field, form_field, token, whole_number)
)
class ParsedForm:
    """What an endpoint reads, declared as the fields of a frozen dataclass (a subclass is made one):
    ``strategy``, typed with the race's strategies, first, from the query string
    (``chosen_strategy``), then each other field from the form, in the order declared, by its
    reader (``form_field``, ``token``, ``whole_number``). ``parse`` refuses the form at the first
    field that cannot be used."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True, kw_only=True)(cls)

    @classmethod
    def parse(cls, *, query: QueryDict, body: QueryDict) -> Self:
        strategies = cls.__dataclass_fields__["strategy"].type
        read: dict[str, object] = {"strategy": chosen_strategy(query, strategies)}
        for field in dataclasses.fields(cls):
            if field.name != "strategy":
                read[field.name] = field.metadata[_READ](body, field.name, read)
        return cls(**read)

    def arguments(self) -> dict[str, object]:
        """The fields by name: the keyword arguments of the service the form is for."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
