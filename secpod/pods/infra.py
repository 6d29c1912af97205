"""A pod's infra container: Debian's ``catatonit -P`` (it only waits, and reaps), run by
the OCI runtime under the ``strict`` profile whatever the pod's own profile (no
capability, default-deny seccomp, read-only root), as Podman's infra container is.

It joins a namespace holder (secpod.network) that binds the pod's published ports on
the host and made its user and network namespaces; the runtime makes its IPC and UTS
namespaces (with the pod's hostname). Its members join those four
(secpod.pods.namespaces). Its root is a tree secpod makes once per store: empty mount
points and nothing else, the binary bound read-only from the host at
``/run/podman-init`` as ``--init`` binds it (secpod.sandbox.init). It is a container
like any other to ``ps -a``, ``inspect`` and the audit log, named ``POD-infra``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from secpod import paths
from secpod.pods.record import Pod

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from secpod.sandbox.environment import Environment
    from secpod.sandbox.preflight import Identity
    from secpod.sandbox.state import Container
    from secpod.spec import PortMapping

IMAGE_REF = "secpod-infra (catatonit -P, from the host)"
_DIRS = ("proc", "dev", "sys", "etc", "run", "tmp")


def tree() -> Path:
    """The infra's root: mount points only (made once, then never written)."""
    from secpod.sandbox.init import DESTINATION

    root = paths.data_dir() / "pods" / "infra-root"
    if (root / DESTINATION.lstrip("/")).is_file():
        return root
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    for d in _DIRS:
        (root / d).mkdir(mode=0o755, exist_ok=True)
    for name in ("hosts", "resolv.conf", "hostname"):
        (root / "etc" / name).touch(mode=0o644)
    tmp = root / "run" / ".podman-init.tmp"
    tmp.touch(mode=0o755)
    os.chmod(tmp, 0o755)  # noqa: S103 - an executable mount point, as the check wants
    tmp.replace(root / DESTINATION.lstrip("/"))
    return root


def _digest(binary: Path) -> str:
    h = hashlib.sha256()
    with open(binary, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def create(pod: Pod, ports: tuple[PortMapping, ...], identity: Identity,
           env: Environment) -> Container:
    """Make (not start) the infra of ``pod``, its holder bound on ``ports``. Raises the
    errors of create (Conflict for a port in use or the name ``POD-infra`` taken,
    HostError, ...); nothing is left then."""
    from secpod import network, policies, runtime
    from secpod.sandbox import bundle as bundlemod
    from secpod.sandbox import events, init, state
    from secpod.sandbox.state import Container
    from secpod.spec import ContainerSpec, Process

    name = f"{pod.name}-infra"
    spec = ContainerSpec(image=IMAGE_REF, profile="strict", name=name, detach=True,
                         hostname=pod.hostname)
    confinement = policies.confine(spec, env.features, user=identity.user)
    rt = env.runtime(runtime.choose(None, identity.user))
    catatonit = init.find()
    root = tree()
    cid, name, folder = state.reserve(name)
    try:
        bundlemod.write_userdata(folder / "userdata", pod.hostname)
        config = bundlemod.build_config(
            cid=cid, hostname=pod.hostname, rootfs=root, image_tree=root,
            image_config={"config": {"Cmd": [init.DESTINATION]}}, request=Process(),
            confinement=confinement, identity=identity, userdata=folder / "userdata")
        init.add_to(config, root)
        config["process"]["args"] = [init.DESTINATION, "-P"]   # pause: wait and reap
        config["annotations"]["io.secpod.pod"] = pod.id
        holder = network.start_holder(cid, ports, identity, folder, net=True)
        network.join(config, folder, holder, net=True, mnt=False)
        digest = bundlemod.write_config(folder / "bundle", config)
        summary = dict(confinement.summary)
        summary["ports"] = [str(p) for p in holder.ports]
        ctr = Container(
            id=cid, name=name, image_ref=IMAGE_REF, image_digest=_digest(catatonit),
            profile=confinement.profile_label, profile_hash=confinement.profile_hash,
            created=state.now(), args=[init.DESTINATION, "-P"], root_mode="shared-readonly",
            detach=True, unenforced=[*confinement.unenforced, *rt.unenforced(config)],
            confinement=summary, config_digest=digest, runtime=rt.name, monitor="conmon",
            network_mode="private", ports=network.as_records(holder.ports),
            holder_pid=holder.pid, holder_identity=state.process_identity(holder.pid),
            pod=pod.id, pod_infra=True, stop_timeout=5)
        ctr.log_path.touch(mode=0o600)
        ctr.save()
        events.container("container.create", ctr, confinement=summary)
    except BaseException:
        live = network.live(cid)
        if live is not None:
            live.kill()
        state.release(cid, name)
        raise
    return ctr
