"""Strict JSON for untrusted inputs: duplicate keys are errors, fields are checked exactly.

containers/image parses policies and signature payloads "paranoidly": a
duplicate or unknown field rejects the whole document. Python's ``json``
silently keeps the last duplicate, so every parse here goes through
:func:`loads` with an ``object_pairs_hook`` that refuses them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Collection

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any, NoReturn


class JSONShapeError(ValueError):
    """The document is not the expected shape; ``path`` names where (``$.a.b[0]``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.detail = message


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _Object(dict[str, "Any"]):  # a string: typing is not imported at run time
    """A JSON object that remembers it came from JSON (for exact-field checks)."""


def _pairs_hook(pairs: list[tuple[str, Any]]) -> _Object:
    out = _Object()
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes | str, *, what: str) -> Any:
    """Parse ``data`` as JSON, refusing duplicate keys, NaN and Infinity.

    Raises JSONShapeError with ``$`` as the path (duplicate keys name the key).
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as e:
        raise JSONShapeError("$", f"{what} is not UTF-8 text") from e
    try:
        return json.loads(text, object_pairs_hook=_pairs_hook, parse_constant=_reject_constant)
    except _DuplicateKey as e:
        raise JSONShapeError("$", f"duplicate field {e.key!r} in {what}") from e
    except (json.JSONDecodeError, ValueError, RecursionError) as e:
        raise JSONShapeError("$", f"{what} is not valid JSON: {e}") from e


def child(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


def expect_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JSONShapeError(path, f"expected a JSON object, got {kind(value)}")
    return value


def expect_fields(obj: dict[str, Any], path: str, *, required: Collection[str] = (),
                  optional: Collection[str] = ()) -> None:
    """Refuse unknown fields and missing required ones (by name, at ``path``)."""
    for key in obj:
        if key not in required and key not in optional:
            raise JSONShapeError(child(path, key), "unknown field")
    for key in sorted(required):
        if key not in obj:
            raise JSONShapeError(child(path, key), "missing required field")


def expect_str(value: Any, path: str, *, nonempty: bool = False) -> str:
    if not isinstance(value, str):
        raise JSONShapeError(path, f"expected a string, got {kind(value)}")
    if nonempty and not value:
        raise JSONShapeError(path, "must not be empty")
    return value


def expect_b64(value: Any, path: str) -> bytes:
    """The bytes of a standard-base64 string (strict: no stray characters)."""
    text = expect_str(value, path)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise JSONShapeError(path, "is not valid base64") from e


def expect_list(value: Any, path: str, item: Callable[[Any, str], Any], *,
                nonempty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise JSONShapeError(path, f"expected a JSON array, got {kind(value)}")
    if nonempty and not value:
        raise JSONShapeError(path, "must not be empty")
    return [item(v, child(path, i)) for i, v in enumerate(value)]


def kind(value: Any) -> str:
    """What a JSON value is, as an error message says it: ``a string``, ``an object``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical form for the JSON values Rekor SETs carry.

    Sorted keys, no whitespace, minimal string escapes, integers as digits.
    Non-integral numbers are refused: no SET field uses them, and getting
    ECMAScript number formatting subtly wrong would only produce false
    rejections that are hard to explain.
    """
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return b"{" + b",".join(canonical(k) + b":" + canonical(v) for k, v in items) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(canonical(v) for v in value) + b"]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value).encode()
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value)).encode()
        raise ValueError("non-integral numbers are not supported in canonical JSON here")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    raise TypeError(type(value).__name__)
