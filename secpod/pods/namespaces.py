"""A member joins its pod's namespaces through descriptors, never a ``/proc/PID`` path
(docs/adr/0008-pods.md).

At every launch of a member, secpod opens the infra's ``/proc/PID/ns/{user,net,ipc,uts}``,
checks that each is the namespace recorded when the infra started (device and inode of
the nsfs file), then that the infra is still the process recorded (pid and start time:
so the descriptors were opened on it, not on a process that reuses its pid), and hands
the runtime the descriptors: the member's ``CONTAINER/ns/NAME`` links point at
``/proc/SECPOD_PID/fd/N``, this process's own descriptors, which it holds until the
runtime has created the container. A pod whose infra ended is never joined by
accident: its namespaces cannot be opened any more, and a reused pid fails the checks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from secpod.errors import Conflict
from secpod.pods.record import Pod

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.state import Container

JOINED = ("user", "net", "ipc", "uts")     # in the order of the links
_OCI = {"user": "user", "network": "net", "ipc": "ipc", "uts": "uts"}


def shared(pod: Pod) -> tuple[str, ...]:
    """The namespaces a member of ``pod`` joins: the user namespace always."""
    return ("user", *(n for n in JOINED[1:] if n in pod.share))


def infra_pid(pod: Pod) -> int:
    """The pid of the pod's running infra, checked against the recorded identity.
    Raises Conflict when the pod is not running."""
    from secpod.sandbox import state

    pid = int(pod.infra_identity.split()[0]) if pod.infra_identity else 0
    if not pid or state.process_identity(pid) != pod.infra_identity:
        raise Conflict(f"pod {pod.name} is not running (its infra has ended)",
                       hint=f"secpod pod start {pod.name}")
    return pid


def record_of(pid: int) -> dict[str, list[int]]:
    """(device, inode) of each namespace of the process ``pid`` (the infra, just started)."""
    out = {}
    for name in JOINED:
        st = os.stat(f"/proc/{pid}/ns/{name}")
        out[name] = [st.st_dev, st.st_ino]
    return out


def user_namespace(pod: Pod) -> tuple[Path, int, int]:
    """The path, device and inode a member's namespace holder joins (it checks them in
    its own process, network._holder.enter)."""
    pid = infra_pid(pod)
    dev, ino = pod.namespaces["user"]
    return Path(f"/proc/{pid}/ns/user"), dev, ino


def open_checked(pod: Pod) -> dict[str, int]:
    """Descriptors of the pod's shared namespaces, each checked to be the recorded one.
    Raises Conflict when the pod is not running or its infra is not the one recorded."""
    pid = infra_pid(pod)
    fds: dict[str, int] = {}
    try:
        for name in shared(pod):
            try:
                fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise Conflict(f"pod {pod.name} is not running (its infra has ended)",
                               hint=f"secpod pod start {pod.name}") from e
            fds[name] = fd
            st = os.fstat(fd)
            if [st.st_dev, st.st_ino] != pod.namespaces.get(name):
                raise Conflict(f"pod {pod.name}: the {name} namespace of its infra is not "
                               "the one recorded when it started",
                               hint=f"secpod pod restart {pod.name}")
        infra_pid(pod)  # still the same process: the descriptors are its namespaces
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


@contextlib.contextmanager
def passing(ctr: Container) -> Iterator[None]:
    """For a pod member: its pod's namespaces opened and checked by this process, and
    the member's links pointed at this process's descriptors
    (``/proc/SECPOD_PID/fd/N``) for as long as the runtime takes to create the
    container (this process waits for it: the path cannot go stale meanwhile).

    Not ``/proc/self/fd/N``: runc's ``runc init`` (Go) starts with its own descriptors
    only, and crun and runc both open the paths before they join any namespace."""
    if not ctr.pod or ctr.pod_infra:
        yield
        return
    from secpod.pods.record import _read, pods_dir

    pod = _read(pods_dir() / ctr.pod)
    fds = open_checked(pod)
    try:
        links = ctr.dir / "ns"
        links.mkdir(mode=0o700, exist_ok=True)
        me = os.getpid()
        for name, fd in fds.items():
            tmp = links / f".{name}.tmp"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(f"/proc/{me}/fd/{fd}")
            tmp.replace(links / name)
        yield
    finally:
        for fd in fds.values():
            os.close(fd)


def join_config(config: dict[str, Any], folder: Path, pod: Pod) -> None:
    """Make a member's ``config`` join the pod's shared namespaces through its links
    ``folder/ns/NAME`` (pointed at descriptors at each launch, :func:`passing`); in the
    pod's UTS namespace the member does not set a hostname (the pod's stays)."""
    wanted = shared(pod)
    linux = config["linux"]
    have = {ns["type"] for ns in linux["namespaces"]}
    for oci, name in _OCI.items():
        if name in wanted and oci not in have:
            linux["namespaces"].append({"type": oci})
    for ns in linux["namespaces"]:
        joined = _OCI.get(ns["type"])
        if joined in wanted:
            ns["path"] = str(folder / "ns" / str(joined))
    if "uts" in wanted:
        config.pop("hostname", None)
