"""Docker's ``--filter key=value`` for listings (ps, images, volume ls, pod ps).

``parse_filters`` checks the values against the keys a listing supports; ``Filters.match``
then asks the caller, per key, whether one value matches the item at hand:

    filters = parse_filters(args.filter, {"name": "a regular expression on the name",
                                          "id": "a prefix of the id",
                                          "label": "key or key=value",
                                          "status": "created, running, exited"})
    shown = [c for c in containers if filters.match({
        "name": regex(c.name), "id": prefix(c.id),
        "label": labels(c.labels), "status": exact(c.status)})]

The semantics are Docker's (docs/formatting.md): the values of one key are alternatives
(OR), different keys must all match (AND), except ``label``, whose values must all match.
``label!=k`` and ``label!=k=v`` (Docker's prune, Podman's listings) are accepted wherever
``label`` is: the item must not have label k, or not have it with value v.
"""

from __future__ import annotations

import re

from secpod.errors import UsageError

__all__ = ["Filters", "exact", "flag", "labels", "parse_filters", "prefix", "regex",
           "substring"]

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time (docs/adr/0004)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    Test = Callable[[str], bool]


class Filters:
    """The parsed filters: for each key, its values in the order given."""

    __slots__ = ("terms",)

    def __init__(self, terms: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.terms: dict[str, tuple[str, ...]] = dict(terms or {})

    def __repr__(self) -> str:
        return f"Filters({self.terms!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filters) and other.terms == self.terms

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dict

    def __bool__(self) -> bool:
        return bool(self.terms)

    def __contains__(self, key: str) -> bool:
        return key in self.terms

    def get(self, key: str) -> tuple[str, ...]:
        """The values given for ``key`` (``()`` when none)."""
        return self.terms.get(key, ())

    def match(self, tests: Mapping[str, Test]) -> bool:
        """Whether an item passes every filter. ``tests[key](value)`` says whether one value
        of ``key`` matches the item; ``label!`` uses ``tests["label"]`` and negates it.
        A key given on the command line without a test here is a bug: KeyError."""
        for key, values in self.terms.items():
            if key == "label!":
                test = tests["label"]
                if any(test(v) for v in values):
                    return False
            elif key == "label":
                test = tests["label"]
                if not all(test(v) for v in values):
                    return False
            else:
                test = tests[key]
                if not any(test(v) for v in values):
                    return False
        return True


def parse_filters(values: list[str], allowed: Mapping[str, str]) -> Filters:
    """``key=value`` strings (the value may contain ``=``: ``label=a=b``) into Filters.
    ``allowed`` maps each key the listing supports to a short description for the hint.
    An unknown key or a value without ``=`` is a UsageError: ``invalid filter 'x'``."""
    supported = ", ".join(f"{k} ({d})" for k, d in allowed.items()) or "none"
    terms: dict[str, list[str]] = {}
    for raw in values:
        key, eq, value = raw.partition("=")
        if not eq:
            raise UsageError(f"invalid filter {raw!r}",
                             hint=f"a filter is key=value; the keys here are {supported}")
        if key == "label!" and "label" in allowed:
            pass
        elif key not in allowed:
            raise UsageError(f"invalid filter {key!r}", hint=f"the keys here are {supported}")
        terms.setdefault(key, []).append(value)
    return Filters({k: tuple(v) for k, v in terms.items()})


# --- ready tests: each takes what the item has and returns a test of one filter value -----


def exact(*actual: str | None) -> Test:
    """The value equals one of ``actual`` (status, driver, a whole name)."""
    have = {a for a in actual if a is not None}
    return lambda v: v in have


def prefix(*actual: str | None) -> Test:
    """One of ``actual`` starts with the value (an id, a digest)."""
    have = [a for a in actual if a is not None]
    return lambda v: any(a.startswith(v) for a in have)


def substring(*actual: str | None) -> Test:
    """The value occurs in one of ``actual``."""
    have = [a for a in actual if a is not None]
    return lambda v: any(v in a for a in have)


def regex(*actual: str | None) -> Test:
    """Docker's ``Args.Match``: the value equals one of ``actual`` or is a regular expression
    found in one (unanchored: ``name=web`` matches ``myweb``, ``name=^web$`` only ``web``).
    A value that is not a valid expression matches only exactly."""
    have = [a for a in actual if a is not None]

    def test(v: str) -> bool:
        if v in have:
            return True
        try:
            pattern = re.compile(v)
        except re.error:
            return False
        return any(pattern.search(a) for a in have)

    return test


def labels(have: Mapping[str, str] | None) -> Test:
    """``k`` matches when the item has label k, ``k=v`` when its value is v."""
    have = have or {}

    def test(v: str) -> bool:
        key, eq, value = v.partition("=")
        return key in have and (not eq or have[key] == value)

    return test


def flag(actual: bool) -> Test:
    """A boolean filter (``dangling=true``): ``true``/``1`` or ``false``/``0``; anything else
    is a UsageError, as Docker refuses it."""

    def test(v: str) -> bool:
        if v.lower() in ("true", "1"):
            return actual
        if v.lower() in ("false", "0"):
            return not actual
        raise UsageError(f"invalid filter value {v!r}", hint="use true or false")

    return test
