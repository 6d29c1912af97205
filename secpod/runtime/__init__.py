"""The OCI runtimes secpod drives, crun and runc, behind one interface.

:class:`OCIRuntime` is what the lifecycle asks of a runtime (create, start, state,
kill, delete, exec, features); :func:`open_runtime` gives the one a container was
made with, and :func:`choose` the one a new container gets: ``--runtime``, else
the user's ``secpod.toml``, else the administrator's, else crun, each checked
against the administrator's floor (``[runtimes] allowed``).

What a runtime would silently ignore in a config (runc ignores crun's ``run.oci.*``
annotations and idmapped mounts) is not relied on: :meth:`OCIRuntime.unenforced`
names it, and the container records it as not enforced.
"""

from __future__ import annotations

from secpod._record import record
from secpod.config import RUNTIMES

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Protocol

DEFAULT = "crun"
__all__ = ["DEFAULT", "RUNTIMES", "Features", "choose", "open_runtime"]


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class Features:
    """What a runtime supports, from ``runc features`` or known of a crun version."""

    name: str
    version: str
    seccomp_actions: tuple[str, ...]
    seccomp_flags: bool            # accepts linux.seccomp.flags
    seccomp_notify: bool           # SCMP_ACT_NOTIFY with linux.seccomp.listenerPath
    oci_annotations: bool          # honours crun's run.oci.* annotations
    idmap_mounts: bool             # honours "idmap" mount options
    additional_gids: bool          # applies process.user.additionalGids rootless
    source: str                    # "runc features" or "known of crun VERSION"


if TYPE_CHECKING:
    class OCIRuntime(Protocol):
        """An OCI runtime as the lifecycle uses it (a Protocol for mypy; CrunRuntime,
        RuncRuntime, and the tests' FakeRuntime implement it)."""

        name: str
        binary: str
        root: Path
        #: crun hands a foreground terminal over --console-socket; runc wants one as
        #: its own stdio (it refuses the socket unless it detaches).
        console_socket_in_foreground: bool

        def global_args(self, log: Path | None = None) -> list[str]:
            """The arguments before the subcommand (state root, cgroups, log file)."""

        def create(self, cid: str, bundle: Path, *, pid_file: Path, log: Path) -> None: ...

        def start(self, cid: str) -> None: ...

        def state(self, cid: str) -> dict[str, Any] | None:
            """The runtime's state of the container, or None when it does not know it."""

        def all_states(self) -> dict[str, dict[str, Any]]: ...

        def kill(self, cid: str, signal: str, *, all_processes: bool = False) -> None: ...

        def delete(self, cid: str, *, force: bool = False) -> None:
            """Forget the container; no error when the runtime does not know it."""

        def knows(self, cid: str) -> bool: ...

        def run_argv(self, log: Path) -> list[str]:
            """``run`` with its log, up to (without) ``--bundle``: the foreground monitor."""

        def exec_argv(self, process_file: Path) -> list[str]:
            """``exec --process FILE`` up to (without) the container id."""

        def features(self) -> Features: ...

        def refuses(self, config: dict[str, Any]) -> list[str]:
            """What in ``config`` this runtime would fail on."""

        def unenforced(self, config: dict[str, Any]) -> list[str]:
            """What in ``config`` this runtime would silently ignore."""

        def precompile(self, config: dict[str, Any]) -> str | None:
            """Add what secpod compiled ahead for this runtime (crun: the seccomp
            program); the program's digest, or None when the runtime compiles it."""

        def error_words(self, log: Path) -> str:
            """The last error the runtime wrote to its JSON log, or ''."""


def open_runtime(name: str, *, can_limit_resources: bool = False) -> OCIRuntime:
    """The runtime ``name`` (crun or runc) with this user's state root; HostError when
    it is not installed, UsageError for another name."""
    if name == "crun":
        from secpod.runtime.crun import CrunRuntime

        return CrunRuntime.open(can_limit_resources=can_limit_resources)
    if name == "runc":
        from secpod.runtime.runc import RuncRuntime

        return RuncRuntime.open(can_limit_resources=can_limit_resources)
    from secpod.errors import UsageError

    raise UsageError(f"unknown OCI runtime {name!r}", hint="use --runtime crun or runc")


def choose(asked: str | None, user: str | None) -> str:
    """The runtime a new container gets (see the module docstring); raises FloorRefused
    when the administrator's floor does not allow it."""
    from secpod import config
    from secpod.policies import floor

    name = asked or config.load().runtime or DEFAULT
    floor.check_runtime(name, user)
    return name
