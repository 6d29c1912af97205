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

from secpod import audit
from secpod.errors import AuditError, Error, RuntimeFailed, UsageError
from secpod.sandbox import bundle as bundlemod
from secpod.sandbox import events, operations, preflight, signals, state
from secpod.sandbox.environment import Environment
from secpod.sandbox.state import Container
from secpod.spec import ContainerSpec, unsupported

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


def create(spec: ContainerSpec, env: Environment | None = None) -> Container:
    """Build a container's bundle and record; do not start it. Raises Error subclasses,
    and Interrupted on SIGTERM or SIGHUP (after removing what was made)."""
    with signals.unwinding():
        return _create(spec, env or load_environment(spec))


def _create(spec: ContainerSpec, env: Environment) -> Container:
    from secpod import images, policies, runtime, signing

    try:
        identity = preflight.identity()
    except Error as e:
        events.refused("preflight", e, spec)
        raise
    # The runtime, the admin policy and the profile first: a request below the floor
    # is refused before any image is read.
    try:
        if unsupported(spec):
            raise UsageError(f"secpod cannot yet honour: {', '.join(unsupported(spec))}")
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
    try:
        rt = env.runtime(runtime_name)
    except Error as e:
        events.refused("preflight", e, spec)
        raise
    try:
        store = images.Store.open()
        image = store.resolve(spec.image)
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

    sweep_half_made()  # a name a killed `run` left taken is free again
    cid, name, folder = state.reserve(spec.name)
    stage = "bundle"
    try:
        hostname = spec.hostname or cid[:12]
        rootfs, root_mode = bundlemod.prepare_rootfs(
            image.rootfs, folder, readonly=confinement.root_readonly
        )
        bundlemod.write_userdata(folder / "userdata", hostname)
        config = bundlemod.build_config(
            cid=cid,
            hostname=hostname,
            rootfs=rootfs,
            image_config=image.config,
            request=spec.process,
            confinement=confinement,
            identity=identity,
            userdata=folder / "userdata",
        )
        refusals = rt.refuses(config)
        if refusals:
            stage = "runtime"
            raise UsageError(f"{rt.name} cannot run this container as asked: "
                             f"{'; '.join(refusals)}",
                             hint="use --runtime crun, or leave out what it refuses")
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
            detach=spec.detach,
            auto_remove=spec.auto_remove,
            unenforced=[*confinement.unenforced, *rt.unenforced(config)],
            confinement=summary,
            trust=trust,
            tty=spec.process.tty,
            config_digest=digest,
            runtime=rt.name,
            entrypoint=list(spec.process.entrypoint if spec.process.entrypoint is not None
                            else image.config.get("Entrypoint") or []),
            user=spec.process.user,
            labels=dict(image.config.get("Labels") or {}),
            mounts=list(confinement.mounts),
            restart_policy=spec.restart,
            log_driver=spec.log_driver,
            sdnotify=spec.sdnotify,
            create_command=list(spec.command_line),
            healthcheck=health_of(spec, image.config),
        )
        ctr.log_path.touch(mode=0o600)
        ctr.save()
        events.container("container.create", ctr, confinement=summary, trust=trust)
    except Error as e:
        _discard(cid, name)
        stage = "audit" if isinstance(e, AuditError) else stage
        events.refused(stage, e, spec, image_ref=ref, image_digest=image.digest, trust=trust)
        raise
    except BaseException:
        _discard(cid, name)
        raise
    return ctr


def create_detached(spec: ContainerSpec, env: Environment | None = None) -> Container:
    """``secpod create``: bundle plus a monitor (conmon) holding the created container."""
    env = env or load_environment(spec)
    ctr = create(spec, env)
    with operations.changing(ctr) as ctr:
        ctr.monitor = "conmon"
    try:
        operations.launch(ctr, env)
    except RuntimeFailed as e:
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


def sweep_half_made() -> None:
    """Remove, and record, containers a killed ``run`` or ``create`` left half-made
    (docs/runner.md, "What a signal to run leaves behind")."""
    for cid, name in state.sweep_half_made():
        audit.record("container.create.abandoned", "ok", container_id=cid,
                     container_name=name or None,
                     reason="its maker ended before the container was made; removed")
