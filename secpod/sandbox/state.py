"""Containers on disk: one folder per container under the data dir.

``containers/<id>/container.json`` is the record (what was asked, what was
enforced, what happened); ``containers/names/<name>`` is a symlink to the id,
made with one atomic ``symlink`` so two processes cannot take the same name.
A per-container lock file serialises the exit collection between the
monitor's callback, ``stop`` and ``rm``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from secpod import _files, _record, paths
from secpod._files import write_atomic
from secpod._record import field, record
from secpod.errors import Conflict, Error, NotFound, UsageError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _T = TypeVar("_T")

_ADJ = (
    "amber",
    "brave",
    "calm",
    "deft",
    "eager",
    "fair",
    "gentle",
    "hardy",
    "keen",
    "lucid",
    "merry",
    "noble",
    "quiet",
    "rapid",
    "sober",
    "tidy",
    "vivid",
    "wary",
    "young",
    "zesty",
)
_NOUN = (
    "otter",
    "falcon",
    "badger",
    "heron",
    "lynx",
    "marten",
    "osprey",
    "puffin",
    "raven",
    "shrike",
    "stoat",
    "tern",
    "vole",
    "wren",
    "yak",
    "ibex",
    "kite",
    "newt",
    "orca",
    "pika",
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@record
class Container:
    """What secpod knows of one container. Saved as container.json."""

    id: str
    name: str
    image_ref: str
    image_digest: str
    profile: str
    profile_hash: str
    created: str
    args: list[str]
    root_mode: str  # "shared-readonly", "overlay" (docs/adr/0006), or "private-copy" (older)
    detach: bool = False
    auto_remove: bool = False
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    exit_recorded: bool = False
    stopped_by: str | None = None  # "stop", "kill" or None
    unenforced: list[str] = field(default_factory=list)
    confinement: dict[str, Any] = field(default_factory=dict)
    trust: dict[str, Any] | None = None
    monitor: str = "none"  # "conmon" for -d, "secpod" for foreground runs
    tty: bool = False
    # -i on a detached container (create -i, run -d -i): its monitor holds its stdin
    # open, for `start -ai` and `attach` to write to (sandbox/attach.py).
    stdin: bool = False
    config_digest: str | None = None  # sha256 of bundle/config.json as create wrote it
    runtime: str = "crun"  # the OCI runtime that made it, and runs every operation on it
    # As asked, for Docker-shaped `inspect` (sandbox/views.py): args = entrypoint + cmd.
    entrypoint: list[str] = field(default_factory=list)
    user: str | None = None            # -u as given (None: the image's)
    labels: dict[str, str] = field(default_factory=dict)   # the image's
    mounts: list[dict[str, Any]] = field(default_factory=list)  # -v, --tmpfs, profile's
    stop_signal: str = "SIGTERM"       # --stop-signal, else the image's StopSignal
    stop_timeout: int = 10             # --stop-timeout: what stop waits by default
    init: bool = False                 # --init: catatonit is PID 1
    # The network (docs/networking.md): its mode, the ports published (host ports as
    # bound), the holder process that forwards them (pid, and pid + start time), and
    # pasta's egress allow list.
    network_mode: str = "private"
    ports: list[dict[str, Any]] = field(default_factory=list)
    holder_pid: int | None = None
    holder_identity: str | None = None
    egress: list[str] = field(default_factory=list)   # pasta's allow list ([]: any)
    root_lower: str | None = None      # an overlay root's lower layer: the image's tree
    # Services (docs/services.md): the restart policy and what it did, the log driver,
    # and the command line that made the container (generate systemd re-runs it).
    restart_policy: str = "no"         # no | always | unless-stopped | on-failure[:N]
    restart_count: int = 0             # restarts by the policy since the last start by hand
    restart_pending: bool = False      # exited, and the policy will start it again
    restart_delay: float = 0.0         # the last backoff (Docker's: 100 ms, doubling)
    log_driver: str = "k8s-file"
    sdnotify: str = "conmon"           # conmon: READY=1 and MAINPID to systemd once started
    create_command: list[str] = field(default_factory=list)
    healthcheck: dict[str, Any] = field(default_factory=dict)  # sandbox/health.py; {}: none
    health: dict[str, Any] = field(default_factory=dict)       # Status, FailingStreak, Log
    # Pods (docs/pods.md): the pod's id, for a member and for the pod's infra container.
    pod: str | None = None
    pod_infra: bool = False

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def dir(self) -> Path:
        return containers_dir() / self.id

    @property
    def bundle(self) -> Path:
        return self.dir / "bundle"

    @property
    def log_path(self) -> Path:
        return self.dir / "ctr.log"

    def live_pid(self) -> int | None:
        """The container's process, from the pid file crun wrote, if it still runs."""
        return process_alive(self.dir / "pid")

    @property
    def exit_file(self) -> Path:
        return exits_dir() / self.id

    def save(self) -> None:
        # Compact: only without indent does json use its C encoder (`inspect` pretty-prints).
        write_atomic(self.dir / "container.json",
                     json.dumps(_record.asdict(self), separators=(",", ":"), sort_keys=True))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def reload(self) -> Container:
        return _read(self.dir)


def containers_dir() -> Path:
    return paths.data_dir() / "containers"


def exits_dir() -> Path:
    return paths.runtime_dir() / "exits"


def _names_dir() -> Path:
    return containers_dir() / "names"


def _valid_name(name: str) -> bool:
    return (
        0 < len(name) <= 128 and name[0].isalnum() and all(c.isalnum() or c in "_.-" for c in name)
    )


def _pick(seq: Sequence[_T]) -> _T:
    """A uniformly random element (for names only: nothing secret depends on it)."""
    limit = (1 << 32) - (1 << 32) % len(seq)
    while True:
        n = int.from_bytes(os.urandom(4), "little")
        if n < limit:
            return seq[n % len(seq)]


def reserve(name: str | None) -> tuple[str, str, Path]:
    """Reserve a new id and a unique name; return (id, name, folder). Raises Conflict."""
    paths.ensure_private_dir(paths.data_dir())
    names = _names_dir()
    names.mkdir(parents=True, exist_ok=True)
    # os.urandom, not secrets: the secrets module pulls in random, hmac and base64.
    cid = os.urandom(32).hex()
    if name is not None and not _valid_name(name):
        raise UsageError(
            f"invalid container name {name!r}",
            hint="names are letters, digits, '_', '.' and '-', starting alphanumeric",
        )
    for _attempt in range(20):
        candidate = (
            name or f"{_pick(_ADJ)}_{_pick(_NOUN)}_{_pick(range(100))}"
        )
        try:
            os.symlink(cid, names / candidate)
        except FileExistsError:
            if name is not None:
                other = os.readlink(names / candidate)
                raise Conflict(
                    f"the name {name!r} is in use by container {other[:12]}",
                    hint=f"secpod rm {name}, or choose another --name",
                ) from None
            continue
        folder = containers_dir() / cid
        folder.mkdir(mode=0o700)
        # Who is making it: a half-made container whose maker is gone (SIGKILL) is swept
        # by the next command that looks (sweep_half_made).
        (folder / CREATING).write_text(_process_identity(os.getpid()))
        return cid, candidate, folder
    raise Conflict("could not find a free container name", hint="give one with --name")


def claim_name(cid: str, name: str) -> None:
    """Take ``name`` for the container ``cid`` (a rename). Raises UsageError for an
    invalid name, Conflict when another container has it."""
    if not _valid_name(name):
        raise UsageError(
            f"invalid container name {name!r}",
            hint="names are letters, digits, '_', '.' and '-', starting alphanumeric",
        )
    try:
        os.symlink(cid, _names_dir() / name)
    except FileExistsError:
        other = os.readlink(_names_dir() / name)
        raise Conflict(f"the name {name!r} is in use by container {other[:12]}",
                       hint="choose another name") from None


def drop_name(cid: str, name: str) -> None:
    """Let ``name`` go, if it is still the container's."""
    link = _names_dir() / name
    with contextlib.suppress(FileNotFoundError):
        if os.readlink(link) == cid:
            link.unlink()


CREATING = "creating"  # in a container folder until container.json is written: the maker
HALF_MADE_GRACE = 60.0  # seconds: a folder with neither file, younger than this, is new


def _proc_stat(pid: int | str) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of a process, None if it is
    gone or has ended (a zombie that no one has reaped yet has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        state, started = fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None
    return None if state in ("Z", "X") else (state, started)


def _process_identity(pid: int) -> str:
    """``PID STARTTIME``: a pid and its start time, which a reused pid does not share.
    Empty if the process is gone."""
    st = _proc_stat(pid)
    return f"{pid} {st[1]}" if st else ""


def process_identity(pid: int) -> str:
    """``PID STARTTIME`` of a running process (empty if it is gone): what a later
    command compares before it signals a recorded pid."""
    return _process_identity(pid)


def process_alive(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process still runs. A process that started after
    the file was written is another one that reuses the pid: it does not count."""
    try:
        with open(pidfile) as f:
            text = f.read().strip()
            written = os.fstat(f.fileno()).st_mtime
        boot = _boot_time()
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    st = _proc_stat(text) if text.isdigit() else None
    if st is None:
        return None
    started = boot + st[1] / os.sysconf("SC_CLK_TCK")
    # btime is whole seconds: a second of slack, which errs towards "still running"
    return int(text) if started <= written + 1.0 else None


_BOOT: list[float] = []


def _boot_time() -> float:
    """The kernel's boot time (``btime`` of /proc/stat), read once per process."""
    if not _BOOT:
        with open("/proc/stat") as f:
            _BOOT.append(next(float(ln.split()[1]) for ln in f if ln.startswith("btime ")))
    return _BOOT[0]


def _maker_alive(folder: Path) -> bool:
    try:
        marker = (folder / CREATING).read_text()
    except FileNotFoundError:
        try:  # made before the marker was written, or by an older secpod
            return time.time() - folder.stat().st_mtime < HALF_MADE_GRACE
        except FileNotFoundError:
            return False
    pid = marker.split()[0] if marker.split() else ""
    return bool(pid.isdigit()) and _process_identity(int(pid)) == marker.strip()


def sweep_half_made() -> list[tuple[str, str]]:
    """Remove containers whose maker died before writing container.json (a ``run`` killed
    with SIGKILL during set-up), and names that point at no container. Returns the
    (id, name) of each one removed, for the caller to record."""
    root = containers_dir()
    if not root.is_dir():
        return []
    names: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for link in _names_dir().iterdir():
            with contextlib.suppress(OSError):
                names[os.readlink(link)] = link.name
    swept = []
    for folder in root.iterdir():
        if folder.name == "names" or (folder / "container.json").is_file():
            continue
        if not _maker_alive(folder):
            try:
                release(folder.name, names.get(folder.name, ""))
            except Error:
                continue  # left for a later command: the folder is not a container
            swept.append((folder.name, names.get(folder.name, "")))
    for cid, name in names.items():  # a name whose folder is gone entirely
        if not (root / cid).exists() and (cid, name) not in swept:
            with contextlib.suppress(FileNotFoundError):
                (_names_dir() / name).unlink()
            swept.append((cid, name))
    return swept


def release(cid: str, name: str) -> None:
    """Remove the container's folder and name (nothing else is left behind).

    Raises HostError, with the container still recorded, when files its processes
    made under subordinate ids cannot be removed (sandbox/userns.py)."""
    from secpod.sandbox import userns

    folder = containers_dir() / cid
    for written in ("upper", "rootfs"):  # first: what the container wrote, record kept
        if (folder / written).is_dir():
            userns.remove_tree(folder / written)
    link = _names_dir() / name
    with contextlib.suppress(FileNotFoundError):
        if name and os.readlink(link) == cid:
            link.unlink()
    if folder.exists():
        userns.remove_tree(folder)
    with contextlib.suppress(FileNotFoundError):
        (exits_dir() / cid).unlink()
    # conmon's attach link (SOCKETS/CUUID -> the bundle) and a console socket left by a
    # monitor that was killed: named by the short id (monitor.start_conmon), or the full
    # one by older versions.
    sockets = exits_dir().parent / "sockets"
    for entry in (cid[:12], cid, f"{cid[:12]}.console"):
        path = sockets / entry
        if path.is_dir() and not path.is_symlink():
            _files.remove_tree(path, [])
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


_FIELDS: list[frozenset[str]] = []  # Container's field names, once per process (ps reads all)


def _read(folder: Path) -> Container:
    with open(os.path.join(folder, "container.json")) as f:
        data = json.load(f)
    if not _FIELDS:
        _FIELDS.append(frozenset(f.name for f in _record.fields(Container)))
    known = _FIELDS[0]
    return Container(**{k: v for k, v in data.items() if k in known})


def all_containers() -> list[Container]:
    root = containers_dir()
    if not root.is_dir():
        return []
    out = []
    for folder in root.iterdir():
        if folder.name == "names" or not (folder / "container.json").is_file():
            continue
        try:
            out.append(_read(folder))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(out, key=lambda c: c.created, reverse=True)


def lookup(ref: str) -> Container:
    """A container by name, full id or unique id prefix. Raises NotFound."""
    root = containers_dir()
    link = _names_dir() / ref
    if _valid_name(ref) and link.is_symlink():
        folder = root / os.readlink(link)
        if (folder / "container.json").is_file():
            return _read(folder)
    if len(ref) >= 3 and all(c in "0123456789abcdef" for c in ref):
        matches = [c for c in all_containers() if c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(
                f"{ref!r} matches {len(matches)} containers",
                hint="give more of the id, or the name",
            )
    raise NotFound(f"No such container: {ref}", hint="secpod ps -a lists your containers")


def selinux_levels_in_use() -> frozenset[str]:
    """MCS levels (``s0:cX,cY``) of the user's containers that have not exited.

    A new container gets a pair none of these has, so two of the user's
    containers never share an SELinux category pair.
    """
    levels = set()
    for c in all_containers():
        label = (c.confinement or {}).get("selinux")
        if isinstance(label, str) and not c.exit_recorded and label.count(":") >= 3:
            levels.add(label.split(":", 3)[3])
    return frozenset(levels)


def containers_using(image_digest: str) -> list[str]:
    """Names of the containers made from the image with this manifest digest."""
    return [c.name for c in all_containers() if c.image_digest == image_digest]


def first_notice(key: str) -> bool:
    """True the first time ``key`` is asked for since boot (the boot id is in the key).

    Used to tell a person once, not on every run, what the host does not enforce;
    ``inspect``, ``doctor`` and the audit record always say it.
    """
    import hashlib

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    key = f"{boot}:{key}"
    folder = paths.runtime_dir() / "notices"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(
            folder / hashlib.sha256(key.encode()).hexdigest()[:32],
            os.O_WRONLY | os.O_CREAT | os.O_EXCL,
            0o600,
        )
    except FileExistsError:
        return False
    os.close(fd)
    return True
