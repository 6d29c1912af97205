"""Docker's --filter semantics (secpod/filters.py)."""

from __future__ import annotations

from typing import Any

import pytest

from secpod.errors import UsageError
from secpod.filters import Filters, exact, flag, labels, parse_filters, prefix, regex, substring

ALLOWED = {"name": "regexp on the name", "id": "id prefix", "label": "key or key=value",
           "status": "state", "dangling": "true or false"}

ITEMS: list[dict[str, Any]] = [
    {"name": "myweb", "id": "abc123", "status": "running", "labels": {"app": "web", "t": "1"}},
    {"name": "db", "id": "abd456", "status": "exited", "labels": {"app": "db"}},
    {"name": "web2", "id": "ffe789", "status": "exited", "labels": {}},
]


def shown(values: list[str]) -> list[str]:
    f = parse_filters(values, ALLOWED)
    return [i["name"] for i in ITEMS if f.match({
        "name": regex(i["name"]), "id": prefix(i["id"]),
        "status": exact(i["status"]), "label": labels(i["labels"])})]


def test_parse_keeps_values_in_order_and_splits_at_the_first_equals() -> None:
    f = parse_filters(["name=a", "label=a=b=c", "name=b", "label=x"], ALLOWED)
    assert f.get("name") == ("a", "b") and f.get("label") == ("a=b=c", "x")
    assert f.get("id") == () and "name" in f and "id" not in f and f
    assert not parse_filters([], ALLOWED)
    assert parse_filters(["name="], ALLOWED).get("name") == ("",)
    assert f == Filters({"name": ("a", "b"), "label": ("a=b=c", "x")})


def test_unknown_key_and_missing_equals_are_usage_errors() -> None:
    with pytest.raises(UsageError) as e:
        parse_filters(["colour=red"], ALLOWED)
    assert e.value.message == "invalid filter 'colour'"
    assert "name (regexp on the name)" in (e.value.hint or "") and e.value.exit_code == 2
    with pytest.raises(UsageError) as e:
        parse_filters(["name"], ALLOWED)
    assert e.value.message == "invalid filter 'name'"
    assert "key=value" in (e.value.hint or "")
    with pytest.raises(UsageError):
        parse_filters(["label!=x"], {"name": ""})  # label! only where label is


def test_same_key_is_or_different_keys_and() -> None:
    assert shown([]) == ["myweb", "db", "web2"]
    assert shown(["name=web"]) == ["myweb", "web2"]  # a regexp search, as Docker's name
    assert shown(["name=^web"]) == ["web2"]
    assert shown(["name=db", "name=web2"]) == ["db", "web2"]
    assert shown(["status=exited", "name=web"]) == ["web2"]
    assert shown(["id=ab"]) == ["myweb", "db"]
    assert shown(["id=ab", "id=ff"]) == ["myweb", "db", "web2"]
    assert shown(["name=(", "status=running"]) == []  # a bad regexp matches only exactly


def test_labels_are_and() -> None:
    assert shown(["label=app"]) == ["myweb", "db"]
    assert shown(["label=app=web"]) == ["myweb"]
    assert shown(["label=app", "label=t"]) == ["myweb"]
    assert shown(["label=app=web", "label=app=db"]) == []
    assert shown(["label=app="]) == []


def test_negated_labels() -> None:
    assert shown(["label!=app"]) == ["web2"]
    assert shown(["label!=app=web"]) == ["db", "web2"]
    assert shown(["label!=app=web", "label!=app=db"]) == ["web2"]
    assert shown(["label=app", "label!=t"]) == ["db"]


def test_a_key_without_a_test_is_a_bug() -> None:
    with pytest.raises(KeyError):
        parse_filters(["name=x"], ALLOWED).match({})


def test_ready_tests() -> None:
    assert exact("a", None, "b")("b") and not exact("a")("A")
    assert prefix("abcdef")("abc") and not prefix("abcdef")("bc") and not prefix(None)("")
    assert substring("myweb")("yw") and not substring("myweb")("x")
    assert regex("x", "myweb")("^my") and regex("a(b")("a(b") and not regex("ab")("a(")
    assert labels(None)("a") is False and labels({"a": ""})("a=") and labels({"a": "b=c"})("a=b=c")
    assert flag(True)("true") and flag(True)("1") and not flag(True)("false")
    assert flag(False)("0") and flag(False)("FALSE")
    with pytest.raises(UsageError) as e:
        flag(True)("maybe")
    assert e.value.message == "invalid filter value 'maybe'"
