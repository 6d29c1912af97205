"""secpod's own settings: ``secpod.toml``, the user's, else the administrator's.

    # $XDG_CONFIG_HOME/secpod/secpod.toml, else /etc/secpod/secpod.toml
    [engine]
    runtime = "runc"        # the OCI runtime new containers get: crun (default) or runc

The first file that exists is the one read (a user's file replaces the host's
defaults; it cannot lift the administrator's floor, which ``[runtimes] allowed`` in
policy.toml sets). A malformed file is an error naming it, never silently ignored.
"""

from __future__ import annotations

from pathlib import Path

from secpod import paths
from secpod._record import record
from secpod.errors import MalformedInput

RUNTIMES = ("crun", "runc")
_KEYS = {"engine": {"runtime"}}


@record(frozen=True, eq=False)
class Settings:
    runtime: str | None = None     # None: the default (crun)
    source: str | None = None      # the file read, or None


def files() -> list[Path]:
    """Where secpod.toml is looked for, first match wins."""
    return [paths.config_dir() / "secpod.toml", paths.ADMIN_DIR / "secpod.toml"]


def load() -> Settings:
    for path in files():
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise MalformedInput(f"cannot read {path}: {e.strerror}",
                                 hint="check its permissions") from e
        return parse(text, path)
    return Settings()


def parse(text: str, path: Path) -> Settings:
    import tomllib  # only when a file exists: a run without one never imports it

    hint = f'see docs/configuration.md; e.g. [engine] runtime = "crun" in {path}'
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MalformedInput(f"{path} is not valid TOML: {e}", hint=hint) from e
    for table, value in doc.items():
        if table not in _KEYS or not isinstance(value, dict):
            raise MalformedInput(f"{path}: unknown setting {table!r}", hint=hint)
        unknown = set(value) - _KEYS[table]
        if unknown:
            raise MalformedInput(f"{path}: unknown setting {table}.{sorted(unknown)[0]}",
                                 hint=hint)
    runtime = doc.get("engine", {}).get("runtime")
    if runtime is not None and runtime not in RUNTIMES:
        raise MalformedInput(f"{path}: engine.runtime must be one of {', '.join(RUNTIMES)}, "
                             f"not {runtime!r}", hint=hint)
    return Settings(runtime=runtime, source=str(path))
