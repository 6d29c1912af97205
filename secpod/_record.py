"""Records: the typed value classes of the whole package (docs/adr/0003-records.md).

A record is declared like a dataclass (annotated fields, defaults,
``field(default_factory=...)``), type-checks like one (``dataclass_transform``) and
behaves like one: keyword or positional construction, ``repr``, field-wise ``==``,
``hash`` when frozen, ``FrozenInstanceError`` on assignment when frozen, ``replace``,
``asdict`` and ``fields``.

Why not :mod:`dataclasses`: on Python 3.11 it compiles every generated method of
every class with its own ``exec`` (about 0.9 ms a frozen class) and imports
``inspect``; the 46 classes on the way of a ``secpod run`` cost 55 ms, a fifth of the
run. A record's methods are shared functions that read the class's field table, so
declaring one costs microseconds and constructing one a few more than a dataclass.

What is deliberately not supported (no module uses it): ``ClassVar`` and ``InitVar``
annotations and ``__post_init__`` (each raises TypeError when the class is declared, since
mypy would model them and the record would silently differ), ``init=False`` fields,
ordering, ``slots``, ``kw_only``, and records that inherit from records (TypeError too).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["FrozenInstanceError", "Field", "asdict", "field", "fields", "record", "replace"]

# typing is for mypy only: importing it costs a command ~6 ms (docs/adr/0004).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar, dataclass_transform, overload

    _T = TypeVar("_T")
    _C = TypeVar("_C", bound=type)
else:
    def dataclass_transform(**_: object) -> Callable[[Callable[..., object]],
                                                       Callable[..., object]]:
        """typing's marker for type checkers; at run time it only sets an attribute."""
        return lambda f: f


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """One field of a record, as :func:`fields` returns it."""

    __slots__ = ("name", "default", "default_factory", "repr", "compare")

    def __init__(
        self,
        name: str,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        repr: bool = True,  # noqa: A002 - the dataclasses spelling
        compare: bool = True,
    ) -> None:
        self.name = name
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.compare = compare

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    repr: bool = True,  # noqa: A002 - the dataclasses spelling
    compare: bool = True,
) -> Any:
    """A field with a default factory, or left out of ``repr`` or ``==``."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field("", default, default_factory, repr, compare)


# The shared methods. Each reads the table that record() stored on the class.


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    table: tuple[Field, ...] = cls.__record_fields__
    if len(args) > len(table):
        raise TypeError(
            f"{cls.__name__}() takes {len(table)} positional arguments but {len(args)} were given"
        )
    put = object.__setattr__
    for f, value in zip(table, args, strict=False):
        put(self, f.name, value)
    for f in table[len(args):]:
        if f.name in kwargs:
            value = kwargs.pop(f.name)
        elif f.default is not MISSING:
            value = f.default
        elif f.default_factory is not MISSING:
            value = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}() missing required argument: {f.name!r}")
        put(self, f.name, value)
    if kwargs:
        names = ", ".join(repr(k) for k in kwargs)
        raise TypeError(f"{cls.__name__}() got unexpected or repeated keyword arguments: {names}")


def _repr(self: Any) -> str:
    cls = type(self)
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in cls.__record_repr__)
    return f"{cls.__qualname__}({inner})"


def _key(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, n) for n in type(self).__record_compare__)


def _eq(self: Any, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return bool(_key(self) == _key(other))


def _hash(self: Any) -> int:
    return hash(_key(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _unsupported_annotation(annotation: Any) -> str | None:
    """"ClassVar" or "InitVar" when ``annotation`` is one (a string under PEP 563)."""
    text = annotation if isinstance(annotation, str) else repr(annotation)
    head = text.replace("typing.", "").replace("dataclasses.", "").lstrip("'\"")
    for kind in ("ClassVar", "InitVar"):
        if head == kind or head.startswith(kind + "["):
            return kind
    return None


def _build(cls: _C, frozen: bool, eq: bool) -> _C:
    if any(hasattr(base, "__record_fields__") for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: records do not inherit from records")
    if "__post_init__" in cls.__dict__:
        raise TypeError(f"{cls.__name__}: records do not call __post_init__ (docs/adr/0003)")
    table: list[Field] = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        kind = _unsupported_annotation(annotation)
        if kind:
            raise TypeError(f"{cls.__name__}.{name}: records do not support {kind} "
                            "(docs/adr/0003); declare a plain field or a class constant")
        declared = cls.__dict__.get(name, MISSING)
        if isinstance(declared, Field):
            f = Field(name, declared.default, declared.default_factory, declared.repr,
                      declared.compare)
        else:
            f = Field(name, declared)
        if f.default is not MISSING and type(f.default).__hash__ is None:
            raise ValueError(f"{cls.__name__}.{name}: mutable default; use default_factory")
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        if not has_default and table and (
            table[-1].default is not MISSING or table[-1].default_factory is not MISSING
        ):
            raise TypeError(f"{cls.__name__}: field {name!r} without a default follows one with")
        # As with dataclasses, the class attribute holds a plain default, nothing else.
        if f.default is not MISSING:
            setattr(cls, name, f.default)
        elif declared is not MISSING:
            delattr(cls, name)
        table.append(f)
    methods: dict[str, Any] = {
        "__record_fields__": tuple(table),
        "__record_repr__": tuple(f.name for f in table if f.repr),
        "__record_compare__": tuple(f.name for f in table if f.compare),
        "__match_args__": tuple(f.name for f in table),
        "__init__": _init,
        "__repr__": _repr,
    }
    if eq:
        # Like dataclasses: equal by value and mutable means unhashable.
        methods.update(__eq__=_eq, __hash__=_hash if frozen else None)
    if frozen:
        methods.update(__setattr__=_frozen_setattr, __delattr__=_frozen_delattr)
    for name, value in methods.items():
        # A method the class writes itself wins (a __repr__ that hides a password).
        if name not in cls.__dict__:
            setattr(cls, name, value)
    return cls


if TYPE_CHECKING:
    @overload
    def record(cls: _C, /) -> _C: ...

    @overload
    def record(*, frozen: bool = False, eq: bool = True) -> Callable[[_C], _C]: ...


@dataclass_transform(field_specifiers=(field, Field))
def record(
    cls: _C | None = None, /, *, frozen: bool = False, eq: bool = True
) -> _C | Callable[[_C], _C]:
    """Make ``cls`` a record: ``@record`` or ``@record(frozen=True, eq=False)``.

    Raises TypeError for a field without a default after one with a default, and
    ValueError for a mutable default (use ``field(default_factory=...)``).
    """
    if cls is None:
        return lambda c: _build(c, frozen, eq)
    return _build(cls, frozen, eq)


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record or record class, in declaration order."""
    try:
        table: tuple[Field, ...] = obj.__record_fields__
    except AttributeError:
        raise TypeError(f"{obj!r} is not a record") from None
    return table


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of ``obj`` with ``changes`` applied. Raises TypeError on an unknown field."""
    for f in fields(obj):
        if f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return type(obj)(**changes)


def asdict(obj: Any) -> dict[str, Any]:
    """``obj`` as plain dicts, lists and tuples, recursively (other values as they are)."""
    if not hasattr(type(obj), "__record_fields__"):
        raise TypeError(f"{obj!r} is not a record")
    out: dict[str, Any] = _plain(obj)
    return out


def _plain(value: Any) -> Any:
    if hasattr(type(value), "__record_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in value.__record_fields__}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value
