"""Registry credentials: ``--creds``, containers-auth.json(5) files, auth challenges.

Where credentials come from, first match wins: ``--creds USER:PASS``; the
file ``--authfile`` names; else ``$REGISTRY_AUTH_FILE``,
``$XDG_RUNTIME_DIR/containers/auth.json``, ``$XDG_CONFIG_HOME/containers/auth.json``
and ``~/.docker/config.json``, as Podman reads them. In a file, the most
specific key wins: ``host/ns/repo``, then ``host/ns``, then ``host``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from pathlib import Path

from secpod._record import record
from secpod.errors import MalformedInput, NotFound, UsageError

MAX_AUTHFILE = 1 << 20


@record(frozen=True)
class Credentials:
    """A user name and password (or token) for one registry."""

    username: str
    password: str
    source: str

    def basic(self) -> str:
        """The value of an ``Authorization: Basic`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __repr__(self) -> str:  # never print a password by accident
        return f"Credentials(username={self.username!r}, source={self.source!r})"


def parse_creds(text: str) -> Credentials:
    """``USER:PASS`` from the command line. Raises UsageError."""
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise UsageError("--creds takes USER:PASSWORD",
                         hint="or keep credentials in an auth file (--authfile FILE)")
    return Credentials(user, password, "--creds")


def default_authfiles() -> list[Path]:
    """The files Podman reads, in its order."""
    env = os.environ.get("REGISTRY_AUTH_FILE", "")
    if env:
        return [Path(env)]
    out: list[Path] = []
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        out.append(Path(runtime) / "containers" / "auth.json")
    config = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if config and os.path.isabs(config) else Path.home() / ".config"
    out.append(base / "containers" / "auth.json")
    out.append(Path.home() / ".docker" / "config.json")
    return out


def _normalise_key(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``host/`` -> ``host``."""
    key = re.sub(r"^https?://", "", key).rstrip("/")
    if key.endswith("/v1") or key.endswith("/v2"):
        key = key[:-3]
    if key in ("index.docker.io", "registry-1.docker.io"):
        key = "docker.io"
    return key


def read_authfile(path: Path) -> dict[str, Credentials]:
    """Every entry of a containers-auth.json file, by normalised key.

    Entries without an ``auth`` field (credential helpers, identity tokens)
    are skipped. Raises NotFound, MalformedInput.
    """
    from secpod._files import TooLarge, read_limited

    try:
        data = read_limited(path, MAX_AUTHFILE)
    except FileNotFoundError:
        raise NotFound(f"auth file {path} does not exist",
                       hint="give an existing containers-auth.json file") from None
    except TooLarge as e:
        raise MalformedInput(f"auth file {path} is larger than {MAX_AUTHFILE} bytes") from e
    except OSError as e:
        raise MalformedInput(f"cannot read auth file {path}: {e.strerror}") from e
    try:
        doc = json.loads(data) if data.strip() else {}
    except ValueError as e:
        raise MalformedInput(f"auth file {path} is not valid JSON ({e})",
                             hint='the format is {"auths": {"HOST:PORT": {"auth": '
                                  'base64("USER:PASS")}}}') from e
    auths = doc.get("auths", {}) if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        raise MalformedInput(f"auth file {path}: \"auths\" is not an object",
                             hint='the format is {"auths": {"HOST:PORT": {"auth": ...}}}')
    out: dict[str, Credentials] = {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            raise MalformedInput(f"auth file {path}: the entry for {key!r} is not an object")
        auth = entry.get("auth")
        if auth is None or auth == "":
            continue
        if not isinstance(auth, str):
            raise MalformedInput(f"auth file {path}: auths.{key}.auth is not a string")
        try:
            raw = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise MalformedInput(f"auth file {path}: auths.{key}.auth is not base64 of "
                                 "USER:PASSWORD") from e
        user, sep, password = raw.partition(":")
        if not sep or not user:
            raise MalformedInput(f"auth file {path}: auths.{key}.auth is not base64 of "
                                 "USER:PASSWORD")
        out[_normalise_key(key)] = Credentials(user, password, str(path))
    return out


def lookup(entries: dict[str, Credentials], domain: str, path: str) -> Credentials | None:
    """The most specific entry for ``domain/path``: repository, namespaces, then host."""
    parts = path.split("/")
    for i in range(len(parts), 0, -1):
        found = entries.get(f"{domain}/{'/'.join(parts[:i])}")
        if found is not None:
            return found
    return entries.get(domain)


def find_credentials(domain: str, path: str, *, creds: str | None,
                     authfile: Path | None) -> Credentials | None:
    """Credentials for repository ``path`` on ``domain``, or None for anonymous access.

    Raises UsageError (bad ``--creds``), NotFound (``authfile`` missing),
    MalformedInput (a malformed auth file).
    """
    if creds is not None:
        return parse_creds(creds)
    if authfile is not None:
        return lookup(read_authfile(authfile), domain, path)
    for candidate in default_authfiles():
        if candidate.is_file():
            found = lookup(read_authfile(candidate), domain, path)
            if found is not None:
                return found
    return None


# --- WWW-Authenticate -------------------------------------------------------------------

@record(frozen=True)
class Challenge:
    """One auth challenge: scheme (lowercase) and its parameters."""

    scheme: str
    params: dict[str, str]


_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf"\s*({_TCHARS})\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|({_TCHARS}))\s*(,|$)")
_SCHEME = re.compile(rf"\s*({_TCHARS})(?:\s+|$)")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235): ``Bearer realm="..",service=".."``.

    Unparseable trailing text ends the list; never raises.
    """
    out: list[Challenge] = []
    pos = 0
    header = header.strip()
    while pos < len(header):
        m = _SCHEME.match(header, pos)
        if not m:
            break
        scheme = m.group(1).lower()
        pos = m.end()
        params: dict[str, str] = {}
        while pos < len(header):
            p = _PARAM.match(header, pos)
            if not p:
                break
            value = p.group(2) if p.group(2) is not None else p.group(3)
            params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = p.end()
        out.append(Challenge(scheme, params))
        while pos < len(header) and header[pos] in ", ":
            pos += 1
    return out
