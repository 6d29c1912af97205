"""Attestations a scope requires before an image runs, how a predicate is matched, and the
predicate files ``secpod attest`` signs.

A requirement is an entry of ``requireAttestations`` in a scope of the bundle settings
beside the trust policy (:mod:`secpod.signing.imagebundles`)::

    {"type": "slsaprovenance1",
     "predicate": {"runDetails.builder.id": "https://ci.example/builder"}}

``type`` is cosign's attestation type name or a predicate type URI
(:func:`secpod.signing.imagebundles.predicate_type`). ``predicate`` (optional) maps dotted
paths into the statement's predicate to strings that must be found there exactly: each
segment names a field of a JSON object (no array indexes, no wildcards, no escapes: a
field whose name has a dot cannot be named), and the value found must be a JSON string
equal to the one given, code point for code point. Nothing else is judged: a path that
leads to a number, an object or nothing is a mismatch.
"""

from __future__ import annotations

from secpod._record import record
from secpod.signing import _json

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

MAX_PREDICATE = 1 << 20  # a predicate file: well inside a bundle (bundle.MAX_BUNDLE)
MAX_MATCHES = 32
MAX_PATH = 256
MAX_VALUE = 4096
MAX_SHOWN = 200  # characters of a found value a reason quotes

Match = tuple[str, str]  # (dotted path, the exact string wanted)


@record(frozen=True, eq=False)
class AttestationRequirement:
    """One required attestation: its type as written, the predicate type it stands for,
    and the exact matches its predicate must satisfy."""

    name: str
    predicate_type: str
    matches: tuple[Match, ...] = ()

    def describe(self) -> str:
        """``slsaprovenance1 with runDetails.builder.id='https://...'``: reasons and audit."""
        if not self.matches:
            return self.name
        return self.name + " with " + ", ".join(f"{p}={v!r}" for p, v in self.matches)


def _check_match(path: str, value: object, where: str) -> Match:
    """A (path, value) pair, or JSONShapeError naming ``where``."""
    if not path or len(path) > MAX_PATH or any(not s for s in path.split(".")):
        raise _json.JSONShapeError(where, f"a predicate path must be 1 to {MAX_PATH} "
                                   "characters of dot-separated field names, none empty")
    if not isinstance(value, str):
        raise _json.JSONShapeError(f"{where}[{path!r}]", "expected a string (matches are "
                                   "exact string equality)")
    if len(value) > MAX_VALUE:
        raise _json.JSONShapeError(f"{where}[{path!r}]", f"longer than {MAX_VALUE} characters")
    return path, value


def parse_requirement(value: Any, where: str) -> AttestationRequirement:
    """One ``requireAttestations`` entry. Raises JSONShapeError naming the JSON path."""
    from secpod.errors import UsageError
    from secpod.signing.imagebundles import predicate_type

    obj = _json.expect_object(value, where)
    _json.expect_fields(obj, where, required={"type"}, optional={"predicate"})
    name = _json.expect_str(obj["type"], _json.child(where, "type"), nonempty=True)
    try:
        ptype = predicate_type(name)
    except UsageError as e:
        raise _json.JSONShapeError(_json.child(where, "type"), f"{e.message} ({e.hint})"
                                   ) from e
    p = _json.child(where, "predicate")
    pred = _json.expect_object(obj.get("predicate", {}), p)
    if len(pred) > MAX_MATCHES:
        raise _json.JSONShapeError(p, f"more than {MAX_MATCHES} matches")
    matches = tuple(_check_match(k, v, p) for k, v in pred.items())
    return AttestationRequirement(name=name, predicate_type=ptype, matches=matches)


def parse_match(text: str) -> Match:
    """``PATH=VALUE`` (``verify --predicate-match``). Raises UsageError."""
    from secpod.errors import UsageError

    path, sep, value = text.partition("=")
    try:
        if not sep:
            raise _json.JSONShapeError("--predicate-match", "expected PATH=VALUE")
        return _check_match(path, value, "--predicate-match")
    except _json.JSONShapeError as e:
        raise UsageError(f"invalid --predicate-match {text!r}: {e.detail}",
                         hint="give PATH=VALUE, e.g. runDetails.builder.id=https://ci.example/b"
                         ) from e


def _shown(value: object) -> str:
    if not isinstance(value, str):
        return _json.kind(value)
    return repr(value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "...")


def mismatch(predicate: object, matches: tuple[Match, ...]) -> str | None:
    """Why ``predicate`` does not satisfy ``matches`` (the first that fails: what the
    predicate says there, and what was required), or None when every one holds."""
    for path, want in matches:
        node: object = predicate
        missing = None
        for i, seg in enumerate(path.split(".")):
            if not isinstance(node, dict) or seg not in node:
                missing = ".".join(path.split(".")[:i + 1])
                break
            node = node[seg]
        if missing is not None:
            return f"its predicate has no {missing} (required: {path}={want!r})"
        if node != want:
            return f"its predicate's {path} is {_shown(node)} (required: {want!r})"
    return None


def read_predicate(path: Path) -> dict[str, Any]:
    """The predicate in ``path``: a JSON object of at most MAX_PREDICATE bytes (duplicate
    keys, NaN and non-UTF-8 refused). Raises UsageError saying what is wrong."""
    from secpod._files import TooLarge, read_limited
    from secpod.errors import UsageError

    hint = "--predicate names a file holding the predicate as one JSON object"
    try:
        data = read_limited(path, MAX_PREDICATE)
    except TooLarge as e:
        raise UsageError(f"the predicate {path} is larger than {MAX_PREDICATE} bytes",
                         hint=hint) from e
    except OSError as e:
        raise UsageError(f"cannot read the predicate {path}: {e.strerror}", hint=hint) from e
    try:
        return _json.expect_object(_json.loads(data, what="the predicate"), "$")
    except _json.JSONShapeError as e:
        raise UsageError(f"invalid predicate {path}: {e}", hint=hint) from e
