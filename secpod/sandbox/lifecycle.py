"""Container lifecycle without a daemon: create, start, run, stop, kill, rm, exec.

The way of ``secpod run --profile strict IMAGE CMD`` (see docs/runner.md):
preflight -> admin policy and profile (policies.confine) -> image (images) ->
trust (signing) -> bundle -> crun under a monitor -> audit at every step.
Every step that refuses records ``container.run.refused`` with its reason
before the error reaches the user, and leaves no folder, name or crun state.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from secpod import audit
from secpod._record import record
from secpod.errors import AuditError, Conflict, Error, Interrupted, RuntimeFailed, UsageError
from secpod.sandbox import bundle as bundlemod
from secpod.sandbox import host as hostmod
from secpod.sandbox import monitor, preflight, state
from secpod.sandbox.crun import Runtime
from secpod.sandbox.state import Container
from secpod.spec import ContainerSpec, unsupported

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

SIGNALS = {
    "HUP": 1,
    "INT": 2,
    "QUIT": 3,
    "KILL": 9,
    "USR1": 10,
    "USR2": 12,
    "TERM": 15,
    "CONT": 18,
    "STOP": 19,
    "WINCH": 28,
}


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class Environment:
    """The host facts and the runtime one command works with."""

    features: hostmod.HostFeatures
    runtime: Runtime

    @classmethod
    def load(cls) -> Environment:
        features = hostmod.probe()
        preflight.check_host(features)
        return cls(features, Runtime.default(can_limit_resources=features.can_limit_resources))


def _refused(stage: str, e: Error, opts: ContainerSpec, **fields: Any) -> None:
    """Record a refusal of ``run``/``create`` at ``stage``; the caller re-raises."""
    audit.record(
        "container.run.refused",
        "refused" if stage != "runtime" else "error",
        reason=f"{stage}: {e.message}",
        profile=opts.profile,
        image_ref=fields.get("image_ref", opts.image),
        image_digest=fields.get("image_digest"),
        trust=fields.get("trust"),
        container_name=opts.name,
    )


def _load_environment(opts: ContainerSpec) -> Environment:
    try:
        return Environment.load()
    except Error as e:
        _refused("preflight", e, opts)
        raise


def create(opts: ContainerSpec, env: Environment | None = None) -> Container:
    """Build a container's bundle and record; do not start it. Raises Error subclasses,
    and Interrupted on SIGTERM or SIGHUP (after removing what was made)."""
    with _signals_unwind():
        return _create(opts, env)


def _create(opts: ContainerSpec, env: Environment | None) -> Container:
    from secpod import images, policies, signing

    env = env or _load_environment(opts)
    try:
        identity = preflight.identity()
    except Error as e:
        _refused("preflight", e, opts)
        raise
    # Admin policy and profile first: a request below the floor is refused before
    # any image is read.
    try:
        if unsupported(opts):
            raise UsageError(f"secpod cannot yet honour: {', '.join(unsupported(opts))}")
        in_use = state.selinux_levels_in_use() if env.features.selinux_enabled else frozenset()
        confinement = policies.confine(opts, env.features, user=identity.user,
                                      mcs_in_use=in_use)
    except Error as e:
        _refused("policy", e, opts)
        raise
    try:
        store = images.Store.open()
        image = store.resolve(opts.image)
    except Error as e:
        _refused("image", e, opts)
        raise
    # The name the user typed, normalised as `verify` does, is the one judged and recorded.
    judged = signing.image_reference(opts.image, image.names, image.digest)
    ref = str(judged) if judged is not None else image.digest
    try:
        decision = signing.evaluate_image(judged, image.digest,
                                          store.manifest_bytes(image.digest))
    except Error as e:
        _refused("trust", e, opts, image_ref=ref, image_digest=image.digest)
        raise
    trust = decision.as_dict()
    if not decision.accepted:
        err = Error(
            f"the trust policy rejects {ref}: {'; '.join(decision.reasons)}",
            hint="secpod verify IMAGE explains the decision; secpod trust show",
        )
        _refused("trust", err, opts, image_ref=ref, image_digest=image.digest, trust=trust)
        raise signing_rejected(err)
    if confinement.require_signed and set(decision.requirements) <= {"insecureAcceptAnything"}:
        err = Error(
            f"profile {confinement.profile} runs only signed images, and the trust "
            f"policy accepts {ref} without a signature (insecureAcceptAnything)",
            hint="sign the image (secpod sign) and require it (secpod trust set), "
            "or use --profile default",
        )
        _refused("trust", err, opts, image_ref=ref, image_digest=image.digest, trust=trust)
        raise signing_rejected(err)
    try:  # the image about to run is the one verified (issue 10); its digest is audited
        trust["content"] = images.content_before_run(store, image, ref, confinement)
    except Error as e:
        _refused("content", e, opts, image_ref=ref, image_digest=image.digest, trust=trust)
        raise

    sweep_half_made()  # a name a killed `run` left taken is free again
    cid, name, folder = state.reserve(opts.name)
    try:
        hostname = opts.hostname or cid[:12]
        rootfs, root_mode = bundlemod.prepare_rootfs(
            image.rootfs, folder, readonly=confinement.root_readonly
        )
        bundlemod.write_userdata(folder / "userdata", hostname)
        config = bundlemod.build_config(
            cid=cid,
            hostname=hostname,
            rootfs=rootfs,
            image_config=image.config,
            request=opts.process,
            confinement=confinement,
            identity=identity,
            userdata=folder / "userdata",
        )
        digest = bundlemod.write_config(folder / "bundle", config)
        summary = dict(confinement.summary)
        summary["cis_findings"] = _cis_findings(config, confinement.profile)
        summary["weakened"] = list(confinement.weakened)
        ctr = Container(
            id=cid,
            name=name,
            image_ref=ref,
            image_digest=image.digest,
            profile=confinement.profile_label,
            profile_hash=confinement.profile_hash,
            created=state.now(),
            args=config["process"]["args"],
            root_mode=root_mode,
            detach=opts.detach,
            auto_remove=opts.auto_remove,
            unenforced=list(confinement.unenforced),
            confinement=summary,
            trust=trust,
            tty=opts.process.tty,
            config_digest=digest,
        )
        ctr.log_path.touch(mode=0o600)
        ctr.save()
        _audit_ctr("container.create", ctr, confinement=summary, trust=trust)
    except Error as e:
        _discard(cid, name)
        stage = "audit" if isinstance(e, AuditError) else "bundle"
        _refused(stage, e, opts, image_ref=ref, image_digest=image.digest, trust=trust)
        raise
    except BaseException:
        _discard(cid, name)
        raise
    return ctr


def _discard(cid: str, name: str) -> None:
    """Remove a container whose making failed, without hiding why it failed: what cannot
    be removed now keeps its `creating` marker, and the next command sweeps it."""
    with contextlib.suppress(Error):
        state.release(cid, name)


def signing_rejected(err: Error) -> Error:
    from secpod.errors import SignatureRejected

    return SignatureRejected(err.message, err.hint)


def _cis_findings(config: dict[str, Any], profile: str) -> list[dict[str, str]]:
    """The CIS container-runtime findings on this config (recorded for reports)."""
    from secpod.policies import lint_config

    return [
        {"id": f.id, "severity": f.severity, "title": f.title} for f in lint_config(config, profile)
    ]


def sweep_half_made() -> None:
    """Remove, and record, containers a killed ``run`` or ``create`` left half-made
    (docs/runner.md, "What a signal to run leaves behind")."""
    for cid, name in state.sweep_half_made():
        audit.record("container.create.abandoned", "ok", container_id=cid,
                     container_name=name or None,
                     reason="its maker ended before the container was made; removed")


@contextlib.contextmanager
def _handling(signals: tuple[int, ...], handler: Callable[[int, object], None], *,
              only_default: bool = False) -> Iterator[None]:
    """``handler`` for ``signals`` inside the block, the previous ones after (with
    ``only_default``, only for signals nobody else handles). A handler, never SIG_IGN:
    programs started meanwhile would inherit an ignored signal."""
    saved = {}
    for sig in signals:
        if not only_default or signal.getsignal(sig) is signal.SIG_DFL:
            saved[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def _signals_unwind() -> contextlib.AbstractContextManager[None]:
    """SIGTERM and SIGHUP (a closed terminal) raise Interrupted, as SIGINT raises
    KeyboardInterrupt, so that set-up ends in a listed container or in nothing."""
    return _handling((signal.SIGTERM, signal.SIGHUP), _raise_interrupted, only_default=True)


def _audit_ctr(action: str, ctr: Container, outcome: str = "ok", **kw: Any) -> None:
    # Every record of a container names the bundle it was made with: the create record
    # that reaches the host collector keeps the digest out of the user's reach.
    kw["details"] = {"config_digest": ctr.config_digest, **(kw.get("details") or {})}
    audit.record(
        action,
        outcome,
        container_id=ctr.id,
        container_name=ctr.name,
        image_ref=ctr.image_ref,
        image_digest=ctr.image_digest,
        profile=ctr.profile,
        profile_hash=ctr.profile_hash,
        **kw,
    )


def run(opts: ContainerSpec, *, on_created: Callable[[Container], None] | None = None) -> int:
    """``secpod run``: create, start, and (in the foreground) wait; return the exit status.

    Detached: returns 0 once the container runs under its monitor.
    """
    env = _load_environment(opts)
    ctr = create(opts, env)
    if on_created:
        on_created(ctr)
    if opts.detach:
        start(ctr, env)
        return 0
    # From here to the exit record (and --rm's removal) the run is not cut short: while
    # the container runs, signals are forwarded to it (monitor.attach); outside that a
    # hang-up is ignored and SIGINT/SIGTERM end secpod only once the run is finished.
    with _held_signals() as held:
        ctr.monitor = "secpod"
        ctr.started = state.now()
        ctr.save()
        _audit_ctr("container.start", ctr)
        try:
            code = monitor.run_foreground(
                env.runtime,
                ctr.id,
                ctr.bundle,
                ctr.dir,
                interactive=opts.process.interactive,
                log_path=ctr.log_path,
                terminal=opts.process.tty,
                log_size_max=_log_size_max(ctr),
            )
        except RuntimeFailed as e:
            _finish(ctr, env, None, reason=e.message)
            raise
        _finish(ctr, env, code)
    if held:
        raise Interrupted(held[0])
    return code


@contextlib.contextmanager
def _held_signals() -> Iterator[list[int]]:
    """SIGHUP ignored; SIGINT and SIGTERM noted in the list yielded, for after."""
    held: list[int] = []

    def note(signum: int, _frame: object) -> None:
        if signum != signal.SIGHUP:
            held.append(signum)

    with _handling((signal.SIGHUP, signal.SIGINT, signal.SIGTERM), note):
        yield held


def _finish(
    ctr: Container, env: Environment, code: int | None, *, reason: str | None = None
) -> None:
    """Record the exit once (whoever sees it first), then remove --rm containers."""
    with ctr.locked():
        current = ctr.reload()
        if not current.exit_recorded:
            current.exit_code = code
            current.finished = state.now()
            current.exit_recorded = True
            current.save()
            # A container's exit closes a chapter of the log: sign a checkpoint.
            _audit_ctr(
                "container.exit",
                current,
                "ok" if code is not None else "error",
                exit_status=code,
                reason=reason,
                checkpoint=True,
                details={"stopped_by": current.stopped_by} if current.stopped_by else None,
            )
        if env.runtime.knows(ctr.id):
            env.runtime.delete(ctr.id, force=True)
    if current.auto_remove:
        state.release(current.id, current.name)
        _audit_ctr("container.rm", current, reason="--rm")


def start(ctr: Container, env: Environment | None = None) -> Container:
    """Start a created (or exited, detached) container under conmon."""
    if env is None:
        try:
            env = Environment.load()
        except Error as e:
            _audit_ctr("container.start", ctr, "refused", reason=f"preflight: {e.message}")
            raise
    _checked_bundle(ctr, "container.start")
    # The status is read and acted on under the container's lock: a second `start` that
    # read it before the first finished would otherwise delete what the first started.
    with ctr.locked():
        ctr = ctr.reload()
        status = status_of(ctr, env.runtime.state(ctr.id))
        if status in ("running", "paused"):
            raise Conflict(f"container {ctr.name} is already running")
        if ctr.monitor == "secpod" and status == "created":
            raise Conflict(f"container {ctr.name} is being started by another secpod run")
        if status != "created" or ctr.monitor != "conmon":
            env.runtime.delete(ctr.id, force=True)
            with contextlib.suppress(FileNotFoundError):
                ctr.exit_file.unlink()
            ctr.exit_code = None
            ctr.finished = None
            ctr.exit_recorded = False
            ctr.stopped_by = None
            ctr.monitor = "conmon"
            ctr.save()
            try:
                _launch_monitor(env, ctr)
            except RuntimeFailed as e:
                _audit_ctr("container.start", ctr, "error", reason=e.message)
                env.runtime.delete(ctr.id, force=True)
                raise
        try:
            env.runtime.call("start", ctr.id, what="starting the container")
        except RuntimeFailed as e:
            _audit_ctr("container.start", ctr, "error", reason=e.message)
            raise
        ctr.started = state.now()
        ctr.save()
        _audit_ctr("container.start", ctr)
    return ctr


def _checked_bundle(ctr: Container, action: str) -> dict[str, Any]:
    """The container's config if it is the one create wrote; else audit ``action`` as
    refused and raise BundleChanged."""
    try:
        return bundlemod.checked_config(ctr.bundle, ctr.config_digest, ctr.name)
    except bundlemod.BundleChanged as e:
        _audit_ctr(action, ctr, "refused", reason=f"bundle: {e.message}")
        raise


def _launch_monitor(env: Environment, ctr: Container) -> int:
    """conmon runs ``crun create`` for the container and holds it; returns its pid."""
    return monitor.start_conmon(
        env.runtime,
        ctr.id,
        ctr.name,
        ctr.bundle,
        ctr.dir,
        log_path=ctr.log_path,
        exit_dir=state.exits_dir(),
        terminal=ctr.tty,
        log_size_max=_log_size_max(ctr),
    )


def _log_size_max(ctr: Container) -> int:
    """The log bound the container was created with (its profile's ``[logs] size_max``)."""
    from secpod.sandbox.logs import DEFAULT_SIZE_MAX

    value = ctr.confinement.get("log_size_max")
    return value if isinstance(value, int) and value > 0 else DEFAULT_SIZE_MAX


def create_detached(opts: ContainerSpec) -> Container:
    """``secpod create``: bundle plus a conmon holding the created container."""
    env = _load_environment(opts)
    ctr = create(opts, env)
    ctr.monitor = "conmon"
    ctr.save()
    try:
        _launch_monitor(env, ctr)
    except RuntimeFailed as e:
        _audit_ctr("container.rm", ctr, "error", reason=f"create failed: {e.message}")
        env.runtime.delete(ctr.id, force=True)
        _discard(ctr.id, ctr.name)  # what stays is listed, for `rm` to try again
        raise
    return ctr


def collect_exit(ctr: Container, runtime: Runtime) -> Container:
    """Called by conmon's exit command (and by stop/rm): record the exit status once.

    conmon writes the exit file right after the process ends; give it a moment.
    """
    code: int | None = None
    deadline = time.monotonic() + 5
    while True:
        try:
            code = int(ctr.exit_file.read_text().strip())
            break
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    env = Environment(hostmod.probe(), runtime)
    _finish(ctr, env, code, reason=None if code is not None else "exit status unknown")
    return ctr


def status_of(ctr: Container, crun_state: dict[str, Any] | None) -> str:
    """created, running, paused, stopped (exited, exit not yet collected), exited."""
    if crun_state is not None:
        return str(crun_state.get("status", "unknown"))
    if ctr.started and ctr.live_pid():
        # crun has lost it (its state root removed or moved) but the process runs: it
        # is running, whatever crun says, and rm without -f refuses.
        return "running"
    if ctr.exit_recorded or ctr.finished:
        return "exited"
    if ctr.monitor == "secpod" and ctr.started:
        return "exited"  # a foreground run that died without recording: nothing runs
    return "created" if ctr.started is None else "exited"


def describe(ctr: Container, crun_state: dict[str, Any] | None) -> dict[str, Any]:
    status = status_of(ctr, crun_state)
    return {
        "id": ctr.id,
        "name": ctr.name,
        "image": ctr.image_ref,
        "image_digest": ctr.image_digest,
        "command": ctr.args,
        "created": ctr.created,
        "started": ctr.started,
        "finished": ctr.finished,
        "status": status,
        "exit_code": ctr.exit_code,
        "profile": ctr.profile,
        "pid": (crun_state or {}).get("pid"),
    }


def listing(all_containers: bool) -> list[dict[str, Any]]:
    sweep_half_made()
    env_rt = Runtime.default()
    known = env_rt.list()
    out = []
    for ctr in state.all_containers():
        crun_state = known.get(ctr.id)
        if crun_state is not None and crun_state.get("status") == "stopped":
            crun_state = dict(crun_state, status="stopped")
        row = describe(ctr, crun_state)
        if all_containers or row["status"] in ("running", "paused", "created", "stopped"):
            out.append(row)
    return out


def inspect(ref: str) -> dict[str, Any]:
    ctr = state.lookup(ref)
    rt = Runtime.default()
    info = describe(ctr, rt.state(ctr.id))
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
            "bundle": str(ctr.bundle),
            "log_path": str(ctr.log_path),
            "config": config,
        }
    )
    return info


def _wait_stopped(ctr: Container, rt: Runtime, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        st = rt.state(ctr.id)
        if st is None and not ctr.live_pid() or st and st.get("status") == "stopped":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _wait_recorded(ctr: Container, timeout: float) -> Container:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            current = ctr.reload()
        except FileNotFoundError:
            return ctr
        if current.exit_recorded:
            return current
        time.sleep(0.05)
    return ctr.reload()


def _settle(ctr: Container, rt: Runtime) -> None:
    """After the process is gone: let its monitor record the exit, or record it ourselves."""
    if ctr.monitor == "secpod":
        _wait_recorded(ctr, 10)  # the foreground secpod records its own exit
        return
    current = _wait_recorded(ctr, 5)
    if current.dir.exists() and not current.exit_recorded:
        collect_exit(current, rt)


def stop(ref: str, timeout: float = 10) -> Container:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; record the stop."""
    ctr = state.lookup(ref)
    rt = Runtime.default()
    status = status_of(ctr, rt.state(ctr.id))
    if status not in ("running", "paused"):
        raise Conflict(f"container {ctr.name} is not running ({status})")
    _mark(ctr, "stop")
    _signal(ctr, rt, "TERM")
    escalated = False
    if not _wait_stopped(ctr, rt, timeout):
        escalated = True
        with contextlib.suppress(RuntimeFailed):
            _signal(ctr, rt, "KILL")
        _wait_stopped(ctr, rt, 10)
    _audit_ctr("container.stop", ctr, details={"timeout": timeout, "killed": escalated})
    _settle(ctr, rt)
    return ctr


def kill(ref: str, signal_name: str = "KILL") -> Container:
    ctr = state.lookup(ref)
    rt = Runtime.default()
    sig = normalise_signal(signal_name)
    status = status_of(ctr, rt.state(ctr.id))
    if status not in ("running", "paused", "created"):
        raise Conflict(f"container {ctr.name} is not running ({status})")
    _mark(ctr, "kill")
    _signal(ctr, rt, sig)
    _audit_ctr("container.kill", ctr, details={"signal": sig})
    return ctr


def _signal(ctr: Container, rt: Runtime, sig: str) -> None:
    """Signal the container through crun, or, when crun has lost it, its recorded pid."""
    if rt.knows(ctr.id):
        rt.kill(ctr.id, sig)
        return
    pid = ctr.live_pid()
    if pid is None:
        raise RuntimeFailed(f"container {ctr.name} has no process to signal")
    number = int(sig) if sig.isdigit() else int(getattr(signal, "SIG" + sig))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def normalise_signal(name: str) -> str:
    text = name.upper().removeprefix("SIG")
    if text.isdigit() and 0 < int(text) < 65:
        return text
    if text not in SIGNALS:
        raise UsageError(f"unknown signal {name!r}", hint="e.g. TERM, KILL, HUP, INT, USR1 or 15")
    return text


def _mark(ctr: Container, how: str) -> None:
    with ctr.locked():
        current = ctr.reload()
        current.stopped_by = how
        current.save()


def remove(ref: str, *, force: bool = False) -> Container:
    sweep_half_made()
    ctr = state.lookup(ref)
    rt = Runtime.default()
    status = status_of(ctr, rt.state(ctr.id))
    if status in ("running", "paused") and not force:
        raise Conflict(
            f"container {ctr.name} is {status}",
            hint=f"secpod stop {ctr.name} first, or secpod rm -f {ctr.name}",
        )
    if status in ("running", "paused", "created"):
        _mark(ctr, "kill")
        with contextlib.suppress(RuntimeFailed):
            _signal(ctr, rt, "KILL")
        _wait_stopped(ctr, rt, 10)
        if status != "created":
            _settle(ctr, rt)
    if ctr.dir.exists():
        current = ctr.reload()
        if not current.exit_recorded and current.started:
            collect_exit(current, rt)
        rt.delete(ctr.id, force=True)
        try:
            state.release(ctr.id, ctr.name)
        except Error as e:
            _audit_ctr("container.rm", ctr, "error", reason=e.message)
            raise
        _audit_ctr("container.rm", ctr, details={"force": force, "status": status})
    return ctr


def exec_in(
    ref: str,
    command: list[str],
    *,
    env: tuple[str, ...] = (),
    workdir: str | None = None,
    user: str | None = None,
    interactive: bool = False,
    tty: bool = False,
) -> int:
    """Run ``command`` in a running container, confined as its main process; return its status."""
    ctr = state.lookup(ref)
    rt = Runtime.default()
    if status_of(ctr, rt.state(ctr.id)) != "running":
        raise Conflict(f"container {ctr.name} is not running", hint=f"secpod start {ctr.name}")
    if not command:
        raise UsageError("exec needs a command", hint="secpod exec CONTAINER COMMAND [ARG...]")
    # The process spec comes from the config create wrote (checked), never from a file
    # edited since.
    config = _checked_bundle(ctr, "container.exec")
    process = dict(config["process"])
    process["args"] = list(command)
    process["terminal"] = tty
    if env:
        merged = {e.partition("=")[0]: e for e in process.get("env", [])}
        for item in env:
            key, sep, _ = item.partition("=")
            merged[key] = item if sep else f"{key}={os.environ.get(key, '')}"
        process["env"] = list(merged.values())
    if workdir:
        process["cwd"] = workdir
    root = Path(config["root"]["path"])
    if user is not None:
        from secpod.sandbox import rootfs as rootfsmod

        uid, gid, _ = rootfsmod.lookup_user(root, user)
        process["user"] = {"uid": uid, "gid": gid}
    # As for run: a missing command exits 127 and one that cannot be executed 126, with
    # secpod's message, not crun's 255 (checked in the container's root, as its PATH says).
    search = next((e[5:] for e in process.get("env", []) if e.startswith("PATH=")),
                  bundlemod.DEFAULT_PATH)
    try:
        bundlemod.check_command(root, command[0], search, process.get("cwd") or "/")
    except Error as e:
        _audit_ctr("container.exec", ctr, "refused", reason=e.message,
                   details={"command": list(command)})
        raise
    spec = ctr.dir / f"exec-{os.getpid()}.json"
    spec.write_text(json.dumps(process))
    try:
        code = monitor.attach(
            rt.argv("exec", "--process", str(spec)),
            [ctr.id],
            interactive=interactive,
            terminal=tty,
            sink=None,
            console=state.exits_dir().parent / "sockets" / f"exec-{os.getpid()}.console",
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            spec.unlink()
    _audit_ctr("container.exec", ctr, exit_status=code, details={"command": list(command)})
    return code


def read_logs(ref: str, *, follow: bool = False) -> Iterator[tuple[str, bytes]]:
    """(stream, bytes) chunks of the container's log (the rotated file, then the current
    one); with ``follow``, until it exits, to the last byte."""
    from secpod.sandbox import logs

    ctr = state.lookup(ref)
    if not follow:
        return logs.read(ctr.log_path)
    rt = Runtime.default()

    def running() -> bool:
        return status_of(ctr.reload(), rt.state(ctr.id)) in ("running", "created", "paused")

    return logs.read(ctr.log_path, alive=running)
