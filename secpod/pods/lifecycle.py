"""A pod's life: create (its infra made and started), start, stop, kill, restart, rm,
prune, and what happens when its infra ends on its own (docs/pods.md).

A pod's members are ordinary containers with the pod's id in their record; every action
on the pod acts on each member through the container operations (so each leaves its own
audit record) and records one ``pod.*`` record of its own. When the infra ends while its
members run (killed, or out of memory), the infra's exit callback stops the members:
their namespaces would outlive it, but nothing could join them any more, the ports would
be gone, and ``pod ps`` would lie. That is recorded as ``pod.infra.exited``.
"""

from __future__ import annotations

import contextlib
import os
import threading

from secpod.errors import Conflict, Error
from secpod.pods import namespaces
from secpod.pods.record import Pod, all_pods, lookup, release, reserve

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.environment import Environment
    from secpod.sandbox.state import Container
    from secpod.spec import PortMapping


def audit(action: str, pod: Pod, outcome: str = "ok", *, reason: str | None = None,
          **details: Any) -> None:
    from secpod import audit as auditmod

    auditmod.record(action, outcome, reason=reason, profile=pod.profile,
                    details={"pod": {"id": pod.id, "name": pod.name}, **details})


def members(pod: Pod) -> list[Container]:
    """The pod's containers, without its infra, oldest first."""
    from secpod.sandbox import state

    return sorted((c for c in state.all_containers() if c.pod == pod.id and not c.pod_infra),
                  key=lambda c: c.created)


def infra_of(pod: Pod) -> Container | None:
    """The pod's infra container, read by its id (no listing of all containers)."""
    from secpod.sandbox import state

    if not pod.infra_id:
        return None
    try:
        return state._read(state.containers_dir() / pod.infra_id)
    except (OSError, ValueError, TypeError):
        return None


def status(pod: Pod, env: Environment | None = None) -> str:
    """``Running`` (the infra and every member), ``Degraded`` (the infra, not every
    member), ``Exited`` (no infra running), ``Created`` (never started)."""
    try:
        namespaces.infra_pid(pod)
    except Conflict:
        infra = infra_of(pod)
        return "Created" if infra is None or not infra.started else "Exited"
    from secpod.sandbox import operations

    env = operations._env(env)
    for m in members(pod):
        if operations.status(m, env) not in operations.LIVE:
            return "Degraded"
    return "Running"


def _env(env: Environment | None) -> Environment:
    from secpod.sandbox.environment import Environment

    return env or Environment.load()


def create(name: str, *, ports: tuple[PortMapping, ...] = (), hostname: str | None = None,
           profile: str = "default", labels: dict[str, str] | None = None,
           share: tuple[str, ...] = namespaces.JOINED[1:], command: list[str] | None = None,
           env: Environment | None = None) -> Pod:
    """Make the pod and start its infra. Raises UsageError, NotFound (a profile),
    Conflict (the name, a port), HostError; a failed create leaves nothing (and is
    recorded as ``pod.create`` refused). Under a ``Type=notify`` unit, systemd is told
    the pod is ready once its infra runs (:func:`_ready`)."""
    from secpod.policies import profile as profile_mod
    from secpod.sandbox import preflight, state

    notify = os.environ.pop("NOTIFY_SOCKET", None)
    try:
        profile_mod.load(profile)   # the members' floor must exist
        bad = [s for s in share if s not in namespaces.JOINED[1:]]
        if bad:
            from secpod.errors import UsageError

            raise UsageError(f"--share {','.join(bad)}: a pod shares only "
                             f"{', '.join(namespaces.JOINED[1:])} (and always its user "
                             "namespace)", hint="--share net,ipc,uts")
        identity = preflight.identity()
        env = _env(env)
        pod_id, folder = reserve(name)
    except Error as e:
        from secpod import audit as auditmod

        auditmod.record("pod.create", "refused", reason=e.message, profile=profile,
                        details={"pod": {"name": name}})
        raise
    pod = Pod(id=pod_id, name=name, created=state.now(), hostname=hostname or name,
              profile=profile, labels=dict(labels or {}), share=list(share),
              ports=[{"host_ip": p.host_ip, "host_port": p.host_port,
                      "container_port": p.container_port, "protocol": p.protocol}
                     for p in ports], create_command=list(command or []))
    try:
        pod.save()
        _start_infra(pod, env, identity)
    except BaseException as e:
        _discard(pod)
        if isinstance(e, Error):
            audit("pod.create", pod, "refused", reason=e.message)
        raise
    audit("pod.create", pod, infra=pod.infra_id, share=pod.share,
          ports=infra_ports(pod), hostname=pod.hostname)
    _ready(pod, notify)
    return pod


def _ready(pod: Pod, notify: str | None) -> None:
    """Tell systemd (``notify``: the unit's ``NOTIFY_SOCKET``, taken from the environment
    before any container starts, so no member's start answers it) that the pod's unit is
    ready, its main process the infra's monitor: the pod's unit lives as long as its
    infra (docs/services.md)."""
    if not notify:
        return
    from secpod.sandbox import monitor, sdnotify

    infra = infra_of(pod.reload())
    sdnotify.ready(monitor.monitor_pid(infra.dir) if infra is not None else None,
                   path=notify)


def infra_ports(pod: Pod) -> list[dict[str, Any]]:
    infra = infra_of(pod)
    return list(infra.ports) if infra is not None else []


def _discard(pod: Pod) -> None:
    infra = infra_of(pod.reload()) if (pod.dir / "pod.json").exists() else None
    if infra is not None:
        from secpod.sandbox import operations

        with contextlib.suppress(Error):
            operations.remove(infra.id, force=True, pod_owned=True)
    release(pod.id, pod.name)


def _start_infra(pod: Pod, env: Environment, identity: Any) -> None:
    """A new infra for ``pod`` (the old one, if any, removed), started, and its
    namespaces recorded."""
    from secpod.pods import infra as inframod
    from secpod.sandbox import operations, state
    from secpod.spec import PortMapping

    old = infra_of(pod)
    if old is not None:
        operations.remove(old.id, force=True, pod_owned=True)
    ports = tuple(PortMapping(**p) for p in pod.ports)
    ctr = inframod.create(pod, ports, identity, env)
    with pod.locked():
        current = pod.reload()
        current.infra_id = ctr.id
        current.save()
    pod.infra_id = ctr.id
    try:
        operations.launch(ctr, env)
        ctr = operations.start(ctr.reload(), env)
        pid = ctr.live_pid()
        try:
            if pid is None:
                raise FileNotFoundError(pid)
            recorded = _namespaces_once_running(pid)
        except OSError:
            raise Conflict(f"pod {pod.name}: its infra ended as it started",
                           hint=f"secpod logs {ctr.name}; secpod doctor") from None
        ident = state.process_identity(pid)
    except BaseException:
        with contextlib.suppress(Error):
            operations.remove(ctr.id, force=True, pod_owned=True)
        raise
    with pod.locked():
        current = pod.reload()
        current.infra_identity, current.namespaces = ident, recorded
        current.save()
    pod.infra_identity, pod.namespaces = ident, recorded


def _namespaces_once_running(pid: int) -> dict[str, list[int]]:
    """The infra's namespaces, once it runs catatonit: until its exec, the runtime keeps
    it non-dumpable, and its /proc/PID/ns cannot be read (EACCES) for a moment after
    ``start`` returns. Raises OSError when it ends instead."""
    import time

    deadline = time.monotonic() + 5
    while True:
        try:
            return namespaces.record_of(pid)
        except PermissionError:
            if time.monotonic() > deadline or not os.path.exists(f"/proc/{pid}"):
                raise
            time.sleep(0.005)


def check_member(pod: Pod, spec: Any, arch: str, user: str | None) -> None:
    """A member may be stricter than its pod's profile, never weaker; it publishes no
    port of its own, and takes the pod's network and hostname. Raises Refused,
    UsageError, Conflict (the pod is not running)."""
    from secpod.errors import Refused, UsageError
    from secpod.policies import compare, floor
    from secpod.policies import profile as profile_mod
    from secpod.policies.confine import weakenings

    if spec.ports or spec.network_options.publish_all:
        raise UsageError(f"a member of pod {pod.name} publishes no port of its own",
                         hint=f"publish it at the pod: secpod pod create -p ... {pod.name}")
    if spec.network is not None and "net" in pod.share:
        raise UsageError(f"--network {spec.network}: a member of pod {pod.name} is in the "
                         "pod's network", hint="leave --network out")
    if spec.hostname is not None and "uts" in pod.share:
        raise UsageError(f"--hostname {spec.hostname}: a member of pod {pod.name} has the "
                         f"pod's hostname ({pod.hostname})", hint="leave --hostname out")
    prof = profile_mod.load(spec.profile)
    effective = floor.applied(prof, spec, weakenings(prof, spec))
    reasons = compare.weaker(effective, profile_mod.load(pod.profile), arch, user)
    if reasons:
        raise Refused(f"pod {pod.name} runs members at profile {pod.profile} or stricter, "
                      f"and this one is weaker: {'; '.join(reasons[:4])}",
                      hint=f"use --profile {pod.profile} or a stricter one")
    namespaces.infra_pid(pod)


def start(ref: str, env: Environment | None = None, *, infra_only: bool = False) -> Pod:
    """Start the pod's infra (if it is not running) and, unless ``infra_only`` (a pod's
    unit: each member's own unit starts it), every member not running."""
    from secpod.sandbox import operations, preflight

    notify = os.environ.pop("NOTIFY_SOCKET", None)
    env = _env(env)
    pod = lookup(ref)
    try:
        namespaces.infra_pid(pod)
    except Conflict:
        try:
            _start_infra(pod, env, preflight.identity())
        except Error as e:
            audit("pod.start", pod, "error", reason=e.message)
            raise
    failed = []
    for m in members(pod):
        if infra_only or operations.status(m, env) in operations.LIVE:
            continue
        try:
            operations.start(m, env)
        except Error as e:
            failed.append(f"{m.name}: {e.message}")
    audit("pod.start", pod, "error" if failed else "ok", reason="; ".join(failed) or None,
          members=[m.name for m in members(pod)], infra_only=infra_only)
    if failed:
        raise Error(f"pod {pod.name}: not every member started: {'; '.join(failed)}",
                    hint="secpod pod ps; secpod logs MEMBER")
    _ready(pod, notify)
    return pod


def _each(ctrs: list[Container], act: Any) -> list[str]:
    """``act(ctr)`` on every container at once (each stop waits its own timeout);
    the errors, by name."""
    errors: list[str] = []

    def one(ctr: Container) -> None:
        try:
            act(ctr)
        except Error as e:
            errors.append(f"{ctr.name}: {e.message}")

    threads = [threading.Thread(target=one, args=(c,)) for c in ctrs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _running(ctrs: list[Container], env: Environment) -> list[Container]:
    from secpod.sandbox import operations

    return [c for c in ctrs if operations.status(c, env) in operations.LIVE]


def stop(ref: str, timeout: float | None = None, env: Environment | None = None) -> Pod:
    """Stop the members (each its stop signal, then SIGKILL after its timeout), then the
    infra."""
    from secpod.sandbox import operations

    env = _env(env)
    pod = lookup(ref)
    errors = _each(_running(members(pod), env),
                   lambda c: operations.stop(c.id, timeout, env))
    infra = infra_of(pod)
    if infra is not None and _running([infra], env):
        errors += _each([infra], lambda c: operations.stop(c.id, timeout, env))
    audit("pod.stop", pod, "error" if errors else "ok", reason="; ".join(errors) or None,
          timeout=timeout)
    if errors:
        raise Error(f"pod {pod.name}: {'; '.join(errors)}")
    return pod


def kill(ref: str, signal_name: str = "KILL", env: Environment | None = None) -> Pod:
    from secpod.sandbox import operations

    env = _env(env)
    pod = lookup(ref)
    running = _running(members(pod), env)
    infra = infra_of(pod)
    if not running and (infra is None or not _running([infra], env)):
        raise Conflict(f"pod {pod.name} is not running")
    errors = _each(running, lambda c: operations.kill(c.id, signal_name, env))
    if signal_name.upper().removeprefix("SIG") in ("KILL", "9") and infra is not None:
        errors += _each(_running([infra], env),
                        lambda c: operations.kill(c.id, signal_name, env))
    audit("pod.kill", pod, "error" if errors else "ok", reason="; ".join(errors) or None,
          signal=signal_name)
    if errors:
        raise Error(f"pod {pod.name}: {'; '.join(errors)}")
    return pod


def restart(ref: str, timeout: float | None = None, env: Environment | None = None) -> Pod:
    env = _env(env)
    pod = lookup(ref)
    if status(pod, env) != "Exited":
        with contextlib.suppress(Conflict):
            stop(pod.id, timeout, env)
    return start(pod.id, env)


def remove(ref: str, *, force: bool = False, env: Environment | None = None) -> Pod:
    """Remove the pod, its members and its infra. A running pod needs ``force``."""
    from secpod.sandbox import operations

    env = _env(env)
    pod = lookup(ref)
    live = _running(members(pod), env)
    if live and not force:
        err = Conflict(f"pod {pod.name} has running members: "
                       f"{', '.join(c.name for c in live)}",
                       hint=f"secpod pod stop {pod.name} first, or secpod pod rm -f {pod.name}")
        audit("pod.rm", pod, "refused", reason=err.message)
        raise err
    gone = [c.name for c in members(pod)]
    errors = _each(members(pod), lambda c: operations.remove(c.id, force=True, env=env))
    infra = infra_of(pod)
    if infra is not None and not errors:
        errors += _each([infra], lambda c: operations.remove(c.id, force=True, env=env,
                                                             pod_owned=True))
    if errors:
        audit("pod.rm", pod, "error", reason="; ".join(errors))
        raise Error(f"pod {pod.name} is not removed: {'; '.join(errors)}",
                    hint=f"secpod pod rm -f {pod.name} again")
    release(pod.id, pod.name)
    audit("pod.rm", pod, force=force, members=gone)
    return pod


def prune(env: Environment | None = None) -> list[Pod]:
    """Remove every pod whose infra is not running."""
    env = _env(env)
    out = []
    for pod in all_pods():
        if status(pod, env) in ("Exited", "Created"):
            remove(pod.id, force=True, env=env)
            out.append(pod)
    return out


def infra_exited(infra: Container, env: Environment) -> None:
    """The infra's exit callback: a pod stopped by hand has nothing left to do; else
    its running members are stopped, and that is recorded."""
    from secpod.pods.record import _read, pods_dir
    from secpod.sandbox import operations

    try:
        pod = _read(pods_dir() / str(infra.pod))
    except (OSError, ValueError, TypeError):
        return
    running = _running(members(pod), env)
    if not running:
        return
    errors = _each(running, lambda c: operations.stop(c.id, None, env))
    audit("pod.infra.exited", pod, "error" if errors else "ok",
          reason="the pod's infra ended: its running members were stopped"
                 + (f" ({'; '.join(errors)})" if errors else ""),
          infra=infra.id, exit_status=infra.exit_code,
          stopped=[c.name for c in running])
