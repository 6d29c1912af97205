"""The OCI bundle: ``config.json`` plus the root filesystem it names.

The root filesystem is the image's unpacked tree, shared read-only, when the
profile makes root read-only; otherwise a private copy in the container's
folder. Containers never get a writable view of the image cache.
Security settings come whole from :class:`secpod.policies.Confinement`; this
module adds what every container has (base mounts, id mappings, the process).

``config.json`` is hashed when it is written (:func:`write_config`), the digest
is kept in the container's record and its audit records, and ``start`` and
``exec`` use the bundle only through :func:`checked_config`: a config edited
since ``create`` (capabilities added, seccomp removed) is refused, never run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from secpod._files import write_atomic
from secpod.errors import MalformedInput, Refused, UsageError
from secpod.sandbox import rootfs as rootfsmod

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.policies import Confinement
    from secpod.sandbox.preflight import Identity
    from secpod.spec import Process

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BundleChanged(Refused):
    """The bundle's ``config.json`` is not the one secpod wrote at ``create``."""


class CommandNotFound(MalformedInput):
    """The container's command is not in the image (exit 127, as Docker)."""

    exit_code = 127


class CommandNotExecutable(MalformedInput):
    """The container's command exists but cannot be executed (exit 126)."""

    exit_code = 126


def process_args(image_config: dict[str, Any], req: Process) -> list[str]:
    """Entrypoint + command, Docker's way: CLI words replace Cmd; --entrypoint replaces both."""
    entry = (
        list(req.entrypoint)
        if req.entrypoint is not None
        else list(image_config.get("Entrypoint") or [])
    )
    if req.entrypoint is not None:
        cmd = list(req.command)
    else:
        cmd = list(req.command) if req.command else list(image_config.get("Cmd") or [])
    args = entry + cmd
    if not args:
        raise UsageError(
            "the image has no command and none was given", hint="secpod run IMAGE COMMAND [ARG...]"
        )
    return args


def process_env(image_config: dict[str, Any], req: Process, hostname: str) -> list[str]:
    env: dict[str, str] = {}
    for item in image_config.get("Env") or []:
        key, sep, value = str(item).partition("=")
        if sep:
            env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    if req.tty:  # as Podman: a terminal's type from the image, -e, or xterm
        env.setdefault("TERM", "xterm")
    env["HOSTNAME"] = hostname
    env["container"] = "secpod"
    env.update(req.env)
    return [f"{k}={v}" for k, v in env.items()]


def _base_mounts(userdata: Path, *, own_netns: bool, root_readonly: bool) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",  # noqa: S108 - a path inside the container
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
    ]
    if own_netns:
        mounts.append(
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            }
        )
    else:
        # A sysfs mount needs a network namespace of our own; without one, bind the host's.
        mounts.append(
            {
                "destination": "/sys",
                "type": "bind",
                "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
            }
        )
    mode = "ro" if root_readonly else "rw"
    for name in ("hosts", "resolv.conf", "hostname"):
        mounts.append(
            {
                "destination": f"/etc/{name}",
                "type": "bind",
                "source": str(userdata / name),
                "options": ["rbind", mode, "nosuid", "nodev", "noexec"],
            }
        )
    return mounts


def write_userdata(userdata: Path, hostname: str,
                   extra_hosts: tuple[tuple[str, str], ...] = (),
                   dns: tuple[str, ...] | None = None) -> None:
    """/etc/hosts, /etc/resolv.conf, /etc/hostname; ``extra_hosts``: --add-host's
    (name, address) lines; ``dns``: the name servers of a container with a network
    (None: loopback only)."""
    userdata.mkdir(mode=0o700, exist_ok=True)
    (userdata / "hostname").write_text(hostname + "\n")
    (userdata / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        + "".join(f"{addr}\t{name}\n" for name, addr in extra_hosts)
    )
    (userdata / "resolv.conf").write_text(
        "# no network: this container has loopback only\n" if dns is None else
        "".join(f"nameserver {a}\n" for a in dns))


def prepare_rootfs(image_rootfs: Path, folder: Path, *, readonly: bool) -> tuple[Path, str]:
    """(rootfs path, mode): the shared image tree when read-only; else the folders of an
    overlay root (docs/adr/0006-overlay-root.md): the container's writes go to
    ``folder/upper``, the image's tree is its never-written lower layer, and the holder
    mounts the two on ``folder/merged`` in the container's own mount namespace."""
    if readonly:
        return image_rootfs, "shared-readonly"
    for name in ("upper", "work", "merged"):
        (folder / name).mkdir(mode=0o755)
    return folder / "merged", "overlay"


def build_config(
    *,
    cid: str,
    hostname: str,
    rootfs: Path,
    image_tree: Path,
    image_config: dict[str, Any],
    request: Process,
    confinement: Confinement,
    identity: Identity,
    userdata: Path,
) -> dict[str, Any]:
    """The OCI runtime config for one container, whose root is ``rootfs`` (the image's
    tree ``image_tree`` itself, or an overlay over it). Raises CommandNotFound and
    friends."""
    cfg = image_config.get("config") or {}
    args = process_args(cfg, request)
    env = process_env(cfg, request, hostname)
    cwd = request.workdir or cfg.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise UsageError(f"the working directory {cwd!r} is not absolute", hint="use -w /PATH")
    user_spec = request.user if request.user is not None else (cfg.get("User") or "0")
    uid, gid, home = rootfsmod.lookup_user(image_tree, user_spec)
    if home and not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    search = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    check_command(image_tree, args[0], search, cwd)

    linux = dict(confinement.linux)
    namespaces = [{"type": "user"}] + [
        ns for ns in linux.pop("namespaces", []) if ns.get("type") != "user"
    ]
    own_netns = any(ns.get("type") == "network" for ns in namespaces)
    mounts = _base_mounts(userdata, own_netns=own_netns, root_readonly=confinement.root_readonly)
    mounts += [dict(m) for m in confinement.mounts]
    # The shared tree gets its mount points from secpod, so that crun never writes into
    # it; over an overlay, crun makes the missing ones in the container's upper folder.
    create = rootfs == image_tree
    for m in mounts:
        directory = m["type"] != "bind" or Path(m["source"]).is_dir()
        rootfsmod.ensure_mountpoint(image_tree, m["destination"], directory=directory,
                                    create=create)
    rootfsmod.ensure_mountpoint(image_tree, cwd, directory=True, create=create)

    process: dict[str, Any] = {
        "terminal": request.tty,
        "user": {"uid": uid, "gid": gid},
        "args": args,
        "env": env,
        "cwd": cwd,
    }
    process.update(confinement.process)
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(rootfs), "readonly": confinement.root_readonly},
        "hostname": hostname,
        "mounts": mounts,
        "annotations": {
            "io.secpod.id": cid,
            "io.secpod.profile": confinement.profile,
            "io.secpod.profile-hash": confinement.profile_hash,
        },
        "linux": {
            **linux,
            "namespaces": namespaces,
            "uidMappings": [m.as_oci() for m in identity.uid_map],
            "gidMappings": [m.as_oci() for m in identity.gid_map],
        },
    }


def check_command(rootfs: Path, name: str, search_path: str, cwd: str) -> None:
    """Fail early, as Docker does, when the command is missing (127) or not executable (126)."""
    host, container_path = rootfsmod.find_executable(rootfs, name, search_path, cwd)
    if host is None:
        raise CommandNotFound(
            f"{name}: command not found in the image", hint=f"the image's PATH is {search_path}"
        )
    if not rootfsmod.is_executable(host):
        raise CommandNotExecutable(
            f"{container_path}: permission denied (not an executable file)",
            hint="check the file's mode in the image",
        )


def config_digest(data: bytes) -> str:
    """``sha256:<hex>`` of a ``config.json`` as written."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_config(bundle: Path, config: dict[str, Any]) -> str:
    """Write ``bundle/config.json``; return its digest (what :func:`checked_config` holds
    it to)."""
    bundle.mkdir(mode=0o700, exist_ok=True)
    # Compact: only without indent does json use its C encoder.
    text = json.dumps(config, separators=(",", ":"))
    write_atomic(bundle / "config.json", text)
    return config_digest(text.encode())


MAX_CONFIG = 4 * 1024 * 1024


def checked_config(bundle: Path, recorded: str | None, name: str) -> dict[str, Any]:
    """The bundle's config, if it is byte for byte the one written at ``create``.

    ``recorded`` is the digest :func:`write_config` returned. Raises BundleChanged
    when the file differs, is missing or unreadable, or no digest was recorded.
    """
    from secpod._files import TooLarge, read_limited

    hint = (f"secpod rm {name} and create the container again; secpod does not run a "
            "bundle it did not write")
    path = bundle / "config.json"
    if recorded is None:
        raise BundleChanged(f"container {name} has no recorded digest of {path}", hint=hint)
    try:
        data = read_limited(path, MAX_CONFIG)
    except TooLarge as e:
        raise BundleChanged(f"{path} has changed since create (larger than {MAX_CONFIG} "
                            "bytes)", hint=hint) from e
    except OSError as e:
        raise BundleChanged(f"cannot read {path}: {e.strerror}", hint=hint) from e
    actual = config_digest(data)
    if actual != recorded:
        raise BundleChanged(f"{path} has changed since create (it hashes to {actual}, "
                            f"create recorded {recorded})", hint=hint)
    config: dict[str, Any] = json.loads(data)
    _check_bind_sources(config, name)
    return config


def _check_bind_sources(config: dict[str, Any], name: str) -> None:
    """Each bind source still is the real path create checked against the profile.

    ``create`` writes sources resolved (no symlink in them); a folder of the user's on
    that path swapped for a symlink since (``~/share`` -> ``/etc``) would make crun
    mount what the profile forbids. What remains is the moment between this check and
    crun's mount (docs/threat-model.md)."""
    for m in config.get("mounts", []):
        if m.get("type") != "bind" and "bind" not in m.get("options", []) and \
                "rbind" not in m.get("options", []):
            continue
        source = str(m.get("source", ""))
        if os.path.realpath(source) != source or not os.path.exists(source):
            raise BundleChanged(
                f"the bind mount source {source} of container {name} has changed since "
                f"create (it now resolves to {os.path.realpath(source)})",
                hint=f"put the folder back, or secpod rm {name} and create it again")
