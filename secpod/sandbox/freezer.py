"""``pause`` and ``unpause``: freezing a container's processes with the cgroup freezer.

Only the cgroup freezer stops every process of a container at once (a SIGSTOP reaches
one process, and a process can see it). A rootless container has a freezer only in a
cgroup v2 tree delegated to the user; without one (crun runs with its cgroup manager
disabled) ``pause`` is refused, with the reason, and the refusal audited.
"""

from __future__ import annotations

from secpod.errors import Conflict, HostError
from secpod.sandbox import events, operations, state
from secpod.sandbox.environment import Environment
from secpod.sandbox.operations import Status

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.sandbox.state import Container


def _why_not(env: Environment) -> str | None:
    features = env.features
    if features.can_limit_resources:
        return None
    return (f"no cgroup is delegated to this user (cgroups: {features.cgroup_mode.value}), "
            "so the container has no cgroup of its own (crun runs with its cgroup manager "
            "disabled) and there is no freezer to stop all its processes at once")


def _change(ref: str, action: str, before: Status, env: Environment | None) -> Container:
    from secpod.runtime._cli import CommandLineRuntime

    env = env or Environment.load()
    ctr = state.lookup(ref)
    why = _why_not(env)
    if why is not None:
        events.container(f"container.{action}", ctr, "refused", reason=why)
        raise HostError(f"cannot {action} {ctr.name}: {why}",
                        hint="pause needs cgroup v2 delegated to your user (a systemd user "
                             "session with Delegate=yes); secpod stop ends the container")
    rt = env.runtime_for(ctr)
    now = operations.status_of(ctr, rt.state(ctr.id))
    if now is not before:
        raise Conflict(f"container {ctr.name} is {now.value}, not {before.value}")
    if not isinstance(rt, CommandLineRuntime):
        raise HostError(f"the runtime {rt.name} cannot {action} containers")
    rt.call("pause" if action == "pause" else "resume", ctr.id, what=f"{action}ing")
    events.container(f"container.{action}", ctr)
    return ctr


def pause(ref: str, env: Environment | None = None) -> Container:
    """Freeze every process of a running container. Raises HostError where this host
    has no freezer for the user (audited), Conflict when it does not run, NotFound."""
    return _change(ref, "pause", Status.RUNNING, env)


def unpause(ref: str, env: Environment | None = None) -> Container:
    """Thaw a paused container. Raises as :func:`pause`."""
    return _change(ref, "unpause", Status.PAUSED, env)
