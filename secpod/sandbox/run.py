"""``secpod run``: create, start, and in the foreground wait for the exit.

Detached, the container's monitor is conmon (operations.start). In the foreground
secpod itself is the monitor: from the start record to the exit record (and --rm's
removal) the run is not cut short. While the container runs, signals are forwarded to
it (monitor.attach); outside that a hang-up is ignored and SIGINT/SIGTERM end secpod
only once the run is finished.
"""

from __future__ import annotations

from secpod.errors import Interrupted, RuntimeFailed
from secpod.sandbox import events, operations, signals, state
from secpod.sandbox.create import create, load_environment

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable

    from secpod.sandbox.environment import Environment
    from secpod.sandbox.state import Container
    from secpod.spec import ContainerSpec


def run(spec: ContainerSpec, *, on_created: Callable[[Container], None] | None = None,
        env: Environment | None = None) -> int:
    """Return the container's exit status (0 once a detached one runs)."""
    env = env or load_environment(spec)
    # Group commit: the create record is synced with the start record (or, detached,
    # with conmon's start), one sync for both, before the container runs.
    ctr = create(spec, env, durable=False)
    if on_created:
        on_created(ctr)
    if spec.detach:
        operations.start(ctr, env)
        return 0
    with signals.held() as held:
        with operations.changing(ctr) as ctr:
            ctr.monitor = "secpod"
            ctr.started = state.now()
        events.container("container.start", ctr)
        rt = env.runtime_for(ctr)
        try:
            code = env.monitors.foreground(rt, ctr, interactive=spec.process.interactive,
                                           log_size_max=operations.log_size_max(ctr))
        except RuntimeFailed as e:
            operations.finish(ctr, env, None, reason=e.message)
            raise
        operations.finish(ctr, env, code)
    if held:
        raise Interrupted(held[0])
    return code
