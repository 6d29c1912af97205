"""``login`` and ``logout``: credentials in the auth file Podman and Skopeo share.

``login`` first proves the credentials: it asks the registry's ``/v2/`` with them
(basic auth, or a bearer token from the registry's token service) and writes
nothing unless the registry accepts them. The file is ``--authfile``, else
``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json`` (Podman's and
Skopeo's): its other entries are kept, it is written to a temp file beside it and
renamed into place, mode 0600, in a folder of mode 0700. Docker's
``~/.docker/config.json`` is read by pull and push, never written: ``logout`` says so
when the only credentials left for a registry are there.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from secpod.errors import Error, MalformedInput, NotFound, UsageError
from secpod.images.registry._auth import MAX_AUTHFILE, _normalise_key, read_authfile

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any


def auth_file(authfile: Path | None = None) -> Path:
    """The file login writes and logout edits. Raises UsageError with no place for it."""
    if authfile is not None:
        return authfile
    env = os.environ.get("REGISTRY_AUTH_FILE", "")
    if env:
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if not runtime or not os.path.isabs(runtime):
        raise UsageError("XDG_RUNTIME_DIR is not set: there is no default auth file",
                         hint="give --authfile FILE, or log in from a session that has one")
    return Path(runtime) / "containers" / "auth.json"


def registry_key(text: str) -> str:
    """``HOST[:PORT]`` (or ``HOST[:PORT]/NAMESPACE``) as the auth file keys it."""
    key = _normalise_key(text.strip())
    host = key.partition("/")[0]
    if not host or any(c.isspace() for c in key) or "@" in key:
        raise UsageError(f"invalid registry {text!r}", hint="give HOST[:PORT], e.g. "
                                                            "registry.example.com:5000")
    return key


def _read_doc(path: Path) -> dict[str, Any]:
    """The file's JSON (kept whole: other tools' keys stay), {} when there is none."""
    if not path.exists():
        return {}
    read_authfile(path)  # every entry well formed, or MalformedInput naming it
    doc = json.loads(path.read_bytes() or b"{}")
    if not isinstance(doc, dict):
        raise MalformedInput(f"auth file {path} is not a JSON object")
    return doc


def _write_doc(path: Path, doc: dict[str, Any]) -> None:
    from secpod._files import write_atomic

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = json.dumps(doc, indent="\t") + "\n"
    if len(data) > MAX_AUTHFILE:
        raise MalformedInput(f"auth file {path} would be larger than {MAX_AUTHFILE} bytes")
    write_atomic(path, data, mode=0o600, durable=True)


def verify(key: str, username: str, password: str, *, tls_verify: bool = True) -> None:
    """Ask the registry's ``/v2/`` with these credentials. Raises AuthenticationFailed
    (refused), RegistryUnreachable, RegistryError."""
    from secpod.images.registry._auth import Credentials
    from secpod.images.registry._http import Session, error_from

    domain = key.partition("/")[0]
    session = Session(domain, tls_verify=tls_verify,
                      credentials=Credentials(username, password, "login"))
    try:
        resp = session.request("GET", "/v2/", scope=None)
        try:
            if resp.status != 200:
                raise error_from(resp, "/v2/", domain)
        finally:
            resp.close()
    finally:
        session.close()


def login(registry: str, username: str, password: str, *, authfile: Path | None = None,
          tls_verify: bool = True) -> Path:
    """Check the credentials against ``registry``, then store them; audited as
    ``registry.login``. Returns the file written. Raises UsageError, AuthenticationFailed,
    RegistryUnreachable, RegistryError, MalformedInput, Error; on failure the file is as
    it was."""
    from secpod import audit

    key = registry_key(registry)
    if not username or ":" in username or not password:
        raise UsageError("login needs a user name (without ':') and a password",
                         hint="-u USER and -p PASSWORD, --password-stdin, or answer the "
                              "prompts")
    path = auth_file(authfile)
    try:
        doc = _read_doc(path)  # a malformed file is refused before the registry is asked
        verify(key, username, password, tls_verify=tls_verify)
        auths = doc.setdefault("auths", {})
        auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
        _write_doc(path, doc)
    except Error as e:
        from secpod.errors import AuthenticationFailed

        audit.record("registry.login", "refused" if isinstance(e, AuthenticationFailed)
                     else "error",
                     reason=e.message, details={"registry": key, "user": username})
        raise
    audit.record("registry.login", "ok", details={"registry": key, "user": username,
                                                  "authfile": str(path)})
    return path


def logout(registry: str | None, *, authfile: Path | None = None,
           all_registries: bool = False) -> list[str]:
    """Remove the stored credentials of ``registry`` (or all of them); audited as
    ``registry.logout``. Returns the keys removed. Raises NotFound when there were none
    (naming Docker's file when they are only there), UsageError, MalformedInput."""
    from secpod import audit

    path = auth_file(authfile)
    doc = _read_doc(path)
    auths = doc.get("auths") or {}
    if all_registries:
        removed = list(auths)
    else:
        if registry is None:
            raise UsageError("logout needs a registry, or --all")
        key = registry_key(registry)
        removed = [k for k in auths if _normalise_key(k) == key]
        if not removed:
            docker = Path.home() / ".docker" / "config.json"
            in_docker = docker.is_file() and key in _safe_keys(docker)
            raise NotFound(
                f"not logged in to {key} (no credentials in {path})"
                + (f"; {docker} has some, which secpod does not change" if in_docker else ""),
                hint="docker logout " + key if in_docker else "secpod login " + key)
    for k in removed:
        del auths[k]
    if removed:
        doc["auths"] = auths
        _write_doc(path, doc)
    audit.record("registry.logout", "ok", details={"registries": removed,
                                                   "authfile": str(path)})
    return removed


def _safe_keys(path: Path) -> set[str]:
    try:
        return set(read_authfile(path))
    except (NotFound, MalformedInput):
        return set()
