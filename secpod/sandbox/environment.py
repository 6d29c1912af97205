"""What one command works with: the host's features, the OCI runtimes, the monitor that
holds a container, and a clock. The lifecycle receives it instead of fetching these
itself, so that its state machine runs the same against a FakeRuntime in unit tests."""

from __future__ import annotations

import os
import time

from secpod._record import field, record
from secpod.sandbox import host as hostmod

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable

    from secpod.runtime import OCIRuntime
    from secpod.sandbox.monitor import Monitors
    from secpod.sandbox.state import Container


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class Environment:
    features: hostmod.HostFeatures
    open_runtime: Callable[[str], OCIRuntime]   # by name: crun, runc
    monitors: Monitors
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    opened: dict[str, OCIRuntime] = field(default_factory=dict)
    # until_gone(pid, seconds): return when the process ends or the time is up (this
    # host's: until_gone below); None: a wait just sleeps (a fake clock's tests)
    until_gone: Callable[[int, float], None] | None = None

    def runtime(self, name: str) -> OCIRuntime:
        """The runtime ``name``, opened once per command."""
        if name not in self.opened:
            self.opened[name] = self.open_runtime(name)
        return self.opened[name]

    def runtime_for(self, ctr: Container) -> OCIRuntime:
        """The runtime the container was made with (its record says which)."""
        return self.runtime(ctr.runtime)

    @classmethod
    def load(cls, *, check_host: bool = True) -> Environment:
        """This host's. ``check_host``: refuse (HostError) a host rootless containers
        cannot be made on, as a new container needs; operations on existing ones do not."""
        from secpod import runtime
        from secpod.sandbox import monitor, preflight

        features = hostmod.probe()
        if check_host:
            preflight.check_host(features)

        def open_runtime(name: str) -> OCIRuntime:
            return runtime.open_runtime(name,
                                        can_limit_resources=features.can_limit_resources)

        return cls(features, open_runtime, monitor.Monitors(), until_gone=until_gone)


def until_gone(pid: int, timeout: float) -> None:
    """Return once process ``pid`` has ended (its pidfd is readable: a zombie has) or
    ``timeout`` seconds have passed, so that a wait for a container's end sees it at
    once instead of at its next poll."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone already, or no pidfd here: as before, a plain wait
        if timeout > 0:
            time.sleep(timeout)
        return
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        p.poll(max(0, int(timeout * 1000)))
    finally:
        os.close(fd)
