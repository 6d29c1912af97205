"""Operations on an existing container: start, stop, kill, rm, exec, ps, inspect, and
the collection of its exit.

A container's :class:`Status` comes from its runtime's state and its record; the
record is changed only under the container's lock (:func:`changing`), so that a
monitor's exit callback, ``stop``, ``rm`` and a second ``start`` never act on a status
another one has already changed. Every operation uses the runtime the container was
made with (its record says which), from the Environment it is given.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
from pathlib import Path

from secpod.errors import Conflict, Error, RuntimeFailed, UsageError
from secpod.sandbox import events, monitor, signals, state
from secpod.sandbox.environment import Environment
from secpod.sandbox.state import Container

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from secpod.network import Holder
    from secpod.runtime import OCIRuntime


class Status(enum.StrEnum):
    CREATED = "created"   # made, its process not started
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"   # its process ended; the exit is not collected yet
    EXITED = "exited"     # the exit is recorded


LIVE = (Status.RUNNING, Status.PAUSED)


def status_of(ctr: Container, rt_state: dict[str, Any] | None) -> Status:
    if rt_state is not None:
        try:
            return Status(str(rt_state.get("status")))
        except ValueError:
            return Status.RUNNING if ctr.live_pid() else Status.STOPPED
    if ctr.started and ctr.live_pid():
        # The runtime has lost it (its state root removed or moved) but the process
        # runs: it is running, whatever the runtime says, and rm without -f refuses.
        return Status.RUNNING
    if ctr.exit_recorded or ctr.finished:
        return Status.EXITED
    if ctr.monitor == "secpod" and ctr.started:
        return Status.EXITED  # a foreground run that died without recording: nothing runs
    return Status.CREATED if ctr.started is None else Status.EXITED


def status(ctr: Container, env: Environment) -> Status:
    return status_of(ctr, env.runtime_for(ctr).state(ctr.id))


@contextlib.contextmanager
def changing(ctr: Container) -> Iterator[Container]:
    """The container's record, re-read under its lock; saved when the block ends."""
    with ctr.locked():
        current = ctr.reload()
        yield current
        current.save()


def _env(env: Environment | None) -> Environment:
    return env if env is not None else Environment.load(check_host=False)


def log_size_max(ctr: Container) -> int:
    """The log bound the container was created with (its profile's ``[logs] size_max``)."""
    from secpod.sandbox.logs import DEFAULT_SIZE_MAX

    value = ctr.confinement.get("log_size_max")
    return value if isinstance(value, int) and value > 0 else DEFAULT_SIZE_MAX


def checked_bundle(ctr: Container, action: str) -> dict[str, Any]:
    """The container's config if it is the one create wrote; else audit ``action`` as
    refused and raise BundleChanged."""
    from secpod.sandbox import bundle as bundlemod  # not for ps, logs, stop, ...

    try:
        return bundlemod.checked_config(ctr.bundle, ctr.config_digest, ctr.name)
    except bundlemod.BundleChanged as e:
        events.container(action, ctr, "refused", reason=f"bundle: {e.message}")
        raise


def launch(ctr: Container, env: Environment) -> int:
    """The container's monitor (conmon) creates it in its runtime; returns its pid.

    A container with published ports, pasta or an overlay root joins its namespace holder
    (secpod.network): the one this process started at create, or a new one (on the
    recorded ports, over the recorded lower layer) for a container started again; a
    forwarding holder then lives as long as the monitor and the container."""
    holder = (_holder_for(ctr) if ctr.ports or ctr.root_lower or ctr.pod_infra
              or ctr.network_mode == "pasta" else None)
    try:
        pid = env.monitors.detached(env.runtime_for(ctr), ctr, exit_dir=state.exits_dir(),
                                    log_size_max=log_size_max(ctr))
        if holder is not None:
            from secpod import network
            from secpod.sandbox.monitor import monitor_pid

            network.watch(holder, [p for p in (monitor_pid(ctr.dir), pid) if p], detach=True)
    except BaseException:
        if holder is not None:
            holder.kill()
        raise
    return pid


def _holder_for(ctr: Container) -> Holder:
    from secpod import network
    from secpod.sandbox import preflight
    from secpod.spec import PortMapping

    holder = network.live(ctr.id)
    if holder is None:
        network.stop(ctr.holder_pid, ctr.holder_identity, ctr.dir)
        userns = None
        if ctr.pod and not ctr.pod_infra:   # a member's holder is in its pod's user ns
            from secpod.pods import namespaces
            from secpod.pods.record import _read, pods_dir

            userns = namespaces.user_namespace(_read(pods_dir() / ctr.pod))
        holder = network.start_holder(
            ctr.id, tuple(PortMapping(**p) for p in ctr.ports), preflight.identity(), ctr.dir,
            overlay=Path(ctr.root_lower) if ctr.root_lower else None,
            pasta=ctr.network_mode == "pasta", egress=tuple(ctr.egress), userns=userns,
            net=ctr.pod_infra)
        network.point_links(ctr.dir, holder.pid, holder.root_pid,
                            ("mnt",) if userns is not None else ("user", "net", "mnt"))
        ctr.holder_pid = holder.pid
        ctr.holder_identity = state.process_identity(holder.pid)
        ctr.save()
    return holder


def stop_network(ctr: Container) -> None:
    """End the container's namespace holder and its pasta (its ports stop listening):
    this process's own child is killed and reaped, another's is killed by its recorded
    pid (secpod.network.stop)."""
    if ctr.holder_pid:
        from secpod import network

        network.stop(ctr.holder_pid, ctr.holder_identity, ctr.dir)


def running_root(ctr: Container, root: Path) -> Path:
    """Where the host sees the root of a running container: an overlay root is mounted
    in the container's own mount namespace only, reached through its init's
    ``/proc/PID/root`` (the recorded pid, checked against reuse)."""
    if not ctr.root_lower:
        return root
    pid = ctr.live_pid()
    if pid is None:
        raise Conflict(f"container {ctr.name} is not running",
                       hint=f"secpod start {ctr.name}")
    return Path(f"/proc/{pid}/root")


# -- start -------------------------------------------------------------------------

def start(ctr: Container, env: Environment | None = None, *,
          before_start: Callable[[Container], None] | None = None) -> Container:
    """Start a created (or exited, detached) container under its monitor.

    ``before_start`` is called once its monitor holds it, created, and before its
    process is let go (``start -a`` attaches there: no output is missed); what it
    raises stops the start, with the container left created."""
    # systemd's notify socket is secpod's to answer (sandbox/sdnotify.py): given to the
    # runtime's `start`, crun would bind it for the container instead.
    notify = os.environ.pop("NOTIFY_SOCKET", None)
    if env is None:
        try:
            env = Environment.load()
        except Error as e:
            events.container("container.start", ctr, "refused", reason=f"preflight: {e.message}")
            raise
    checked_bundle(ctr, "container.start")
    rt = env.runtime_for(ctr)
    # The status is read and acted on under the container's lock: a second `start` that
    # read it before the first finished would otherwise delete what the first started.
    with changing(ctr) as current:
        now = status_of(current, rt.state(current.id))
        if now in LIVE:
            raise Conflict(f"container {current.name} is already running")
        if current.monitor == "secpod" and now is Status.CREATED:
            raise Conflict(f"container {current.name} is being started by another secpod run")
        if now is not Status.CREATED or current.monitor != "conmon":
            rt.delete(current.id, force=True)
            with contextlib.suppress(FileNotFoundError):
                current.exit_file.unlink()
            current.exit_code = None
            current.finished = None
            current.exit_recorded = False
            current.stopped_by = None
            current.monitor = "conmon"
            # A start by hand begins the restart policy's count and backoff again.
            current.restart_count, current.restart_delay = 0, 0.0
            current.restart_pending = False
            current.save()  # the monitor's exit callback reads it
            try:
                launch(current, env)
            except RuntimeFailed as e:
                events.container("container.start", current, "error", reason=e.message)
                rt.delete(current.id, force=True)
                raise
        if before_start is not None:
            before_start(current)
        try:
            rt.start(current.id)
        except RuntimeFailed as e:
            events.container("container.start", current, "error", reason=e.message)
            raise
        current.started = state.now()
        if current.healthcheck:
            current.health = {"Status": "starting", "FailingStreak": 0, "Log": []}
    events.container("container.start", current)
    if current.healthcheck:
        from secpod.sandbox import health

        health.schedule(current)
    if current.sdnotify == "conmon" and notify:
        from secpod.sandbox import sdnotify

        sdnotify.ready(monitor.monitor_pid(current.dir), path=notify)
    return current


# -- the exit ----------------------------------------------------------------------

def collect_exit(ctr: Container, env: Environment | None = None) -> Container:
    """Called by conmon's exit command (and by stop/rm): record the exit status once.

    conmon writes the exit file right after the process ends; give it a moment.
    """
    env = _env(env)
    code: int | None = None
    deadline = env.clock() + 5
    while True:
        try:
            code = int(ctr.exit_file.read_text().strip())
            break
        except (OSError, ValueError):
            if env.clock() >= deadline:
                break
            env.sleep(0.05)
    return finish(ctr, env, code, reason=None if code is not None else "exit status unknown")


def finish(ctr: Container, env: Environment, code: int | None, *,
           reason: str | None = None) -> Container:
    """Record the exit once (whoever sees it first), then remove --rm containers."""
    rt = env.runtime_for(ctr)
    stop_network(ctr)  # nothing listens for a container that has exited
    with ctr.locked():  # as changing(), saved once: before the record says it exited
        current = ctr.reload()
        if not current.exit_recorded:
            current.exit_code = code
            current.finished = state.now()
            current.exit_recorded = True
            if current.restart_policy != "no":
                from secpod.sandbox import restart as restartmod

                restartmod.mark(current)  # in the same save: never exited-and-not-restarting
            current.save()
            if current.healthcheck:
                from secpod.sandbox import health

                health.unschedule(current)
            # A container's exit closes a chapter of the log: sign a checkpoint. With
            # --rm the chapter ends with the removal record right after (group commit:
            # one checkpoint, which syncs both).
            events.container(
                "container.exit",
                current,
                "ok" if code is not None else "error",
                exit_status=code,
                reason=reason,
                checkpoint=not current.auto_remove,
                durable=not current.auto_remove,
                details={"stopped_by": current.stopped_by} if current.stopped_by else None,
            )
        if rt.knows(ctr.id):
            rt.delete(ctr.id, force=True)
    if current.auto_remove:
        state.release(current.id, current.name)
        events.container("container.rm", current, reason="--rm", checkpoint=True)
    return current


def _wait_stopped(ctr: Container, rt: OCIRuntime, env: Environment, timeout: float) -> bool:
    deadline = env.clock() + timeout
    until_gone = env.until_gone
    pid = ctr.live_pid() if until_gone is not None else None
    while True:
        st = rt.state(ctr.id)
        if st is None and not ctr.live_pid() or st and st.get("status") == "stopped":
            return True
        now = env.clock()
        if now >= deadline:
            return False
        if until_gone is not None and pid is not None:
            until_gone(pid, min(0.05, deadline - now))  # woken by its end, if sooner
        else:
            env.sleep(0.05)


def _wait_recorded(ctr: Container, env: Environment, timeout: float) -> Container:
    deadline = env.clock() + timeout
    while env.clock() < deadline:
        try:
            current = ctr.reload()
        except FileNotFoundError:
            return ctr
        if current.exit_recorded:
            return current
        env.sleep(0.05)
    return ctr.reload()


def _settle(ctr: Container, env: Environment) -> None:
    """After the process is gone: let its monitor record the exit, or record it ourselves."""
    if ctr.monitor == "secpod":
        _wait_recorded(ctr, env, 10)  # the foreground secpod records its own exit
        return
    current = _wait_recorded(ctr, env, 5)
    if current.dir.exists() and not current.exit_recorded:
        collect_exit(current, env)


def wait_exit(ref: str, env: Environment | None = None) -> int | None:
    """Block until the container has exited and its exit is recorded (Docker's ``wait``);
    return its exit status, None when it is unknown (the runtime lost the process).
    A container that has not started yet is waited for through its start. A ``--rm``
    container removed meanwhile gives the status recorded before its removal."""
    env = _env(env)
    ctr = state.lookup(ref)
    rt = env.runtime_for(ctr)
    stopped_since: float | None = None
    while True:
        try:
            current = ctr.reload()
        except FileNotFoundError:  # removed (--rm, or rm -f from elsewhere)
            return ctr.exit_code
        ctr = current
        if current.exit_recorded:
            return current.exit_code
        now = status_of(current, rt.state(current.id))
        if now is Status.EXITED or now is Status.STOPPED:
            # The monitor records the exit; should it be gone, record it here.
            stopped_since = env.clock() if stopped_since is None else stopped_since
            if env.clock() - stopped_since > 5 and current.monitor != "secpod":
                collect_exit(current, env)
        else:
            stopped_since = None
        env.sleep(0.1)


def restart(ref: str, timeout: float | None = None, env: Environment | None = None) -> Container:
    """Stop the container if it runs (SIGTERM, SIGKILL after ``timeout``), then start it
    again, detached (Docker's ``restart``)."""
    ops = _env(env)
    ctr = state.lookup(ref)
    if status_of(ctr, ops.runtime_for(ctr).state(ctr.id)) in LIVE:
        stop(ref, timeout, ops)
    return start(state.lookup(ref), env)  # None: start checks the host, as `start` does


def rename(ref: str, new_name: str) -> Container:
    """Give the container another name (Docker's ``rename``); its id, bundle and state
    do not change. The new name is taken before the old one is let go, under the
    container's lock, so that no other container can take either meanwhile."""
    ctr = state.lookup(ref)
    with changing(ctr) as current:
        old = current.name
        if new_name == old:
            return current
        state.claim_name(current.id, new_name)
        current.name = new_name
    state.drop_name(current.id, old)
    events.container("container.rename", current, details={"old_name": old})
    return current


def top(ref: str, env: Environment | None = None) -> list[Any]:
    """The processes of a running container (sandbox/processes.py). Raises Conflict
    when it does not run."""
    from secpod.sandbox import processes

    env = _env(env)
    ctr = state.lookup(ref)
    rt_state = env.runtime_for(ctr).state(ctr.id)
    now = status_of(ctr, rt_state)
    pid = ctr.live_pid() or (rt_state or {}).get("pid")
    if now not in LIVE or not pid:
        raise Conflict(f"container {ctr.name} is not running ({now})",
                       hint=f"secpod start {ctr.name}")
    return processes.of_container(int(pid))


# -- signals -----------------------------------------------------------------------

def stop(ref: str, timeout: float | None = None, env: Environment | None = None) -> Container:
    """The container's stop signal (SIGTERM unless --stop-signal or the image said
    another), then SIGKILL after ``timeout`` seconds (None: its --stop-timeout, 10 by
    default); record the stop."""
    from secpod.sandbox import restart as restartmod

    env = _env(env)
    ctr = state.lookup(ref)
    timeout = ctr.stop_timeout if timeout is None else timeout
    rt = env.runtime_for(ctr)
    now = status_of(ctr, rt.state(ctr.id))
    if now not in LIVE:
        if now is Status.STOPPED and ctr.restart_policy != "no":
            _wait_recorded(ctr, env, 5)  # its monitor's callback decides on a restart
        if restartmod.cancel(ctr, "stop"):  # waiting to be restarted: it is not
            events.container("container.stop", ctr, details={"timeout": timeout,
                                                              "killed": False,
                                                              "restart_cancelled": True})
            return ctr
        now = status_of(ctr.reload(), rt.state(ctr.id))  # restarted meanwhile?
        if now not in LIVE:
            raise Conflict(f"container {ctr.name} is not running ({now})")
    _mark(ctr, "stop")
    try:
        _signal(ctr, rt, signals.normalise(ctr.stop_signal))
    except RuntimeFailed:
        # It ended between the look and the signal (a restart policy's short run, say):
        # stopped all the same. Anything else is the runtime's failure to report.
        if status_of(ctr.reload(), rt.state(ctr.id)) in LIVE:
            raise
    escalated = False
    if not _wait_stopped(ctr, rt, env, timeout):
        escalated = True
        with contextlib.suppress(RuntimeFailed):
            _signal(ctr, rt, "KILL")
        _wait_stopped(ctr, rt, env, 10)
    events.container("container.stop", ctr, details={"timeout": timeout, "killed": escalated})
    _settle(ctr, env)
    return ctr


def kill(ref: str, signal_name: str = "KILL", env: Environment | None = None) -> Container:
    env = _env(env)
    ctr = state.lookup(ref)
    rt = env.runtime_for(ctr)
    sig = signals.normalise(signal_name)
    now = status_of(ctr, rt.state(ctr.id))
    if now not in (*LIVE, Status.CREATED):
        from secpod.sandbox import restart as restartmod

        if restartmod.cancel(ctr, "kill"):  # waiting to be restarted: it is not
            events.container("container.kill", ctr, details={"signal": sig,
                                                              "restart_cancelled": True})
            return ctr
        raise Conflict(f"container {ctr.name} is not running ({now})")
    _mark(ctr, "kill")
    _signal(ctr, rt, sig)
    events.container("container.kill", ctr, details={"signal": sig})
    return ctr


def _signal(ctr: Container, rt: OCIRuntime, sig: str) -> None:
    """Signal the container through its runtime, or, when the runtime has lost it, its
    recorded pid."""
    if rt.knows(ctr.id):
        rt.kill(ctr.id, sig)
        return
    pid = ctr.live_pid()
    if pid is None:
        raise RuntimeFailed(f"container {ctr.name} has no process to signal")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signals.number(sig))


def _mark(ctr: Container, how: str) -> None:
    with changing(ctr) as current:
        current.stopped_by = how


# -- rm ----------------------------------------------------------------------------

class PodInfra(Conflict):
    """A pod's infra container is removed with its pod, never alone."""


def remove(ref: str, *, force: bool = False, env: Environment | None = None,
           pod_owned: bool = False) -> Container:
    """Remove a container (``force``: kill it first if it runs). A pod's infra is
    refused unless ``pod_owned`` (its pod's removal, secpod.pods): without it the pod
    would have nothing to hold its namespaces."""
    env = _env(env)
    events.sweep_half_made()
    ctr = state.lookup(ref)
    if ctr.pod_infra and not pod_owned:
        from secpod.pods.record import _read, pods_dir

        try:
            pod = _read(pods_dir() / str(ctr.pod)).name
        except (OSError, ValueError, TypeError):
            pod = None
        if pod is not None:
            raise PodInfra(f"container {ctr.name} is the infra of pod {pod}",
                           hint=f"secpod pod rm {'-f ' if force else ''}{pod}")
    rt = env.runtime_for(ctr)
    if ctr.restart_policy != "no":
        from secpod.sandbox import restart as restartmod

        restartmod.cancel(ctr, "rm")  # first: a restart waiting is called off
    now = status_of(ctr, rt.state(ctr.id))
    if now in LIVE and not force:
        raise Conflict(
            f"container {ctr.name} is {now}",
            hint=f"secpod stop {ctr.name} first, or secpod rm -f {ctr.name}",
        )
    if now in (*LIVE, Status.CREATED):
        _mark(ctr, "kill")
        with contextlib.suppress(RuntimeFailed):
            _signal(ctr, rt, "KILL")
        _wait_stopped(ctr, rt, env, 10)
        if now is not Status.CREATED:
            _settle(ctr, env)
    if ctr.dir.exists():
        current = ctr.reload()
        stop_network(current)
        if not current.exit_recorded and current.started:
            collect_exit(current, env)
        rt.delete(ctr.id, force=True)
        try:
            state.release(ctr.id, ctr.name)
        except Error as e:
            events.container("container.rm", ctr, "error", reason=e.message)
            raise
        events.container("container.rm", ctr, details={"force": force, "status": str(now)})
    return ctr


# -- ps and inspect ----------------------------------------------------------------

def describe(ctr: Container, rt_state: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": ctr.id,
        "name": ctr.name,
        "image": ctr.image_ref,
        "image_digest": ctr.image_digest,
        "command": ctr.args,
        "created": ctr.created,
        "started": ctr.started,
        "finished": ctr.finished,
        "status": status_of(ctr, rt_state).value,
        "exit_code": ctr.exit_code,
        "profile": ctr.profile,
        "labels": ctr.labels,
        "runtime": ctr.runtime,
        "pid": (rt_state or {}).get("pid"),
        "network": ctr.network_mode,
        "ports": list(ctr.ports),
        "restart_policy": ctr.restart_policy,
        "restart_count": ctr.restart_count,
        "restarting": ctr.restart_pending,
        "stopped_by": ctr.stopped_by,
        "pod_infra": ctr.pod_infra,
        "health": (ctr.health or {}).get("Status") if ctr.healthcheck else None,
    }


def listing(all_containers: bool, env: Environment | None = None) -> list[dict[str, Any]]:
    env = _env(env)
    events.sweep_half_made()
    containers = state.all_containers()
    known: dict[str, dict[str, dict[str, Any]]] = {}
    out = []
    for ctr in containers:
        if ctr.runtime not in known:  # one `list` per runtime in use, not one per container
            known[ctr.runtime] = env.runtime(ctr.runtime).all_states()
        row = describe(ctr, known[ctr.runtime].get(ctr.id))
        if all_containers or row["status"] != Status.EXITED.value:
            out.append(row)
    return out


def inspect(ref: str, env: Environment | None = None) -> dict[str, Any]:
    """Docker's shape (sandbox/views.py), secpod's own facts under ``Secpod``."""
    from secpod.sandbox import views

    env = _env(env)
    ctr = state.lookup(ref)
    info = describe(ctr, env.runtime_for(ctr).state(ctr.id))
    config = json.loads((ctr.bundle / "config.json").read_text())
    info.update(
        {
            "profile_hash": ctr.profile_hash,
            "root": ctr.root_mode,
            "auto_remove": ctr.auto_remove,
            "monitor": ctr.monitor,
            "monitor_pid": monitor.monitor_pid(ctr.dir),
            "stopped_by": ctr.stopped_by,
            "confinement": ctr.confinement,
            "unenforced": ctr.unenforced,
            "trust": ctr.trust,
            "network": events.network_of(ctr),
            "bundle": str(ctr.bundle),
            "log_path": str(ctr.log_path),
            "config": config,
        }
    )
    return views.inspect_view(ctr, info["status"], info["pid"], config, info)


# -- exec --------------------------------------------------------------------------

def exec_in(
    ref: str,
    command: list[str],
    *,
    env_vars: tuple[str, ...] = (),
    workdir: str | None = None,
    user: str | None = None,
    interactive: bool = False,
    tty: bool = False,
    env: Environment | None = None,
) -> int:
    """Run ``command`` in a running container, confined as its main process; return its
    status."""
    env = _env(env)
    ctr = state.lookup(ref)
    rt = env.runtime_for(ctr)
    if status_of(ctr, rt.state(ctr.id)) is not Status.RUNNING:
        raise Conflict(f"container {ctr.name} is not running", hint=f"secpod start {ctr.name}")
    if not command:
        raise UsageError("exec needs a command", hint="secpod exec CONTAINER COMMAND [ARG...]")
    # The process spec comes from the config create wrote (checked), never from a file
    # edited since.
    config = checked_bundle(ctr, "container.exec")
    process = dict(config["process"])
    process["args"] = list(command)
    process["terminal"] = tty
    if env_vars:
        merged = {e.partition("=")[0]: e for e in process.get("env", [])}
        for item in env_vars:
            key, sep, _ = item.partition("=")
            merged[key] = item if sep else f"{key}={os.environ.get(key, '')}"
        process["env"] = list(merged.values())
    if workdir:
        process["cwd"] = workdir
    from secpod.sandbox import bundle as bundlemod

    root = running_root(ctr, Path(config["root"]["path"]))
    if user is not None:
        from secpod.sandbox import rootfs as rootfsmod

        uid, gid, _ = rootfsmod.lookup_user(root, user)
        process["user"] = {"uid": uid, "gid": gid}
    # As for run: a missing command exits 127 and one that cannot be executed 126, with
    # secpod's message, not the runtime's 255 (checked in the container's root, as its
    # PATH says).
    search = next((e[5:] for e in process.get("env", []) if e.startswith("PATH=")),
                  bundlemod.DEFAULT_PATH)
    try:
        bundlemod.check_command(root, command[0], search, process.get("cwd") or "/")
    except Error as e:
        events.container("container.exec", ctr, "refused", reason=e.message,
                         details={"command": list(command)})
        raise
    spec = ctr.dir / f"exec-{os.getpid()}.json"
    spec.write_text(json.dumps(process))
    try:
        code = monitor.attach(
            rt.exec_argv(spec),
            [ctr.id],
            interactive=interactive,
            terminal=tty,
            sink=None,
            console=monitor.console_path(rt, f"exec-{os.getpid()}.console"),
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            spec.unlink()
    events.container("container.exec", ctr, exit_status=code, details={"command": list(command)})
    return code
