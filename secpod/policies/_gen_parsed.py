"""Write ``profiles/parsed.json``: each built-in profile's TOML, parsed, under its sha256.

Run from the repository root after editing a built-in profile:

    python3 -m secpod.policies._gen_parsed            # rewrite the file
    python3 -m secpod.policies._gen_parsed --check    # exit 1 if it is out of date

Why: reading ``strict.toml`` with tomllib costs a strict ``secpod run`` about 15 ms,
most of it importing tomllib (its regular expressions compile at import). The
package ships the parsed documents instead, and :func:`secpod.policies.profile`'s
reader takes one only when the sha256 of the bytes it has just read from the
built-in folder matches: a stale or edited entry costs time, never correctness.
The file lives beside the profiles, in the installed package, where only whoever
installed secpod can write.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent / "profiles"
TARGET = HERE / "parsed.json"


def render() -> str:
    out = {}
    for f in sorted(HERE.glob("*.toml")):
        raw = f.read_bytes()
        doc = tomllib.loads(raw.decode("utf-8"))
        if json.loads(json.dumps(doc)) != doc:  # a TOML date would not survive JSON
            raise SystemExit(f"{f}: holds a value JSON cannot carry")
        out[f.name] = {"sha256": hashlib.sha256(raw).hexdigest(), "document": doc}
    return json.dumps(out, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    from secpod.policies._gen_strict import write_or_check

    return write_or_check(TARGET, render(), "secpod.policies._gen_parsed", argv)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
