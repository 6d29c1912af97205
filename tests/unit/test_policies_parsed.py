"""profiles/parsed.json: the shipped parse of the built-in profiles (policies/_gen_parsed)."""

from __future__ import annotations

import tomllib

from secpod.policies import _gen_parsed, profile


def test_parsed_json_is_current() -> None:
    assert _gen_parsed.render() == _gen_parsed.TARGET.read_text(), \
        "run python3 -m secpod.policies._gen_parsed"


def test_an_entry_is_used_only_for_the_exact_bytes() -> None:
    path = profile.BUILTIN_DIR / "strict.toml"
    raw = path.read_bytes()
    assert profile._parsed_builtin(path, raw) == tomllib.loads(raw.decode())
    assert profile._parsed_builtin(path, raw + b"\n# edited in place\n") is None
    # Not for a file outside the built-in folder, even with the same bytes.
    assert profile._parsed_builtin(profile.BUILTIN_DIR.parent / "strict.toml", raw) is None

