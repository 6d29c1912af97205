"""The create pipeline: a ContainerSpec becomes a container on disk, not yet started.

The way of ``secpod run --profile strict IMAGE CMD`` (see docs/runner.md):
preflight -> runtime choice and admin policy and profile (runtime.choose,
policies.confine) -> image (images) -> trust (signing) -> bundle -> what the
runtime refuses or ignores -> the container's record -> audit at every step.
Every step that refuses records ``container.run.refused`` with its reason before the
error reaches the user, and leaves no folder, name or runtime state.
"""

from __future__ import annotations

import contextlib
import sys

from secpod.errors import AuditError, Error, Refused, RuntimeFailed, UsageError
from secpod.sandbox import bundle as bundlemod
from secpod.sandbox import events, operations, preflight, signals, state
from secpod.sandbox.environment import Environment
from secpod.sandbox.state import Container
from secpod.spec import ContainerSpec, PortMapping

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any


def load_environment(spec: ContainerSpec) -> Environment:
    """This host's Environment for a new container; a host that cannot make one is
    refused (and audited) at the preflight stage."""
    try:
        return Environment.load()
    except Error as e:
        events.refused("preflight", e, spec)
        raise


def create(spec: ContainerSpec, env: Environment | None = None, *,
           durable: bool = True) -> Container:
    """Build a container's bundle and record; do not start it. Raises Error subclasses,
    and Interrupted on SIGTERM or SIGHUP (after removing what was made).

    ``durable=False`` leaves the sync of the create record to the caller's next
    durable record or ``audit.flush()`` (``run`` starts the container next)."""
    with signals.unwinding():
        try:
            return _create(spec, env or load_environment(spec), durable)
        except BaseException:
            _discard_holders()
            raise


def _discard_holders() -> None:
    """A failed create leaves no network holder it started (secpod.network)."""
    if "secpod.network" in sys.modules:
        from secpod import network

        network.discard_pending()


def _create(spec: ContainerSpec, env: Environment, durable: bool) -> Container:
    from secpod import images, policies, runtime, signing

    pending = _spawn_holder(spec)  # first: its start-up overlaps all that follows
    try:
        identity = preflight.identity()
    except Error as e:
        events.refused("preflight", e, spec)
        raise
    # The runtime, the admin policy and the profile first: a request below the floor
    # is refused before any image is read.
    try:
        from secpod.sandbox.logs import check_driver

        check_driver(spec.log_driver, detach=spec.detach)
        if spec.restart != "no" and not spec.detach:
            raise UsageError(f"--restart {spec.restart} needs a detached container",
                             hint="secpod run -d --restart ...: the restart is made by the "
                                  "detached container's exit callback, there is no daemon")
        runtime_name = runtime.choose(spec.runtime, identity.user)
        in_use = state.selinux_levels_in_use() if env.features.selinux_enabled else frozenset()
        confinement = policies.confine(spec, env.features, user=identity.user,
                                       mcs_in_use=in_use)
    except Error as e:
        events.refused("policy", e, spec)
        raise
    pod = None
    if spec.pod is not None:
        try:
            from secpod.pods import lifecycle, record

            pod = record.lookup(spec.pod)
            lifecycle.check_member(pod, spec, env.features.arch, identity.user)
        except Error as e:
            events.refused("pod", e, spec)
            raise
    try:
        rt = env.runtime(runtime_name)
    except Error as e:
        events.refused("preflight", e, spec)
        raise
    try:
        store = images.Store.open()
        image = image_for(store, spec, env.features.arch)
    except Error as e:
        events.refused("image", e, spec)
        raise
    # The name the user typed, normalised as `verify` does, is the one judged and recorded.
    judged = signing.image_reference(spec.image, image.names, image.digest)
    ref = str(judged) if judged is not None else image.digest
    try:
        decision = signing.evaluate_image(judged, image.digest,
                                          store.manifest_bytes(image.digest))
    except Error as e:
        events.refused("trust", e, spec, image_ref=ref, image_digest=image.digest)
        raise
    trust = decision.as_dict()
    if not decision.accepted:
        err = Error(
            f"the trust policy rejects {ref}: {'; '.join(decision.reasons)}",
            hint="secpod verify IMAGE explains the decision; secpod trust show",
        )
        events.refused("trust", err, spec, image_ref=ref, image_digest=image.digest,
                       trust=trust)
        raise signing_rejected(err)
    if confinement.require_signed and set(decision.requirements) <= {"insecureAcceptAnything"}:
        err = Error(
            f"profile {confinement.profile} runs only signed images, and the trust "
            f"policy accepts {ref} without a signature (insecureAcceptAnything)",
            hint="sign the image (secpod sign) and require it (secpod trust set), "
            "or use --profile default",
        )
        events.refused("trust", err, spec, image_ref=ref, image_digest=image.digest,
                       trust=trust)
        raise signing_rejected(err)
    try:  # the image about to run is the one verified (issue 10); its digest is audited
        trust["content"] = images.content_before_run(store, image, ref, confinement)
    except Error as e:
        events.refused("content", e, spec, image_ref=ref, image_digest=image.digest,
                       trust=trust)
        raise

    mode = str(confinement.summary.get("network_mode", "private"))
    try:
        ports = published_ports(spec, image.config, mode)
    except Error as e:
        events.refused("network", e, spec, image_ref=ref, image_digest=image.digest,
                       trust=trust)
        raise
    events.sweep_half_made()  # a name a killed `run` left taken is free again
    cid, name, folder = state.reserve(spec.name)
    stage = "bundle"
    holder = None
    made: list[str] = []   # named volumes this create made (removed if it fails)
    try:
        hostname = pod.hostname if pod is not None and "uts" in pod.share else (
            spec.hostname or cid[:12])
        rootfs, root_mode = bundlemod.prepare_rootfs(
            image.rootfs, folder, readonly=confinement.root_readonly
        )
        bundlemod.write_userdata(folder / "userdata", hostname,
                                 extra_hosts=spec.network_options.add_hosts,
                                 dns=_name_servers(spec, mode))
        overlay = root_mode == "overlay"
        if spec.mounts:
            from secpod.sandbox import volumes

            stage = "volume"
            # the image's own tree: an overlay root is not mounted yet (ADR 0006)
            made = volumes.prepare(spec.mounts, image.rootfs, name)
            stage = "bundle"
        config = bundlemod.build_config(
            cid=cid,
            hostname=hostname,
            rootfs=rootfs,
            image_tree=image.rootfs,
            image_config=image.config,
            request=spec.process,
            confinement=confinement,
            identity=identity,
            userdata=folder / "userdata",
        )
        command_args = list(config["process"]["args"])  # as asked, without --init's
        if spec.init:
            from secpod.sandbox import init

            init.add_to(config, image.rootfs, create=not overlay)
        refusals = rt.refuses(config)
        if refusals:
            stage = "runtime"
            raise UsageError(f"{rt.name} cannot run this container as asked: "
                             f"{'; '.join(refusals)}",
                             hint="use --runtime crun, or leave out what it refuses")
        summary = dict(confinement.summary)
        # Judged as secpod makes it: a private network namespace of the container's own,
        # whether crun creates it or the container joins its holder's.
        summary["cis_findings"] = _cis_findings(config, confinement.profile)
        userns = None
        if pod is not None:
            from secpod.pods import namespaces

            stage = "pod"
            namespaces.join_config(config, folder, pod)
            userns = namespaces.user_namespace(pod)
            mode = "pod" if "net" in pod.share else mode
            summary["pod"] = {"id": pod.id, "name": pod.name, "share": list(pod.share)}
            stage = "bundle"
        pasta = mode == "pasta"
        egress = tuple(confinement.summary.get("egress") or ())
        if egress:
            stage = "network"
            _check_egress_caps(config, confinement.profile)
        if ports or overlay or pasta:
            from secpod import network

            stage = "network" if ports or pasta else "storage"
            holder = network.start_holder(cid, ports, identity, folder, pending,
                                          overlay=image.rootfs if overlay else None,
                                          pasta=pasta, egress=egress, userns=userns)
            ports = holder.ports
            network.join(config, folder, holder, net=bool(ports) or pasta, mnt=overlay,
                         links=("mnt",) if userns else ("user", "net", "mnt"))
            stage = "bundle"
        elif pending is not None:
            pending.kill()  # -P and the image exposes nothing, or a read-only root
        summary["ports"] = [str(p) for p in ports]
        program = rt.precompile(config)
        if program is not None and isinstance(summary.get("seccomp"), dict):
            summary["seccomp"] = {**summary["seccomp"], "bpf": program}
        digest = bundlemod.write_config(folder / "bundle", config)
        summary["weakened"] = list(confinement.weakened)
        image_cfg = image.config.get("config") or {}
        ctr = Container(
            id=cid,
            name=name,
            image_ref=ref,
            image_digest=image.digest,
            profile=confinement.profile_label,
            profile_hash=confinement.profile_hash,
            created=state.now(),
            args=command_args,
            root_mode=root_mode,
            detach=spec.detach,
            auto_remove=spec.auto_remove,
            unenforced=[*confinement.unenforced, *rt.unenforced(config)],
            confinement=summary,
            trust=trust,
            tty=spec.process.tty,
            stdin=spec.detach and spec.process.interactive,
            config_digest=digest,
            runtime=rt.name,
            entrypoint=list(spec.process.entrypoint if spec.process.entrypoint is not None
                            else image_cfg.get("Entrypoint") or []),
            user=spec.process.user,
            labels={**(image_cfg.get("Labels") or {}), **dict(spec.labels)},
            mounts=list(confinement.mounts),
            stop_signal=spec.stop_signal or image_cfg.get("StopSignal") or "SIGTERM",
            stop_timeout=10 if spec.stop_timeout is None else spec.stop_timeout,
            init=spec.init,
            network_mode=mode,
            ports=[{"host_ip": p.host_ip, "host_port": p.host_port,
                    "container_port": p.container_port, "protocol": p.protocol}
                   for p in ports],
            holder_pid=holder.pid if holder else None,
            holder_identity=state.process_identity(holder.pid) if holder else None,
            egress=list(egress),
            root_lower=str(image.rootfs) if overlay else None,
            restart_policy=spec.restart,
            log_driver=spec.log_driver,
            sdnotify=spec.sdnotify,
            create_command=list(spec.command_line),
            healthcheck=health_of(spec, image.config),
            pod=pod.id if pod is not None else None,
        )
        ctr.log_path.touch(mode=0o600)
        ctr.save()
        events.container("container.create", ctr, confinement=summary, trust=trust,
                         durable=durable)
    except Error as e:
        _stop_holder(cid)
        _discard(cid, name)
        _discard_volumes(made)
        stage = "audit" if isinstance(e, AuditError) else stage
        events.refused(stage, e, spec, image_ref=ref, image_digest=image.digest, trust=trust)
        raise
    except BaseException:
        _stop_holder(cid)
        _discard(cid, name)
        _discard_volumes(made)
        raise
    return ctr


def _discard_volumes(made: list[str]) -> None:
    if made:
        from secpod.sandbox import volumes

        volumes.discard_made(made)


def replace_named(name: str) -> None:
    """``--replace``: the container called ``name``, if there is one, is removed (killed
    first if it runs), as Podman does, before the new one is made under that name."""
    from secpod.errors import NotFound

    try:
        ctr = state.lookup(name)
    except NotFound:
        return
    if ctr.name == name:  # the name only, never an id prefix that looks like it
        operations.remove(ctr.id, force=True)


def image_for(store: Any, spec: ContainerSpec, host_arch: str) -> Any:
    """The image ``spec`` names, pulled first as ``--pull`` says (``missing``: only when
    the store has no such name), and of the ``--platform`` asked. Raises NotFound,
    UsageError, the pull's errors."""
    from secpod.errors import NotFound
    from secpod.images import reference

    host_os = "linux"
    if spec.platform is not None and spec.platform.split("/")[:2] != [host_os, host_arch]:
        raise UsageError(f"--platform {spec.platform}: this host runs {host_os}/{host_arch}, "
                         "and secpod never emulates another platform",
                         hint=f"leave --platform out, or give {host_os}/{host_arch}")
    image = None
    if spec.pull != "always":
        try:
            image = store.resolve(spec.image)
        except NotFound as e:
            if spec.pull == "never":
                raise NotFound(f"{e.message} (--pull never)", hint=e.hint) from e
            try:
                reference.parse(spec.image)
            except Error:
                raise e from None  # a digest or an id: nothing to pull
    if image is None:
        from secpod.images.registry import RegistryOptions, pull

        try:
            result = pull(spec.image, RegistryOptions(tls_verify=spec.tls_verify),
                          progress=lambda m: print(m, file=sys.stderr, flush=True))
        except Error as e:
            if spec.pull == "always":
                raise
            missing = type(e)(f"no such image: {spec.image} in your store, and pulling it "
                              f"failed: {e.message}", e.hint)
            missing.exit_code = e.exit_code
            raise missing from e
        image = store.resolve(result.digest)
    if spec.platform is not None:
        have = "/".join(str(image.config.get(k) or "") for k in ("os", "architecture"))
        variant = image.config.get("variant")
        want = spec.platform.split("/")
        if have != "/".join(want[:2]) or (len(want) == 3 and variant != want[2]):
            raise UsageError(
                f"--platform {spec.platform}: the image {spec.image} in your store is "
                f"{have}{'/' + variant if variant else ''}",
                hint="pull the image for this platform (secpod pull), or leave --platform out")
    return image
def _spawn_holder(spec: ContainerSpec) -> Any:
    """Start the namespace holder first when the run publishes ports, uses pasta, or
    will likely have a writable (overlay) root: its interpreter's start-up overlaps the
    policy, image, trust and bundle steps (docs/adr/0005, 0006). A create that fails ends
    it (create's _discard_holders), and so does one whose profile makes the root
    read-only."""
    writable = spec.security.read_only is not True and spec.profile != "strict"
    if not (spec.ports or spec.network_options.publish_all or writable
            or spec.network == "pasta"):
        return None
    from secpod import network

    return network.spawn()


def published_ports(spec: ContainerSpec, image_config: dict[str, Any],
                    mode: str) -> tuple[PortMapping, ...]:
    """``-p`` and, with ``-P``, the image's EXPOSEd ports (the profile and the floor have
    judged the mode and each ``-p``). Raises UsageError."""
    ports = spec.ports
    if spec.network_options.publish_all:
        from secpod.network.ports import check_distinct, exposed_ports

        asked = {(p.container_port, p.protocol) for p in ports}
        ports += tuple(p for p in exposed_ports(image_config)
                       if (p.container_port, p.protocol) not in asked)
        check_distinct(ports)
    if ports and mode not in ("private", "pasta"):
        from secpod.errors import NetworkRequestError

        raise NetworkRequestError(f"-p/-P cannot publish ports with --network {mode}",
                         hint="use --network private")
    return ports


def _name_servers(spec: ContainerSpec, mode: str) -> tuple[str, ...] | None:
    """resolv.conf's name servers: --dns, else pasta's forwarder; None: no network."""
    if mode != "pasta":
        return None
    from secpod.network.pasta import DNS_FORWARD

    return spec.network_options.dns or (DNS_FORWARD,)


def _check_egress_caps(config: dict[str, Any], profile: str) -> None:
    """An egress allow list holds only if the workload cannot change the rules: refuse
    CAP_NET_ADMIN (added with --cap-add, or the profile's). Raises Refused."""
    caps = (config["process"].get("capabilities") or {}).get("bounding") or []
    if "CAP_NET_ADMIN" in caps:
        raise Refused(f"profile {profile} has an egress allow list, which a container with "
                      "CAP_NET_ADMIN could remove",
                      hint="leave out --cap-add NET_ADMIN, or use a profile without "
                           "[network] egress")


def _stop_holder(cid: str) -> None:
    if "secpod.network" not in sys.modules:
        return
    from secpod import network

    holder = network.live(cid)
    if holder is not None:
        holder.kill()


def create_detached(spec: ContainerSpec, env: Environment | None = None) -> Container:
    """``secpod create``: bundle plus a monitor (conmon) holding the created container."""
    env = env or load_environment(spec)
    ctr = create(spec, env)
    with operations.changing(ctr) as ctr:
        ctr.monitor = "conmon"
    try:
        operations.launch(ctr, env)
    except RuntimeFailed as e:
        _stop_holder(ctr.id)
        events.container("container.rm", ctr, "error", reason=f"create failed: {e.message}")
        env.runtime_for(ctr).delete(ctr.id, force=True)
        _discard(ctr.id, ctr.name)  # what stays is listed, for `rm` to try again
        raise
    return ctr


def _discard(cid: str, name: str) -> None:
    """Remove a container whose making failed, without hiding why it failed: what cannot
    be removed now keeps its `creating` marker, and the next command sweeps it."""
    with contextlib.suppress(Error):
        state.release(cid, name)


def health_of(spec: ContainerSpec, image_config: dict[str, Any]) -> dict[str, Any]:
    """The container's health check (sandbox/health.py); {} without one."""
    if spec.health is None and not image_config.get("Healthcheck"):
        return {}
    from secpod.sandbox import health

    return health.resolve(spec.health, image_config)


def signing_rejected(err: Error) -> Error:
    from secpod.errors import SignatureRejected

    return SignatureRejected(err.message, err.hint)


def _cis_findings(config: dict[str, Any], profile: str) -> list[dict[str, str]]:
    """The CIS container-runtime findings on this config (recorded for reports)."""
    from secpod.policies import lint_config

    return [
        {"id": f.id, "severity": f.severity, "title": f.title} for f in lint_config(config, profile)
    ]
