"""What secpod knows of one pod, saved as ``DATA/pods/ID/pod.json``, and the pod names
(``DATA/pods/names/NAME`` -> ID), as containers have theirs (docs/pods.md)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from secpod import _record, paths
from secpod._files import write_atomic
from secpod._record import field, record
from secpod.errors import Conflict, NotFound, UsageError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

# The namespaces a pod's members share with its infra. The user namespace is always
# shared (the others belong to it); Podman's default is the same set.
SHAREABLE = ("net", "ipc", "uts")


@record
class Pod:
    id: str
    name: str
    created: str
    hostname: str
    profile: str = "default"           # the floor of its members' profiles
    labels: dict[str, str] = field(default_factory=dict)
    share: list[str] = field(default_factory=lambda: list(SHAREABLE))
    ports: list[dict[str, Any]] = field(default_factory=list)   # as asked at create
    infra_id: str | None = None
    # Of the running infra: its pid and start time, and the (device, inode) of each
    # namespace a member joins: what a member checks before it joins (namespaces.py).
    infra_identity: str | None = None
    namespaces: dict[str, list[int]] = field(default_factory=dict)
    create_command: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def dir(self) -> Path:
        return pods_dir() / self.id

    def save(self) -> None:
        write_atomic(self.dir / "pod.json",
                     json.dumps(_record.asdict(self), separators=(",", ":"), sort_keys=True))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def reload(self) -> Pod:
        return _read(self.dir)


def pods_dir() -> Path:
    return paths.data_dir() / "pods"


def _names() -> Path:
    return pods_dir() / "names"


def valid_name(name: str) -> bool:
    return (0 < len(name) <= 63 and name[0].isalnum()
            and all(c.isalnum() or c in "_.-" for c in name))


def reserve(name: str) -> tuple[str, Path]:
    """A new pod id and folder under ``name``. Raises UsageError, Conflict."""
    if not valid_name(name):
        raise UsageError(f"invalid pod name {name!r}",
                         hint="names are letters, digits, '_', '.' and '-', starting "
                              "alphanumeric, at most 63")
    paths.ensure_private_dir(paths.data_dir())
    _names().mkdir(parents=True, exist_ok=True)
    pid = os.urandom(32).hex()
    try:
        os.symlink(pid, _names() / name)
    except FileExistsError:
        other = os.readlink(_names() / name)
        raise Conflict(f"the pod name {name!r} is in use by pod {other[:12]}",
                       hint=f"secpod pod rm {name}, or choose another --name") from None
    folder = pods_dir() / pid
    folder.mkdir(mode=0o700)
    return pid, folder


def release(pod_id: str, name: str) -> None:
    """Forget the pod: its folder and its name."""
    from secpod import _files

    link = _names() / name
    with contextlib.suppress(FileNotFoundError):
        if os.readlink(link) == pod_id:
            link.unlink()
    folder = pods_dir() / pod_id
    if folder.exists():
        _files.remove_tree(folder, [])


def _read(folder: Path) -> Pod:
    with open(folder / "pod.json") as f:
        data = json.load(f)
    known = {f.name for f in _record.fields(Pod)}
    return Pod(**{k: v for k, v in data.items() if k in known})


def all_pods() -> list[Pod]:
    root = pods_dir()
    if not root.is_dir():
        return []
    out = []
    for folder in root.iterdir():
        if folder.name == "names" or not (folder / "pod.json").is_file():
            continue
        try:
            out.append(_read(folder))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(out, key=lambda p: p.created, reverse=True)


def lookup(ref: str) -> Pod:
    """A pod by name, full id or unique id prefix. Raises NotFound."""
    link = _names() / ref
    if valid_name(ref) and link.is_symlink():
        folder = pods_dir() / os.readlink(link)
        if (folder / "pod.json").is_file():
            return _read(folder)
    if len(ref) >= 3 and all(c in "0123456789abcdef" for c in ref):
        matches = [p for p in all_pods() if p.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NotFound(f"pod id prefix {ref!r} is ambiguous", hint="give more of the id")
    raise NotFound(f"no such pod: {ref}", hint="secpod pod ps lists your pods")
