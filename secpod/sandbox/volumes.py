"""Named volumes: folders in the user's store that outlive the containers using them.

``volumes/<name>/volume.json`` holds the name, creation time and labels;
``volumes/<name>/_data`` is what a container mounts (made by the user, so owned by
container root, which the user is mapped to). A volume is made whole under a
temporary name and renamed into place, and removed by renaming it out of place first,
so no command ever sees half a volume. Removal goes through
:func:`secpod.sandbox.userns.remove_tree`: a container's processes write with
subordinate ids the user alone cannot delete.

A container uses a volume when one of its recorded mounts has the volume's
``_data`` (or a folder in it) as its source; such a volume is never removed, not by
``rm -f`` and not by ``prune`` (Docker refuses the same).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from secpod import paths
from secpod._record import field, record
from secpod.errors import Conflict, Error, NotFound, UsageError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from secpod.spec import Mount

# Docker's rule (daemon/names): a letter or digit, then letters, digits, _ . -
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
MAX_NAME = 128
DRIVER = "local"
_RECORD = "volume.json"
_DATA = "_data"


class VolumeInUse(Conflict):
    """A volume a container uses cannot be removed."""


def check_name(name: str) -> str:
    """``name`` if it is a volume's name in Docker's form; raises UsageError."""
    if not name or len(name) > MAX_NAME or not _NAME.fullmatch(name):
        why = ("is empty" if not name else f"is longer than {MAX_NAME} characters"
               if len(name) > MAX_NAME else "is not a volume name")
        raise UsageError(f"the volume name {name!r} {why}",
                         hint="a letter or digit, then letters, digits, '_', '.' or '-' "
                              f"(at most {MAX_NAME}); a host path starts with /")
    return name


def volumes_dir() -> Path:
    """Where the volumes are, symlinks resolved: the path crun mounts is a real one
    (bundle.checked_config refuses a bind source that is not)."""
    return Path(os.path.realpath(paths.data_dir() / "volumes"))


def mountpoint(name: str) -> Path:
    """The folder a container mounts for the volume ``name`` (existing or not)."""
    return volumes_dir() / check_name(name) / _DATA


def name_of(source: str) -> str | None:
    """The volume whose ``_data`` holds the host path ``source``; None for another path."""
    try:
        rel = Path(source).relative_to(volumes_dir())
    except ValueError:
        return None
    parts = rel.parts
    if len(parts) >= 2 and parts[1] == _DATA and _NAME.fullmatch(parts[0]):
        return parts[0]
    return None


@record(frozen=True, eq=False)
class Volume:
    """One volume as ``volume.json`` has it."""

    name: str
    created: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def mountpoint(self) -> Path:
        return volumes_dir() / self.name / _DATA

    def inspect(self, used_by: list[str]) -> dict[str, Any]:
        """Docker's ``volume inspect`` object, with the containers using it."""
        return {"Name": self.name, "Driver": DRIVER, "Mountpoint": str(self.mountpoint),
                "CreatedAt": self.created, "Labels": dict(self.labels), "Scope": "local",
                "Options": {}, "UsedBy": used_by}


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    """The volumes folder, held exclusively: one create, rm or prune at a time."""
    import fcntl

    root = paths.ensure_private_dir(paths.data_dir() / "volumes")
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield Path(os.path.realpath(root))
    finally:
        os.close(fd)


def _read(folder: Path) -> Volume:
    from secpod._files import read_limited

    data = json.loads(read_limited(folder / _RECORD, 1 << 20, nofollow=True))
    labels = data.get("Labels") or {}
    if data.get("Name") != folder.name or not isinstance(labels, dict):
        raise ValueError(folder)
    return Volume(name=folder.name, created=str(data.get("CreatedAt", "")),
                  labels={str(k): str(v) for k, v in labels.items()})


def get(name: str) -> Volume:
    """The volume ``name``. Raises UsageError (not a name), NotFound."""
    folder = volumes_dir() / check_name(name)
    try:
        return _read(folder)
    except (OSError, ValueError) as e:
        raise NotFound(f"No such volume: {name}",
                       hint="secpod volume ls lists your volumes; secpod volume create "
                            "NAME makes one") from e


def all_volumes() -> list[Volume]:
    root = volumes_dir()
    out = []
    with contextlib.suppress(FileNotFoundError):
        for folder in root.iterdir():
            if _NAME.fullmatch(folder.name) and folder.is_dir() and not folder.is_symlink():
                try:
                    out.append(_read(folder))
                except (OSError, ValueError):
                    continue
    return sorted(out, key=lambda v: v.name)


def users() -> dict[str, list[str]]:
    """Volume name -> the names of the containers (of any state) using it."""
    from secpod.sandbox import state

    out: dict[str, list[str]] = {}
    for ctr in state.all_containers():
        for m in ctr.mounts:
            name = name_of(str(m.get("source", ""))) if m.get("type") == "bind" else None
            if name is not None and ctr.name not in out.setdefault(name, []):
                out[name].append(ctr.name)
    return out


def _audit(action: str, outcome: str, name: str, reason: str | None = None,
           **details: Any) -> None:
    from secpod import audit

    audit.record(action, outcome, reason=reason, details={"volume": name, **details})


def create(name: str, asked: Iterable[tuple[str, str]] = (), *,
           by: str = "volume create") -> tuple[Volume, bool]:
    """Make the volume ``name``, or find it: (volume, whether it was made now).

    As Docker, an existing volume is no error when no label is asked that differs from
    its own. Raises UsageError (the name), Conflict (it exists with other labels),
    HostError (the store), AuditError; a refusal is audited."""
    labels = dict(asked)
    try:
        check_name(name)
        with _locked() as root:
            final = root / name
            if final.exists() or final.is_symlink():
                vol = get(name)
                if labels and labels != vol.labels:
                    raise Conflict(f"volume {name} exists, with other labels",
                                   hint=f"secpod volume inspect {name}; give another name")
                return vol, False
            vol = _make(root, name, labels)
    except Error as e:
        _audit("volume.create", "refused", name, e.message, by=by)
        raise
    try:
        _audit("volume.create", "ok", name, labels=labels, by=by)
    except Error:
        _discard(name)
        raise
    return vol, True


def _make(root: Path, name: str, labels: dict[str, str]) -> Volume:
    from secpod._files import write_atomic
    from secpod.errors import HostError
    from secpod.sandbox.state import now

    vol = Volume(name=name, created=now(), labels=labels)
    staging = root / f".new-{name}-{os.getpid()}"
    try:
        staging.mkdir(mode=0o700)
        (staging / _DATA).mkdir(mode=0o755)
        write_atomic(staging / _RECORD, json.dumps(
            {"Name": name, "CreatedAt": vol.created, "Labels": labels, "Driver": DRIVER},
            indent=2) + "\n")
        os.rename(staging, root / name)
    except OSError as e:
        from secpod import _files

        _files.remove_tree(staging, [])
        raise HostError(f"cannot create the volume {name}: {e.strerror}",
                        hint=f"check free space and permissions of {root}") from e
    return vol


def _size(path: Path) -> int:
    total = 0
    for top, dirs, files in os.walk(path, onerror=lambda _: None):
        for n in dirs + files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, n)).st_blocks * 512
    return total


def size_of(vol: Volume) -> int:
    """The space the volume's files take (what the user can read of them)."""
    return _size(vol.mountpoint)


def _discard(name: str) -> int:
    """Take the volume out of place (one rename), then remove it: its size."""
    from secpod.sandbox import userns

    root = volumes_dir()
    trash = root / f".rm-{name}-{os.getpid()}"
    os.rename(root / name, trash)
    size = _size(trash)
    userns.remove_tree(trash)
    return size


def remove(name: str, *, force: bool = False, by: str = "volume rm") -> int:
    """Remove the volume ``name``: its size. With ``force`` a missing volume is no error
    (0); a volume a container uses is refused either way, naming the containers.

    Raises UsageError, NotFound, VolumeInUse, HostError (files remain); audited."""
    try:
        check_name(name)
        with _locked():
            try:
                get(name)
            except NotFound:
                if force:
                    return 0
                raise
            using = users().get(name, [])
            if using:
                raise VolumeInUse(
                    f"volume {name} is in use by container{'s' if len(using) > 1 else ''} "
                    + ", ".join(using),
                    hint=f"remove {'them' if len(using) > 1 else 'it'} first "
                         f"(secpod rm {' '.join(using)})")
            size = _discard(name)
    except Error as e:
        _audit("volume.rm", "refused" if isinstance(e, UsageError | NotFound | Conflict)
               else "error", name, e.message, by=by)
        raise
    except OSError as e:
        from secpod.errors import HostError

        err = HostError(f"cannot remove the volume {name}: {e.strerror}",
                        hint="check the permissions of your data dir")
        _audit("volume.rm", "error", name, err.message, by=by)
        raise err from e
    _audit("volume.rm", "ok", name, by=by)
    return size


@record(frozen=True, eq=False)
class Pruned:
    removed: list[str]
    failed: list[tuple[str, str]]
    reclaimed: int


def prune() -> Pruned:
    """Remove every volume no container uses (of any state)."""
    removed, failed, reclaimed = [], [], 0
    with _locked():
        _sweep()
    using = users()
    for vol in all_volumes():
        if vol.name in using:
            continue
        try:
            reclaimed += remove(vol.name, by="volume prune")
            removed.append(vol.name)
        except VolumeInUse:
            continue   # a container took it since the list was read
        except Error as e:
            failed.append((vol.name, e.message))
    return Pruned(removed=removed, failed=failed, reclaimed=reclaimed)


def _sweep() -> None:
    """Remove what a killed ``volume rm`` (``.rm-*``) or ``create`` (``.new-*-PID``, its
    maker gone) left out of place."""
    from secpod.sandbox import userns

    root = volumes_dir()
    with contextlib.suppress(FileNotFoundError):
        for folder in root.iterdir():
            pid = folder.name.rpartition("-")[2]
            gone = folder.name.startswith(".rm-") or (
                folder.name.startswith(".new-") and pid.isdigit()
                and not Path(f"/proc/{pid}").exists())
            if gone and folder.is_dir() and not folder.is_symlink():
                with contextlib.suppress(Error):
                    userns.remove_tree(folder)


# -- a container's volumes (the create pipeline) -----------------------------------------

def prepare(mounts: Iterable[Mount], rootfs: Path, container: str) -> list[str]:
    """Before the bundle is built: each user mount's destination is checked against the
    image (no symlink on the way), each named volume is made where missing (and the
    image's files at its destination copied into a new, empty one, unless
    ``nocopy``), and a ``volume-subpath`` must be a real folder inside its volume.
    Returns the names of the volumes made, for :func:`discard_made` if the create
    fails. Raises UsageError, MalformedInput, HostError."""
    from secpod.errors import MalformedInput
    from secpod.sandbox import rootfs as rootfsmod

    made: list[str] = []
    try:
        for m in mounts:
            inside = rootfsmod.resolve(rootfs, m.destination)
            if inside != rootfs.joinpath(*m.destination.strip("/").split("/")):
                shown = "/" + str(inside.relative_to(rootfs))
                raise MalformedInput(
                    f"the mount destination {m.destination} is a symbolic link in the image "
                    f"(to {shown})",
                    hint=f"mount at {shown} instead: secpod does not mount through links")
            if m.kind != "volume":
                continue
            vol, new = create(m.source, m.labels, by=f"run ({container})")
            if new:
                made.append(vol.name)
            data = vol.mountpoint
            if not m.nocopy and not m.subpath and inside.is_dir() \
                    and not any(data.iterdir()):
                _copy_in(inside, data, m.source)
            if m.subpath:
                target = data / m.subpath
                if os.path.realpath(target) != str(target) or not target.is_dir():
                    raise UsageError(
                        f"volume-subpath {m.subpath} is not a folder in the volume "
                        f"{m.source} (or has a symbolic link on the way)",
                        hint="make the folder in the volume first")
    except BaseException:
        discard_made(made)
        raise
    return made


def _copy_in(src: Path, data: Path, name: str) -> None:
    """Docker's copy of the image's files at the destination into a new volume."""
    import subprocess

    from secpod.errors import HostError

    proc = subprocess.run(["cp", "-a", "--no-dereference", f"{src}/.", str(data)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HostError(f"cannot copy the image's files into the volume {name}: "
                        f"{proc.stderr.strip()}",
                        hint="check free space; or mount with volume-nocopy")


def discard_made(names: Iterable[str]) -> None:
    """Remove the volumes a failed create made (none is in use: it was never saved)."""
    for name in names:
        with contextlib.suppress(Error, OSError):
            remove(name, by="run failed")
