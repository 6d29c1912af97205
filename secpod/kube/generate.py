"""``secpod kube generate``: existing containers as one Kubernetes Pod (or Deployment).

Read from each container's saved state: its record (name, image digest, ports, mounts,
labels, restart policy, confinement summary) and its bundle's ``config.json``, held to
the digest ``create`` recorded (what crun was given: user, capabilities, seccomp,
noNewPrivileges, read-only root, env, cwd). What Kubernetes cannot state as secpod
enforced it is refused with the container and the reason; docs/kubernetes.md lists each.
"""

from __future__ import annotations

from secpod._record import record
from secpod.errors import Refused, UsageError
from secpod.kube import names
from secpod.kube import seccomp as kseccomp

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.state import Container

KINDS = ("pod", "deployment")
_RESTART = {"no": "Never", "always": "Always", "unless-stopped": "Always",
            "on-failure": "OnFailure"}
_DROPPED_ENV = ("HOSTNAME", "container")  # set by secpod for itself; kubelet sets its own


SELECTOR = "secpod.io/pod"  # the label a Deployment and the NetworkPolicy select by


@record(frozen=True, eq=False)
class Generated:
    """The documents, the seccomp files to write beside them, and notes for stderr."""

    documents: tuple[dict[str, Any], ...]
    seccomp_files: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]

    def yaml(self) -> str:
        import yaml  # type: ignore[import-untyped]  # no stubs in Debian's python3-yaml

        from secpod import __version__

        head = f"# made by secpod kube generate (secpod {__version__})\n"
        body: str = yaml.safe_dump_all(list(self.documents), sort_keys=False,
                                       default_flow_style=False)
        return head + body


def _quantity(n: int) -> str:
    for unit, shift in (("Gi", 30), ("Mi", 20), ("Ki", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def _image(ctr: Container) -> str:
    from secpod.images import reference

    if ctr.image_ref.startswith("sha256:"):
        raise Refused(f"container {ctr.name}'s image has no name ({ctr.image_ref})",
                      hint="a cluster pulls images by name: tag the image, push it to a "
                           "registry, and create the container from that name")
    ref = reference.parse(ctr.image_ref)
    return f"{ref.repository}@{ctr.image_digest}"


def _security(ctr: Container, config: dict[str, Any], seccomp_files: dict[str, str],
              notes: list[str]) -> dict[str, Any]:
    from secpod.policies import profile as profile_mod

    proc = config.get("process") or {}
    weakened = list((ctr.confinement or {}).get("weakened") or [])
    added = [w.split(" ", 1)[1] for w in weakened if w.startswith("cap-add ")]
    if added:
        raise Refused(f"container {ctr.name} runs with capabilities its profile does not "
                      f"grant ({', '.join(added)}, by --cap-add)",
                      hint="kube generate states a profile's confinement, never a weakened "
                           "one: create the container without --cap-add")
    caps = [c.removeprefix("CAP_") for c in (proc.get("capabilities") or {}).get("bounding", [])]
    nnp = bool(proc.get("noNewPrivileges"))
    if nnp and "SYS_ADMIN" in caps:
        raise Refused(f"container {ctr.name} keeps CAP_SYS_ADMIN with noNewPrivileges, "
                      "which Kubernetes refuses (allowPrivilegeEscalation false with "
                      "SYS_ADMIN added)")
    user = proc.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    sc: dict[str, Any] = {
        "privileged": False,
        "allowPrivilegeEscalation": not nnp,
        "readOnlyRootFilesystem": bool((config.get("root") or {}).get("readonly")),
        "runAsUser": uid,
        "runAsGroup": gid,
        "runAsNonRoot": uid != 0,
        "capabilities": {"drop": ["ALL"], **({"add": caps} if caps else {})},
    }
    filt = (config.get("linux") or {}).get("seccomp")
    base = (config.get("annotations") or {}).get("io.secpod.profile") or ctr.profile
    if filt:
        content = kseccomp.kubelet_json(filt, container=ctr.name)
        fname = kseccomp.file_name(base, content)
        seccomp_files[fname] = kseccomp.dumps(content)
        sc["seccompProfile"] = {"type": "Localhost", "localhostProfile": fname}
    else:
        sc["seccompProfile"] = {"type": "Unconfined"}
    prof = profile_mod.load(base)
    if any(w.startswith("apparmor=unconfined") for w in weakened):
        sc["appArmorProfile"] = {"type": "Unconfined"}
    elif proc.get("apparmorProfile") or prof.apparmor_enforce != "off":
        name = proc.get("apparmorProfile") or prof.apparmor_profile
        sc["appArmorProfile"] = {"type": "Localhost", "localhostProfile": name}
        notes.append(f"{ctr.name}: load AppArmor profile {name} on each node "
                     f"(secpod profile export {base} --format apparmor)")
    if not any(w.startswith("label=disable") for w in weakened) and \
            prof.selinux_enforce != "off":
        label = str(proc.get("selinuxLabel") or "")
        parts = label.split(":")
        sc["seLinuxOptions"] = ({"user": parts[0], "role": parts[1], "type": parts[2]}
                                if len(parts) >= 3 else {"type": prof.selinux_type})
    return sc


def _mounts(ctr: Container, cname: str, taken: set[str], volumes: list[dict[str, Any]],
            notes: list[str]) -> list[dict[str, Any]]:
    import os

    out = []
    for m in ctr.mounts:
        opts = list(m.get("options") or [])
        vname = names.unique(names.dns_label(f"{cname}-{m['destination']}"), taken)
        kind = m.get("type")
        volume = None
        if kind == "bind":
            from secpod.sandbox.volumes import name_of

            volume = name_of(str(m.get("source", "")))
        if volume is not None:   # a named volume is a bind of its folder (docs/volumes.md)
            kind, m = "volume", {**m, "name": volume}
        if kind == "tmpfs":
            size = next((int(o[5:]) for o in opts if o.startswith("size=")), None)
            empty: dict[str, Any] = {"medium": "Memory"}
            if size:
                empty["sizeLimit"] = _quantity(size)
            volumes.append({"name": vname, "emptyDir": empty})
            if "noexec" in opts:
                notes.append(f"{cname}: the tmpfs at {m['destination']} is noexec here; an "
                             "emptyDir has no such option")
        elif kind == "volume":
            claim = names.dns_label(str(m.get("name") or m.get("source") or vname))
            volumes.append({"name": vname, "persistentVolumeClaim": {"claimName": claim}})
        elif kind == "bind":
            src = str(m["source"])
            htype = ("Directory" if os.path.isdir(src) else
                     "CharDevice" if src.startswith("/dev/") else "File")
            volumes.append({"name": vname, "hostPath": {"path": src, "type": htype}})
        else:
            raise Refused(f"container {ctr.name} has a {kind} mount at {m['destination']}, "
                          "which kube generate cannot express")
        vm: dict[str, Any] = {"name": vname, "mountPath": m["destination"]}
        if "ro" in opts:
            vm["readOnly"] = True
        out.append(vm)
    return out


def _pod_of(ctr: Container) -> str:
    from secpod.pods.record import _read, pods_dir

    return _read(pods_dir() / str(ctr.pod)).name


def _pod_ports(containers: list[Container]) -> dict[str, list[dict[str, Any]]]:
    """A pod member publishes nothing itself: its pod's ports (its infra's) are stated on
    the pod's first member given (a Pod's ports are its containers')."""
    from secpod.pods import lifecycle
    from secpod.pods.record import _read, pods_dir

    out: dict[str, list[dict[str, Any]]] = {}
    done: set[str] = set()
    for ctr in containers:
        if not ctr.pod or ctr.pod in done:
            continue
        done.add(ctr.pod)
        out[ctr.id] = lifecycle.infra_ports(_read(pods_dir() / ctr.pod))
    return out


def generate(containers: list[Container], kind: str = "pod") -> Generated:
    """One Pod (``kind`` ``pod``) or Deployment holding ``containers``.

    Raises UsageError (an unknown kind, no container), Refused (what cannot be
    expressed, naming the container and why), BundleChanged (a bundle changed since
    create), NotFound (the container's profile is gone)."""
    from secpod.sandbox import bundle

    if kind not in KINDS:
        raise UsageError(f"unknown --type {kind!r}", hint="pod or deployment")
    if not containers:
        raise UsageError("no container given")
    notes: list[str] = []
    seccomp_files: dict[str, str] = {}
    taken: set[str] = set()
    volumes: list[dict[str, Any]] = []
    specs = []
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    ports_seen: dict[tuple[int, str], str] = {}
    modes = set()
    restarts = set()
    grace = 0
    pod_name = names.dns_label(containers[0].name, limit=59) + "-pod"
    pod_ports = _pod_ports(containers)
    if len({c.pod for c in containers}) == 1 and containers[0].pod:
        pod_name = names.dns_label(_pod_of(containers[0]), limit=63)
    for ctr in containers:
        if ctr.network_mode in ("host", "none"):
            raise Refused(f"container {ctr.name} uses --network {ctr.network_mode}, which a "
                          "Pod cannot state as secpod enforces it",
                          hint="hostNetwork would give it the node's network; a Pod always "
                               "has a network: create it with --network private or pasta")
        modes.add(ctr.network_mode)
        config = bundle.checked_config(ctr.bundle, ctr.config_digest, ctr.name)
        proc = config.get("process") or {}
        own = ctr.name.removeprefix(_pod_of(ctr) + "-") if ctr.pod else ctr.name
        cname = names.unique(names.dns_label(own), taken)   # kube play prefixes the pod
        c: dict[str, Any] = {"name": cname, "image": _image(ctr)}
        args = list(ctr.args)
        ep = len(ctr.entrypoint) if args[:len(ctr.entrypoint)] == ctr.entrypoint else 0
        c["command"] = args[:ep] if ep else args
        if ep and args[ep:]:
            c["args"] = args[ep:]
        env = []
        for item in proc.get("env") or []:
            key, _, value = str(item).partition("=")
            if key not in _DROPPED_ENV:
                env.append({"name": key, "value": value})
        if env:
            c["env"] = env
        c["workingDir"] = proc.get("cwd") or "/"
        ports = []
        for p in ctr.ports or pod_ports.pop(ctr.id, []):
            proto = str(p["protocol"]).upper()
            pkey = (int(p["container_port"]), proto)
            if pkey in ports_seen:
                raise Refused(f"containers {ports_seen[pkey]} and {ctr.name} both listen on "
                              f"{pkey[0]}/{proto.lower()}: in one Pod they share a network")
            ports_seen[pkey] = ctr.name
            ports.append({"containerPort": pkey[0], "protocol": proto,
                          "hostPort": int(p["host_port"]), "hostIP": str(p["host_ip"])})
        if ports:
            c["ports"] = ports
        mounts = _mounts(ctr, cname, taken, volumes, notes)
        if mounts:
            c["volumeMounts"] = mounts
        memory = ((ctr.confinement or {}).get("limits") or {}).get("memory")
        if memory:
            c["resources"] = {"limits": {"memory": _quantity(int(memory))}}
        if proc.get("terminal"):
            c["tty"] = True
            c["stdin"] = True
        c["securityContext"] = _security(ctr, config, seccomp_files, notes)
        specs.append(c)
        for k, v in ctr.labels.items():
            if names.is_label_key(k) and names.is_label_value(v):
                if labels.setdefault(k, v) != v:
                    notes.append(f"label {k}: containers disagree; kept {labels[k]!r}")
            elif names.is_label_key(k):
                annotations.setdefault(k, v)
        annotations[f"secpod.io/profile.{cname}"] = ctr.profile
        annotations[f"secpod.io/profile-hash.{cname}"] = ctr.profile_hash
        restarts.add(_RESTART[ctr.restart_policy.partition(":")[0]])
        grace = max(grace, ctr.stop_timeout)
        if ctr.init:
            notes.append(f"{ctr.name}: --init (catatonit as PID 1) is not carried")
    if len(modes) > 1:
        raise Refused("the containers' networks differ (" + ", ".join(sorted(modes)) +
                      "): a Pod has one network", hint="generate them one at a time")
    if len(restarts) > 1:
        raise Refused("the containers' restart policies differ (" + ", ".join(sorted(restarts))
                      + "): a Pod has one restartPolicy", hint="generate them one at a time")
    restart = restarts.pop()
    if kind == "deployment" and restart != "Always":
        notes.append(f"a Deployment restarts its Pods always (the containers' policy is "
                     f"{restart})")
        restart = "Always"
    labels[SELECTOR] = pod_name   # the containers' own labels (an ``app`` too) are kept
    pod_spec: dict[str, Any] = {
        "restartPolicy": restart,
        "hostUsers": False,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace,
        "containers": specs,
    }
    if volumes:
        pod_spec["volumes"] = volumes
    meta = {"name": pod_name, "labels": labels, "annotations": annotations}
    doc: dict[str, Any]
    if kind == "pod":
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}
    else:
        name = names.dns_label(containers[0].name, limit=52) + "-deployment"
        doc = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "labels": labels},
               "spec": {"replicas": 1, "selector": {"matchLabels": {SELECTOR: pod_name}},
                        "template": {"metadata": {"labels": labels,
                                                  "annotations": annotations},
                                     "spec": pod_spec}}}
    docs = [doc]
    if modes == {"private"}:
        # secpod's private network has loopback only: no route out, reached only on the
        # published ports. A NetworkPolicy says the same to the cluster.
        policy: dict[str, Any] = {"podSelector": {"matchLabels": {SELECTOR: pod_name}},
                                  "policyTypes": ["Ingress", "Egress"]}
        if ports_seen:
            policy["ingress"] = [{"ports": [{"port": port, "protocol": proto}
                                            for port, proto in ports_seen]}]
        docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": {"name": names.dns_label(pod_name, limit=56) + "-network"},
                     "spec": policy})
    return Generated(documents=tuple(docs), seccomp_files=tuple(sorted(seccomp_files.items())),
                     notes=tuple(notes))
