"""secpod._record: records behave like the dataclasses they replace (ADR 0003)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import secpod
from secpod._record import FrozenInstanceError, asdict, field, fields, record, replace


@record(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    note: str = field(default="", compare=False, repr=False)


@record
class Counter:
    n: int


@record(frozen=True, eq=False)
class Handle:
    name: str


@record(frozen=True)
class Secret:
    user: str
    password: str

    def __repr__(self) -> str:
        return f"Secret(user={self.user!r})"


@record(frozen=True)
class Outer:
    inner: Point
    items: tuple[Point, ...] = ()
    table: dict[str, Point] = field(default_factory=dict)


def test_construction_positional_keyword_and_defaults() -> None:
    assert Point(1).y == 0
    assert Point(1, 2) == Point(x=1, y=2)
    assert Point(y=3, x=1).x == 1
    assert Point.y == 0  # a plain default stays on the class, as with dataclasses


def test_default_factory_gives_each_instance_its_own_value() -> None:
    a, b = Point(1), Point(2)
    a.tags.append("t")
    assert b.tags == []


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing required argument: 'x'"),
        ((1, 2, [], "", 5), {}, "takes 4 positional arguments but 5 were given"),
        ((1,), {"x": 2}, "unexpected or repeated keyword arguments: 'x'"),
        ((1,), {"z": 2}, "unexpected or repeated keyword arguments: 'z'"),
    ],
)
def test_bad_construction_is_a_type_error(args: tuple[object, ...], kwargs: dict[str, object],
                                          message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)  # type: ignore[arg-type]


def test_frozen_refuses_assignment_and_deletion() -> None:
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del p.x
    assert isinstance(FrozenInstanceError("x"), AttributeError)


def test_equality_hash_and_compare_false() -> None:
    assert Point(1, note="a") == Point(1, note="b")
    assert Point(1) != Point(2)
    assert Point(1) != (1, 0, [], "")  # type: ignore[comparison-overlap]
    assert hash(Secret("u", "a")) == hash(Secret("u", "a"))
    assert len({Secret("u", "a"), Secret("u", "a"), Secret("u", "b")}) == 2
    with pytest.raises(TypeError):
        hash(Point(1))  # a list field: unhashable, as with dataclasses


def test_mutable_records_are_unhashable_and_assignable() -> None:
    c = Counter(1)
    c.n += 1
    assert c == Counter(2)
    with pytest.raises(TypeError):
        hash(c)


def test_eq_false_keeps_identity() -> None:
    a, b = Handle("x"), Handle("x")
    assert a != b and a == a
    assert len({a, b}) == 2


def test_repr_leaves_out_repr_false_and_keeps_a_written_repr() -> None:
    assert repr(Point(1, note="hidden")) == "Point(x=1, y=0, tags=[])"
    assert "pw" not in repr(Secret("u", "pw"))


def test_replace_asdict_fields() -> None:
    p = Point(1, tags=["a"])
    q = replace(p, y=5)
    assert (q.x, q.y, q.tags) == (1, 5, ["a"]) and p.y == 0
    with pytest.raises(TypeError):
        replace(p, nope=1)
    o = Outer(p, (q,), {"k": p})
    assert asdict(o) == {
        "inner": {"x": 1, "y": 0, "tags": ["a"], "note": ""},
        "items": ({"x": 1, "y": 5, "tags": ["a"], "note": ""},),
        "table": {"k": {"x": 1, "y": 0, "tags": ["a"], "note": ""}},
    }
    assert asdict(o)["inner"]["tags"] is not p.tags
    assert [f.name for f in fields(Point)] == ["x", "y", "tags", "note"]
    assert fields(p) == fields(Point)
    with pytest.raises(TypeError):
        asdict({"x": 1})
    with pytest.raises(TypeError):
        fields(1)


def test_pattern_matching_by_position() -> None:
    match Point(1, 2):
        case Point(x, y):
            assert (x, y) == (1, 2)
        case _:  # pragma: no cover
            raise AssertionError


def test_declaration_errors() -> None:
    with pytest.raises(ValueError, match="mutable default"):
        @record
        class Bad:
            items: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="without a default follows one with"):
        @record
        class Order:
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(TypeError, match="do not inherit"):
        @record
        class Child(Point):  # type: ignore[misc]
            z: int = 0

    with pytest.raises(ValueError, match="both default and default_factory"):
        field(default=1, default_factory=list)


def test_what_records_do_not_model_is_refused_at_declaration() -> None:
    """ClassVar, InitVar and __post_init__ would be silently wrong: mypy models them."""
    import dataclasses
    import typing

    with pytest.raises(TypeError, match=r"Counted\.total: records do not support ClassVar"):
        @record
        class Counted:
            total: typing.ClassVar[int] = 0
            name: str = ""

    with pytest.raises(TypeError, match="records do not support ClassVar"):
        @record
        class Bare:
            total: typing.ClassVar = 0  # type: ignore[type-arg]

    with pytest.raises(TypeError, match="records do not support InitVar"):
        @record
        class Seeded:
            seed: dataclasses.InitVar[int]

    with pytest.raises(TypeError, match="records do not call __post_init__"):
        @record
        class Checked:
            n: int = 0

            def __post_init__(self) -> None:
                raise AssertionError("never called")

    # a field whose type merely mentions the words is fine
    @record
    class Fine:
        class_var_name: str = "ClassVar"
        initvars: list[str] = field(default_factory=list)

    assert Fine().class_var_name == "ClassVar"


def test_no_secpod_module_uses_dataclasses() -> None:
    """The package's classes are records: no module of it imports dataclasses."""
    package = Path(secpod.__file__).parent
    users = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"^\s*(import dataclasses|from dataclasses import)", path.read_text(), re.M)
    ]
    assert users == []
