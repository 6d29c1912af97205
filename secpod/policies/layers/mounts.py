"""The mounts layer: the root filesystem's read-only flag, the profile's tmpfs, devices,
masked and read-only paths, and the mounts the run asks for.

A user's bind mount must come from inside one of the profile's ``allowed_bind_sources``
(judged on the symlink-resolved source, ``~`` being the user's passwd home); it is
always ``nosuid,nodev`` and ``rprivate``. A named volume is a bind mount of its folder
in the user's store (secpod.sandbox.volumes), as the profile's ``volumes`` allows
(``rw``, ``ro``: only read-only ones, ``none``). A user's tmpfs is always
``nosuid,nodev``, ``noexec`` unless it asks ``exec`` (a weakening the floor judged),
of the profile's ``tmpfs_size`` and mode 1777 unless it says otherwise, read-only with
``ro``.
"""

from __future__ import annotations

from pathlib import Path

from secpod.errors import Refused, UsageError
from secpod.policies import profile as profile_mod
from secpod.policies.layers import Fragment

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.policies.profile import Profile
    from secpod.sandbox.host import HostFeatures
    from secpod.spec import ContainerSpec, Mount

TMPFS_MODE = 0o1777


def generate(prof: Profile, spec: ContainerSpec, host: HostFeatures, *,
             user: str | None = None) -> Fragment:
    """``root.readonly``, ``mounts``, ``linux.maskedPaths`` and ``linux.readonlyPaths``.

    ``user``: whose home ``~`` in the allowed bind sources means (default: the invoking
    user). Raises UsageError (a missing bind source, a destination not below /, two
    mounts at one place) and Refused (a bind source the profile does not allow).
    """
    read_only = spec.security.read_only
    root_readonly = prof.read_only_root if read_only is None else read_only
    mounts: list[dict[str, Any]] = []
    for t in prof.tmpfs:
        mounts.append({"destination": t.path, "type": "tmpfs", "source": "tmpfs",
                       "options": [*t.options, f"mode={t.mode}", f"size={t.size}"]})
    for dev in prof.devices:
        mounts.append({"destination": dev, "type": "bind", "source": dev,
                       "options": ["bind", "nosuid", "noexec"]})
    seen = {m["destination"] for m in mounts}
    for m in spec.mounts:
        dst = m.destination
        if not _below_root(dst):
            raise UsageError(f"mount destination {dst!r} must be an absolute path below /",
                             hint="e.g. /data")
        if dst in seen:
            raise UsageError(f"two mounts at {dst}",
                             hint="the profile mounts there already, or the run asks twice")
        seen.add(dst)
        if m.kind == "bind":
            mounts.append(_bind(prof, m, user))
        elif m.kind == "volume":
            mounts.append(_volume(prof, m))
        else:
            mounts.append(_tmpfs(m, prof.tmpfs_size))
    return Fragment(root_readonly=root_readonly, mounts=tuple(mounts),
                    linux={"maskedPaths": list(prof.masked_paths),
                           "readonlyPaths": list(prof.readonly_paths)},
                    summary={"read_only_root": root_readonly})


def _below_root(dst: str) -> bool:
    # Only the normal form: "/.", "//" and "/a/.." all name the root (or climb).
    parts = dst.split("/")
    return (len(parts) > 1 and parts[0] == ""
            and all(p not in ("", ".", "..") for p in parts[1:]) and "\0" not in dst)


def _bind(prof: Profile, m: Mount, user: str | None) -> dict[str, Any]:
    source = _resolve_source(m.source)
    if not _bind_allowed(source, prof.allowed_bind_sources, user):
        raise Refused(
            f"profile {prof.name} does not allow bind mounts from {source}",
            hint="allowed sources: " + ", ".join(prof.allowed_bind_sources)
                 + "; or use a profile that extends it with more")
    return {"destination": m.destination, "type": "bind", "source": str(source),
            "options": ["rbind" if m.recursive else "bind", "ro" if m.read_only else "rw",
                        "nosuid", "nodev", "rprivate"]}


def _volume(prof: Profile, m: Mount) -> dict[str, Any]:
    from secpod.sandbox import volumes

    if prof.volumes == "none" or (prof.volumes == "ro" and not m.read_only):
        raise Refused(
            f"profile {prof.name} does not allow "
            f"{'named' if prof.volumes == 'none' else 'writable named'} volumes "
            f"(volume {m.source} at {m.destination})",
            hint="mount it read-only (-v NAME:/path:ro)" if prof.volumes == "ro"
            else "use a profile whose [filesystem] volumes is \"rw\" or \"ro\"")
    source = volumes.mountpoint(m.source)
    if m.subpath:
        source = source.joinpath(m.subpath)
    return {"destination": m.destination, "type": "bind", "source": str(source),
            "options": ["rbind", "ro" if m.read_only else "rw", "nosuid", "nodev", "rprivate"]}


def _tmpfs(m: Mount, default_size: int) -> dict[str, Any]:
    if m.kind != "tmpfs":
        raise UsageError(f"unsupported mount type {m.kind!r} at {m.destination}",
                         hint="bind a host folder or use a tmpfs")
    options = ["nosuid", "nodev"]
    if not m.exec_:
        options.append("noexec")
    if m.read_only:
        options.append("ro")
    mode = TMPFS_MODE if m.mode is None else m.mode
    size = default_size if m.size is None else m.size
    return {"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
            "options": [*options, f"mode={mode:o}", f"size={size}"]}


def _resolve_source(src: str) -> Path:
    # Resolved again here, not only when the spec was made: the profile judges the
    # path the runtime will mount, as it is now.
    p = Path(src)
    if not p.is_absolute():
        raise UsageError(f"volume source {src!r} is not an absolute path",
                         hint="give the host path in full, e.g. -v $PWD/data:/data")
    try:
        return p.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise UsageError(f"volume source {src} does not exist or cannot be resolved",
                         hint="create it first, or fix the path") from e


def _under(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def _bind_allowed(source: Path, allowed: tuple[str, ...], user: str | None) -> bool:
    home = profile_mod.home_of(user)
    for a in allowed:
        if a == "~" or a.startswith("~/"):
            if home is None:
                continue
            base = home / a[2:] if a.startswith("~/") else home
        else:
            base = Path(a)
        try:
            base = base.resolve()
        except (OSError, RuntimeError):
            continue
        if _under(source, base):
            return True
    return False
