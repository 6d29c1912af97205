"""Lookaside signature stores, configured by registries.d(5) as containers/image does.

Configuration: the ``*.yaml`` files of ``$XDG_CONFIG_HOME/containers/registries.d``
if that folder exists, else of ``/etc/containers/registries.d`` (rootless
Podman's choice). Each file is a mapping with ``default-docker`` (one section)
and ``docker`` (scope -> section); a section has ``lookaside``,
``lookaside-staging``, ``sigstore`` and ``sigstore-staging`` (the old names)
and ``use-sigstore-attachments``. Parsing is strict: an unknown key, a
duplicate key, a bad URL, or a scope (or ``default-docker``) defined in two
files is a :class:`~secpod.errors.RegistriesConfigError` naming the file.

Scopes are policy.json's docker scopes, most specific first
(:func:`secpod.signing.policy.docker_scopes`); the first section that
configures a URL for the access wanted wins, then ``default-docker``.
Reading uses ``lookaside`` (else ``sigstore``); writing uses
``lookaside-staging`` (else ``sigstore-staging``), else the read URL.

Layout: ``<url>/<repository path>@<algo>=<hex>/signature-<N>``, N from 1,
contiguous; the repository path has no registry host (``library/busybox``).
``file://`` stores are read and written; ``http://`` and ``https://`` are
read only (TLS verified). A lookaside store holds simple-signing (GPG)
signatures only, as containers/image reads it.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

from secpod._record import field, record
from secpod.errors import LookasideError, RegistriesConfigError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.images.reference import Reference

SYSTEM_DIR = Path("/etc/containers/registries.d")
SECTION_KEYS = ("lookaside", "lookaside-staging", "sigstore", "sigstore-staging",
                "use-sigstore-attachments")
MAX_CONFIG_FILE = 1 << 20
MAX_CONFIG_FILES = 256
MAX_LOOKASIDE_SIGNATURES = 256
HTTP_TIMEOUT = 30.0
MAX_REDIRECTS = 5
_DIGEST = re.compile(r"(sha256|sha512):([0-9a-f]+)")
_HINT = "fix the file; its format is containers-registries.d(5)"


@record(frozen=True)
class Section:
    """One configuration section: where a scope's signatures are read and written."""

    source: str
    lookaside: str | None = None
    lookaside_staging: str | None = None
    sigstore: str | None = None
    sigstore_staging: str | None = None
    use_sigstore_attachments: bool | None = None

    def url(self, *, write: bool) -> str | None:
        """The base URL for reading, or for writing (staging first), or None."""
        if write and (self.lookaside_staging or self.sigstore_staging):
            return self.lookaside_staging or self.sigstore_staging
        return self.lookaside or self.sigstore


@record(frozen=True)
class RegistriesConfig:
    """The merged registries.d configuration (empty when no folder or file exists)."""

    directory: Path | None = None
    default_docker: Section | None = None
    docker: dict[str, Section] = field(default_factory=dict)

    def lookup(self, ref: Reference, *, write: bool) -> tuple[str, str, str] | None:
        """``(scope, base URL, file)`` for ``ref``, or None when nothing is configured.

        ``scope`` is ``default-docker`` for the default section.
        """
        from secpod.signing.policy import docker_scopes

        for scope in docker_scopes(ref):
            sec = self.docker.get(scope)
            if sec is not None and (url := sec.url(write=write)):
                return scope, url, sec.source
        if self.default_docker is not None and (url := self.default_docker.url(write=write)):
            return "default-docker", url, self.default_docker.source
        return None


def user_dir() -> Path:
    """Rootless Podman's registries.d: ``$XDG_CONFIG_HOME/containers/registries.d``."""
    value = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(value) if value and os.path.isabs(value) else Path.home() / ".config"
    return base / "containers" / "registries.d"


def config_dir() -> Path | None:
    """The folder that applies: the user's if it exists, else the system's, else None."""
    for d in (user_dir(), SYSTEM_DIR):
        if d.is_dir():
            return d
    return None


def _check_url(value: Any, where: str, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise RegistriesConfigError(f"invalid registries.d file {source}: {where} must be a "
                                    "non-empty URL string", hint=_HINT)
    u = urllib.parse.urlsplit(value)
    if u.scheme == "file":
        if u.netloc not in ("", "localhost") or not u.path.startswith("/"):
            raise RegistriesConfigError(
                f"invalid registries.d file {source}: {where} {value!r} is not a file:///PATH URL",
                hint=_HINT)
    elif u.scheme in ("http", "https"):
        if not u.netloc:
            raise RegistriesConfigError(
                f"invalid registries.d file {source}: {where} {value!r} names no host",
                hint=_HINT)
    else:
        raise RegistriesConfigError(
            f"invalid registries.d file {source}: {where} {value!r}: the scheme must be "
            "file, http or https", hint=_HINT)
    return value


def _section(value: Any, where: str, source: str) -> Section:
    if value is None:
        return Section(source=source)
    if not isinstance(value, dict):
        raise RegistriesConfigError(f"invalid registries.d file {source}: {where} must be a "
                                    "mapping", hint=_HINT)
    kw: dict[str, Any] = {}
    for key, v in value.items():
        if key not in SECTION_KEYS:
            raise RegistriesConfigError(
                f"invalid registries.d file {source}: {where}: unknown key {key!r}",
                hint=f"the keys of a section are {', '.join(SECTION_KEYS)}")
        if key == "use-sigstore-attachments":
            if not isinstance(v, bool):
                raise RegistriesConfigError(f"invalid registries.d file {source}: {where}."
                                            f"{key} must be true or false", hint=_HINT)
            kw["use_sigstore_attachments"] = v
        else:
            kw[key.replace("-", "_")] = _check_url(v, f"{where}.{key}", source)
    return Section(source=source, **kw)


def _yaml_load(data: bytes, source: str) -> Any:
    import yaml  # type: ignore[import-untyped]  # no stubs in Debian's python3-yaml

    class StrictLoader(yaml.SafeLoader):  # type: ignore[misc]
        """SafeLoader that refuses a key given twice in one mapping."""

    def mapping(loader: StrictLoader, node: Any) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)
            if isinstance(key, (list, dict)):
                raise RegistriesConfigError(f"invalid registries.d file {source}: a key must "
                                            "be a string", hint=_HINT)
            if key in seen:
                raise RegistriesConfigError(
                    f"invalid registries.d file {source}: key {key!r} is given twice "
                    f"(line {key_node.start_mark.line + 1})", hint=_HINT)
            seen.add(key)
        return dict(loader.construct_mapping(node))

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(data, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise RegistriesConfigError(f"invalid registries.d file {source}: not YAML: {e}",
                                    hint=_HINT) from e


def parse_file(data: bytes, source: str) -> tuple[Section | None, dict[str, Section]]:
    """One registries.d file: its ``default-docker`` section and its ``docker`` scopes.

    Pure. Raises RegistriesConfigError naming ``source``.
    """
    doc = _yaml_load(data, source)
    if doc is None:
        return None, {}
    if not isinstance(doc, dict):
        raise RegistriesConfigError(f"invalid registries.d file {source}: the top level must "
                                    "be a mapping", hint=_HINT)
    default: Section | None = None
    scopes: dict[str, Section] = {}
    for key, value in doc.items():
        if key == "default-docker":
            default = _section(value, "default-docker", source)
        elif key == "docker":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise RegistriesConfigError(f"invalid registries.d file {source}: docker must "
                                            "be a mapping of scopes", hint=_HINT)
            for scope, sec in value.items():
                if not isinstance(scope, str) or not scope or scope != scope.strip() \
                        or any(c.isspace() for c in scope) or "://" in scope:
                    raise RegistriesConfigError(
                        f"invalid registries.d file {source}: invalid docker scope {scope!r}",
                        hint="a scope is a registry, namespace, repository or reference, "
                             "e.g. registry.example.com/team")
                scopes[scope] = _section(sec, f"docker[{scope!r}]", source)
        else:
            raise RegistriesConfigError(
                f"invalid registries.d file {source}: unknown key {key!r}",
                hint="the top-level keys are default-docker and docker")
    return default, scopes


def load_config(directory: Path | None = None) -> RegistriesConfig:
    """Merge the ``*.yaml`` files of ``directory`` (default: :func:`config_dir`).

    Raises RegistriesConfigError for a malformed or unreadable file, or a scope
    (or ``default-docker``) defined in two files, naming both.
    """
    from secpod._files import TooLarge, read_limited

    directory = directory if directory is not None else config_dir()
    if directory is None:
        return RegistriesConfig()
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".yaml"))
    except FileNotFoundError:
        return RegistriesConfig()
    except OSError as e:
        raise RegistriesConfigError(f"cannot read registries.d folder {directory}: "
                                    f"{e.strerror}") from e
    if len(names) > MAX_CONFIG_FILES:
        raise RegistriesConfigError(f"{directory} holds more than {MAX_CONFIG_FILES} .yaml files")
    default: Section | None = None
    docker: dict[str, Section] = {}
    for name in names:
        path = directory / name
        try:
            data = read_limited(path, MAX_CONFIG_FILE)
        except TooLarge as e:
            raise RegistriesConfigError(f"registries.d file {path} is larger than "
                                        f"{MAX_CONFIG_FILE} bytes") from e
        except OSError as e:
            raise RegistriesConfigError(f"cannot read registries.d file {path}: {e.strerror}",
                                        hint="make it readable, or remove it") from e
        d, scopes = parse_file(data, str(path))
        if d is not None:
            if default is not None:
                raise RegistriesConfigError(
                    f"invalid registries.d file {path}: default-docker is also defined in "
                    f"{default.source}", hint="keep one default-docker section in one file")
            default = d
        for scope, sec in scopes.items():
            if scope in docker:
                raise RegistriesConfigError(
                    f"invalid registries.d file {path}: docker scope {scope!r} is also "
                    f"defined in {docker[scope].source}",
                    hint="configure each scope in one file only")
            docker[scope] = sec
    return RegistriesConfig(directory=directory, default_docker=default, docker=docker)


def signature_url(base: str, ref: Reference, manifest_digest: str, index: int) -> str:
    """The URL of signature ``index`` (from 1) of ``manifest_digest`` under ``base``.

    ``<base>/<repository path>@<algo>=<hex>/signature-<index>``, as containers/image
    lays it out. Raises LookasideError for a malformed digest or index.
    """
    m = _DIGEST.fullmatch(manifest_digest)
    if not m or index < 1:
        raise LookasideError(f"invalid manifest digest {manifest_digest!r} or index {index}")
    if any(part in ("", ".", "..") for part in ref.path.split("/")):
        raise LookasideError(f"unexpected path elements in {ref} for a lookaside store")
    return f"{base.rstrip('/')}/{ref.path}@{m.group(1)}={m.group(2)}/signature-{index}"


def _file_path(url: str) -> Path:
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def _read_file(path: Path, limit: int) -> bytes | None:
    from secpod._files import NotRegularFile, TooLarge, read_limited

    try:
        return read_limited(path, limit)
    except FileNotFoundError:
        return None
    except TooLarge as e:
        raise LookasideError(f"signature {path} is larger than {limit} bytes") from e
    except NotRegularFile as e:
        raise LookasideError(f"{path} is not a regular file") from e
    except OSError as e:
        raise LookasideError(f"cannot read {path}: {e.strerror}") from e


def _http_get(url: str, limit: int) -> bytes | None:
    """GET ``url``; None on 404. Redirects are followed, never from https to http."""
    import http.client
    import ssl

    tls = ssl.create_default_context()
    for _ in range(MAX_REDIRECTS + 1):
        u = urllib.parse.urlsplit(url)
        conn: http.client.HTTPConnection
        if u.scheme == "https":
            conn = http.client.HTTPSConnection(u.netloc, timeout=HTTP_TIMEOUT, context=tls)
        else:
            conn = http.client.HTTPConnection(u.netloc, timeout=HTTP_TIMEOUT)
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        try:
            conn.request("GET", target, headers={"Accept": "*/*"})
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308):
                loc = resp.getheader("Location") or ""
                nxt = urllib.parse.urljoin(url, loc)
                ns = urllib.parse.urlsplit(nxt).scheme
                if ns not in ("http", "https") or (u.scheme == "https" and ns == "http"):
                    raise LookasideError(f"{url} redirects to {nxt!r}; not followed")
                url = nxt
                continue
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise LookasideError(f"{url} answered HTTP {resp.status} {resp.reason}")
            data = resp.read(limit + 1)
            if len(data) > limit:
                raise LookasideError(f"signature {url} is larger than {limit} bytes")
            return data
        except (OSError, http.client.HTTPException) as e:
            raise LookasideError(f"cannot read {url}: {e}") from e
        finally:
            conn.close()
    raise LookasideError(f"{url}: more than {MAX_REDIRECTS} redirects")


def read_signatures(base: str, ref: Reference, manifest_digest: str) -> list[bytes]:
    """signature-1, -2, ... of ``manifest_digest`` in the store at ``base``, up to the
    first missing one (at most MAX_LOOKASIDE_SIGNATURES).

    Raises LookasideError when the store cannot be read (unreachable, HTTP error,
    an oversized signature).
    """
    from secpod.signing.store import MAX_SIGNATURE

    scheme = urllib.parse.urlsplit(base).scheme
    out: list[bytes] = []
    for n in range(1, MAX_LOOKASIDE_SIGNATURES + 1):
        url = signature_url(base, ref, manifest_digest, n)
        if scheme == "file":
            data = _read_file(_file_path(url), MAX_SIGNATURE)
        elif scheme in ("http", "https"):
            data = _http_get(url, MAX_SIGNATURE)
        else:
            raise LookasideError(f"lookaside {base}: unsupported scheme {scheme!r}")
        if data is None:
            break
        out.append(data)
    return out


def write_signature(base: str, ref: Reference, manifest_digest: str, blob: bytes) -> Path:
    """Write ``blob`` as the next free ``signature-N`` in the file:// store at ``base``;
    the same bytes already there return that file. Raises LookasideError."""
    from secpod.errors import MalformedInput, SigningError
    from secpod.signing.store import append_numbered

    if urllib.parse.urlsplit(base).scheme != "file":
        raise LookasideError(f"cannot write signatures to {base}: only file:// lookaside "
                             "stores are writable", hint="set lookaside-staging to a "
                             "file:/// URL in registries.d")
    folder = _file_path(signature_url(base, ref, manifest_digest, 1)).parent
    try:
        # 0o777 (less the umask), not the store's 0o700: a web server often serves it.
        return append_numbered(folder, blob, most=MAX_LOOKASIDE_SIGNATURES, mode=0o777)
    except (MalformedInput, SigningError) as e:
        raise LookasideError(f"lookaside store: {e.message}",
                             hint="check the lookaside-staging URL in registries.d") from e


@record(frozen=True)
class Fetched:
    """What a pull found in the lookaside store: blobs to store, and what to tell the user."""

    signatures: tuple[bytes, ...] = ()
    sources: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


def fetch_for_pull(ref: Reference, manifest_digest: str) -> Fetched:
    """The simple-signing signatures of the lookaside store registries.d names for ``ref``.

    An unreadable store is a warning, never an error (the trust policy decides
    later what a missing signature means). Raises RegistriesConfigError for a
    malformed registries.d.
    """
    from secpod.signing.store import is_sigstore_blob

    config = load_config()
    found = config.lookup(ref, write=False)
    if found is None:
        return Fetched()
    scope, base, source = found
    details: dict[str, Any] = {"url": base, "scope": scope, "config": source}
    try:
        blobs = read_signatures(base, ref, manifest_digest)
    except LookasideError as e:
        warning = f"lookaside store {base} (scope {scope}, {source}) not read: {e.message}"
        details["warning"] = warning
        return Fetched(warnings=(warning,), details=details)
    kept = tuple(b for b in blobs if not is_sigstore_blob(b))
    warnings: tuple[str, ...] = ()
    if len(kept) != len(blobs):
        warnings = (f"{len(blobs) - len(kept)} sigstore signature(s) in lookaside store {base} "
                    "ignored: lookaside stores carry simple-signing signatures only",)
        details["warning"] = warnings[0]
    details["signatures"] = len(kept)
    return Fetched(signatures=kept, sources=(f"lookaside {base}",) if kept else (),
                   warnings=warnings, details=details)


@record(frozen=True)
class Staged:
    """Where a new signature went in the write store (``path`` None: not writable)."""

    url: str
    scope: str
    path: Path | None
    warning: str | None = None


def stage_signature(ref: Reference, manifest_digest: str, blob: bytes) -> Staged | None:
    """Write a simple-signing ``blob`` to the write store registries.d names for ``ref``.

    None when registries.d names none. A store that is not file:// is not
    written (``path`` None, with a warning). Raises RegistriesConfigError,
    LookasideError (a file:// store that cannot be written).
    """
    found = load_config().lookup(ref, write=True)
    if found is None:
        return None
    scope, base, _source = found
    if urllib.parse.urlsplit(base).scheme != "file":
        return Staged(base, scope, None, f"lookaside store {base} (scope {scope}) is not "
                      "written: only file:// stores are writable; set lookaside-staging")
    return Staged(base, scope, write_signature(base, ref, manifest_digest, blob))


__all__ = [
    "Fetched",
    "RegistriesConfig",
    "Section",
    "Staged",
    "config_dir",
    "fetch_for_pull",
    "load_config",
    "parse_file",
    "read_signatures",
    "signature_url",
    "stage_signature",
    "write_signature",
]
