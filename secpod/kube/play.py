"""``secpod kube play FILE``: the Pods and Deployments of a Kubernetes YAML file run as
secpod pods, under secpod's profiles (docs/kubernetes.md); ``kube down FILE`` removes them.

Each Pod (a Deployment: its pod template, once) becomes a pod (secpod.pods) named as
the document, and each of its containers a member ``POD-CONTAINER``, made from the same
run flags a user would type, so that the profile, the administrator's floor and the
trust policy judge it exactly as they judge ``secpod run``. Everything is planned and
checked first; only then is anything made, and a failure removes what was made: no
partial pod, no orphan infra, no volume left.

How a securityContext maps onto a profile: the document's own ``secpod.io/profile.NAME``
annotation (``kube generate`` writes it) names the profile; otherwise
``readOnlyRootFilesystem: true`` with ``capabilities.drop: [ALL]`` and nothing added is
``strict``, anything else ``default``. The rest is flags on that profile: added
capabilities (``--cap-add``, judged by the floor), a user, a read-only root, a seccomp
profile file. What would make a container weaker than it asks (``privileged``, the
host's namespaces, an unconfined seccomp under ``strict``) is refused by its path.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from secpod._record import field, record
from secpod.errors import Conflict, Error, UsageError
from secpod.kube.manifest import Document, get, load

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.pods.record import Pod
    from secpod.spec import ContainerSpec, PortMapping

LABEL = "secpod.io/kube-play"     # on the named volumes kube play makes (removed by down)
_RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}
_PULL = {"Always": "always", "IfNotPresent": "missing", "Never": "never"}


@record(eq=False)
class Plan:
    """One pod to make: its name, hostname, ports, volumes and members."""

    doc: Document
    name: str
    hostname: str
    ports: tuple[PortMapping, ...] = ()
    members: list[ContainerSpec] = field(default_factory=list)
    member_paths: list[str] = field(default_factory=list)       # spec.containers[i]
    sources: dict[str, str] = field(default_factory=dict)       # hostPath -> its field
    # named volumes to make: (volume name, {file path: (bytes, mode)} or None for empty)
    volumes: list[tuple[str, dict[str, tuple[bytes, int]] | None]] = field(
        default_factory=list)
    notes: list[str] = field(default_factory=list)


def _config_data(doc: Document) -> dict[str, bytes]:
    body = doc.body
    out: dict[str, bytes] = {}
    try:
        if doc.kind == "ConfigMap":
            for k, v in (body.get("data") or {}).items():
                out[str(k)] = str(v).encode()
            for k, v in (body.get("binaryData") or {}).items():
                out[str(k)] = base64.b64decode(str(v), validate=True)
        else:
            for k, v in (body.get("data") or {}).items():
                out[str(k)] = base64.b64decode(str(v), validate=True)
            for k, v in (body.get("stringData") or {}).items():
                out[str(k)] = str(v).encode()
    except (ValueError, AttributeError) as e:
        raise doc.malformed("data", f"not a map of valid values ({e})") from None
    for k in out:
        if not k or "/" in k or k in (".", ".."):
            raise doc.malformed(f"data.{k}", "not a file name")
    return out


def plan(path: Path) -> tuple[list[Plan], list[str]]:
    """What ``path`` asks, checked: (the pods to make, notes). Raises MalformedInput,
    Refused, UsageError, naming the document and the field."""
    docs = load(path)
    configs = {(d.kind, d.name): _config_data(d) for d in docs
               if d.kind in ("ConfigMap", "Secret")}
    plans: list[Plan] = []
    notes: list[str] = []
    seen: set[str] = set()
    for doc in docs:
        if doc.kind in ("ConfigMap", "Secret"):
            continue
        if doc.kind not in ("Pod", "Deployment"):
            notes.append(f"{doc.where}: {doc.api} {doc.kind} {doc.name}: nothing to run")
            continue
        if doc.name in seen:
            raise doc.malformed("metadata.name", f"a second pod named {doc.name}")
        seen.add(doc.name)
        p = _plan(doc, configs, path.parent)
        plans.append(p)
        notes += p.notes
    if not plans:
        raise UsageError(f"{path}: no Pod or Deployment to run")
    return plans, notes


def _plan(doc: Document, configs: dict[tuple[str, str], dict[str, bytes]],
          folder: Path) -> Plan:
    from secpod.pods.record import valid_name

    prefix, meta, spec = "spec", doc.body.get("metadata") or {}, doc.body.get("spec") or {}
    notes: list[str] = []
    if doc.kind == "Deployment":
        replicas = spec.get("replicas", 1)
        if replicas not in (0, 1):
            notes.append(f"{doc.where}: Deployment {doc.name}: runs its pod template once "
                         f"(spec.replicas is {replicas})")
        template = spec.get("template") or {}
        prefix, spec = "spec.template.spec", template.get("spec") or {}
        meta = {**(template.get("metadata") or {}), "name": doc.name,
                "annotations": {**(meta.get("annotations") or {}),
                                **((template.get("metadata") or {}).get("annotations") or {})}}
    if not valid_name(doc.name):
        raise doc.malformed("metadata.name", f"{doc.name!r} is not a pod name secpod takes")
    for key in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
        if spec.get(key):
            raise doc.refuse(f"{prefix}.{key}", "true: a container of an untrusted image "
                             "never shares the host's namespaces (nor a pid namespace)")
    if spec.get("hostUsers") is True:
        raise doc.refuse(f"{prefix}.hostUsers", "true: secpod runs every container in a "
                         "user namespace", hint="leave it out, or false")
    containers = spec.get("containers") or []
    if not containers:
        raise doc.malformed(f"{prefix}.containers", "no container")
    hostname = str(spec.get("hostname") or doc.name)
    volumes = _volumes(doc, spec.get("volumes") or [], prefix, configs, doc.name)
    plan_ = Plan(doc=doc, name=doc.name, hostname=hostname, notes=notes)
    plan_.volumes = [(v["volume"], v["files"]) for v in volumes.values() if v["made"]]
    plan_.sources = {v["source"]: v["at"] for v in volumes.values() if v["kind"] == "hostPath"}
    names: set[str] = set()
    ports: list[PortMapping] = []
    annotations = meta.get("annotations") or {}
    for i, c in enumerate(containers):
        where = f"{prefix}.containers[{i}]"
        cname = str(c.get("name") or "")
        if not cname:
            raise doc.malformed(f"{where}.name", "missing")
        if cname in names:
            raise doc.malformed(f"{where}.name", f"a second container named {cname}")
        names.add(cname)
        spec_ = _member(doc, c, where, spec, prefix, volumes, annotations, folder, notes)
        plan_.members.append(spec_)
        plan_.member_paths.append(where)
        ports += _ports(doc, c, where, notes)
    from secpod.network.ports import check_distinct

    try:
        check_distinct(tuple(ports))
    except Error as e:
        raise doc.malformed(f"{prefix}.containers[*].ports", e.message) from None
    plan_.ports = tuple(ports)
    return plan_


def _ports(doc: Document, c: dict[str, Any], where: str, notes: list[str]) -> list[Any]:
    from secpod.spec import PortMapping

    out = []
    for j, p in enumerate(c.get("ports") or []):
        at = f"{where}.ports[{j}]"
        port, host = p.get("containerPort"), p.get("hostPort")
        proto = str(p.get("protocol") or "TCP")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise doc.malformed(f"{at}.containerPort", "not a port number")
        if proto not in ("TCP", "UDP"):
            raise doc.refuse(f"{at}.protocol", f"{proto}: secpod publishes TCP and UDP")
        if host is None:
            notes.append(f"{doc.where}: {at}: no hostPort, not published on this host")
            continue
        if not isinstance(host, int) or not 0 < host < 65536:
            raise doc.malformed(f"{at}.hostPort", "not a port number")
        out.append(PortMapping(container_port=port, host_port=host,
                               host_ip=str(p.get("hostIP") or "127.0.0.1"),
                               protocol=proto.lower()))
    return out


def _volumes(doc: Document, vols: list[dict[str, Any]], prefix: str,
             configs: dict[tuple[str, str], dict[str, bytes]],
             pod: str) -> dict[str, dict[str, Any]]:
    """name -> {"flag": a -v/--tmpfs value without the destination, "made": whether
    kube play makes a named volume for it, "volume", "files"}."""
    out: dict[str, dict[str, Any]] = {}
    for i, v in enumerate(vols):
        at = f"{prefix}.volumes[{i}]"
        name = str(v.get("name") or "")
        if not name or name in out:
            raise doc.malformed(f"{at}.name", "missing or not unique")
        kinds = [k for k in v if k != "name"]
        if len(kinds) != 1:
            raise doc.malformed(at, "exactly one volume source")
        kind = kinds[0]
        src = v[kind] or {}
        own = f"{pod}-{name}"
        entry: dict[str, Any] = {"made": False, "volume": own, "files": None, "kind": kind,
                                 "at": f"{at}.{kind}.path"}
        if kind == "emptyDir":
            if src.get("medium") == "Memory":
                size = src.get("sizeLimit")
                entry["tmpfs"] = f"size={size}" if size else ""
            elif src.get("medium") not in (None, ""):
                raise doc.refuse(f"{at}.emptyDir.medium", f"{src.get('medium')}: secpod "
                                 "has Memory (a tmpfs) or the default (a volume)")
            else:
                entry.update(made=True, source=own)
        elif kind == "hostPath":
            if src.get("type") not in (None, "", "Directory", "File"):
                raise doc.refuse(f"{at}.hostPath.type", f"{src.get('type')}: secpod binds "
                                 "an existing Directory or File, and creates nothing on the "
                                 "host")
            entry["source"] = str(src.get("path") or "")
        elif kind == "persistentVolumeClaim":
            entry["source"] = str(src.get("claimName") or "")
            entry["readonly"] = bool(src.get("readOnly"))
        else:     # configMap, secret: their files in a volume of the pod's own
            ref = str(src.get("name") if kind == "configMap" else src.get("secretName"))
            data = configs.get(("ConfigMap" if kind == "configMap" else "Secret", ref))
            if data is None:
                if src.get("optional"):
                    data = {}
                else:
                    raise doc.malformed(f"{at}.{kind}", f"{ref}: no such "
                                        f"{'ConfigMap' if kind == 'configMap' else 'Secret'} "
                                        "in this file")
            mode = int(src.get("defaultMode", 0o644 if kind == "configMap" else 0o400))
            files: dict[str, tuple[bytes, int]] = {}
            for j, item in enumerate(src.get("items") or [{"key": k, "path": k} for k in data]):
                key, rel = str(item.get("key")), str(item.get("path") or item.get("key"))
                if key not in data:
                    raise doc.malformed(f"{at}.{kind}.items[{j}].key", f"{key}: not in {ref}")
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise doc.refuse(f"{at}.{kind}.items[{j}].path", f"{rel}: outside the "
                                     "volume")
                files[rel] = (data[key], int(item.get("mode", mode)) & 0o777)
            entry.update(made=True, source=own, files=files, readonly=True)
        out[name] = entry
    return out


def _profile(doc: Document, c: dict[str, Any], sc: dict[str, Any], annotations: dict[str, Any],
             where: str) -> str:
    from secpod.errors import NotFound
    from secpod.policies import profile as profile_mod

    asked = annotations.get(f"secpod.io/profile.{c.get('name')}")
    if asked:
        name = str(asked).split("+", 1)[0]   # default+1: the flags are the document's own
        try:
            profile_mod.load(name)
        except NotFound:
            raise doc.refuse(f"metadata.annotations.secpod.io/profile.{c.get('name')}",
                             f"no profile {name} on this host",
                             hint="secpod profile ls; or remove the annotation") from None
        return name
    drop = (get(sc, "capabilities", "drop") or [])
    if sc.get("readOnlyRootFilesystem") is True and "ALL" in drop \
            and not get(sc, "capabilities", "add"):
        return "strict"
    del where
    return "default"


def _member(doc: Document, c: dict[str, Any], where: str, spec: dict[str, Any], prefix: str,
            volumes: dict[str, dict[str, Any]], annotations: dict[str, Any], folder: Path,
            notes: list[str]) -> ContainerSpec:
    """The run flags of one container, parsed by ``run``'s own parser."""
    from secpod._record import replace

    pod_sc = spec.get("securityContext") or {}
    sc = {**pod_sc, **(c.get("securityContext") or {})}
    image = c.get("image")
    if not isinstance(image, str) or not image:
        raise doc.malformed(f"{where}.image", "missing")
    if sc.get("privileged"):
        raise doc.refuse(f"{where}.securityContext.privileged", "true: secpod never runs "
                         "a privileged container", hint="leave it out; add only the "
                         "capabilities the container needs")
    profile = _profile(doc, c, sc, annotations, where)
    argv = ["--pod", doc.name, "--name", f"{doc.name}-{c['name']}", "--profile", profile]
    caps = get(sc, "capabilities", "add") or []
    drop = get(sc, "capabilities", "drop") or []
    for cap in drop:       # ALL first clears the profile's set; the adds come after
        argv += ["--cap-drop", str(cap)]
    for cap in caps:
        argv += ["--cap-add", str(cap)]
    if sc.get("allowPrivilegeEscalation") is True:
        notes.append(f"{doc.where}: {where}.securityContext.allowPrivilegeEscalation: "
                     "secpod sets no_new_privileges all the same (stricter)")
    if sc.get("readOnlyRootFilesystem") is True:
        argv.append("--read-only")
    user, group = sc.get("runAsUser"), sc.get("runAsGroup")
    if user is not None:
        argv += ["-u", f"{int(user)}" + (f":{int(group)}" if group is not None else "")]
    elif group is not None:
        raise doc.refuse(f"{where}.securityContext.runAsGroup", "without runAsUser",
                         hint="give runAsUser too")
    if sc.get("runAsNonRoot") and user is not None and int(user) == 0:
        raise doc.malformed(f"{where}.securityContext.runAsNonRoot",
                            "true, and runAsUser is 0")
    argv += _seccomp(doc, sc, where, profile, folder)
    for key, want in (("appArmorProfile", "secpod-"), ("seLinuxOptions", "container_t")):
        value = sc.get(key)
        if not value:
            continue
        if key == "appArmorProfile":
            kind = value.get("type")
            if kind == "Unconfined":
                argv += ["--security-opt", "apparmor=unconfined"]
            elif kind == "Localhost" and not str(value.get("localhostProfile")
                                                  ).startswith(want):
                raise doc.refuse(f"{where}.securityContext.appArmorProfile",
                                 f"{value.get('localhostProfile')}: secpod loads its "
                                 "profiles' AppArmor profiles (secpod-*) only")
        elif value.get("type") not in (None, want):
            raise doc.refuse(f"{where}.securityContext.seLinuxOptions.type",
                             f"{value.get('type')}: secpod labels containers container_t")
    argv += _env(doc, c, where)
    if c.get("workingDir"):
        argv += ["-w", str(c["workingDir"])]
    if c.get("tty"):
        argv.append("-t")
    if c.get("stdin"):
        argv.append("-i")
    pull = c.get("imagePullPolicy")
    if pull is not None:
        if pull not in _PULL:
            raise doc.malformed(f"{where}.imagePullPolicy", f"{pull}: not a pull policy")
        argv += ["--pull", _PULL[pull]]
    limits = get(c, "resources", "limits") or {}
    if limits.get("memory") is not None:
        argv += ["--memory", _memory(doc, str(limits["memory"]), f"{where}.resources")]
    if limits.get("cpu") is not None:
        argv += ["--cpus", _cpus(doc, str(limits["cpu"]), f"{where}.resources")]
    if get(c, "resources", "requests"):
        notes.append(f"{doc.where}: {where}.resources.requests: a scheduler's hint, "
                     "nothing for one host to enforce")
    restart = spec.get("restartPolicy", "Always")
    if restart not in _RESTART:
        raise doc.malformed(f"{prefix}.restartPolicy", f"{restart}: not a restart policy")
    argv += ["--restart", _RESTART[restart]]
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None:
        argv += ["--stop-timeout", str(int(grace))]
    for j, m in enumerate(c.get("volumeMounts") or []):
        argv += _mount(doc, m, f"{where}.volumeMounts[{j}]", volumes)
    argv.append(image)
    args = _parse(doc, where, argv)
    command, cargs = c.get("command"), c.get("args")
    for key, value in (("command", command), ("args", cargs)):
        if value is not None and (not isinstance(value, list)
                                  or not all(isinstance(x, str | int | float) for x in value)):
            raise doc.malformed(f"{where}.{key}", "not a list of strings")
    process = args.process
    if command is not None:
        process = replace(process, entrypoint=tuple(map(str, command)),
                          command=tuple(map(str, cargs or ())))
    elif cargs is not None:
        process = replace(process, command=tuple(map(str, cargs)))
    return replace(args, process=process)


def _seccomp(doc: Document, sc: dict[str, Any], where: str, profile: str,
             folder: Path) -> list[str]:
    sp = sc.get("seccompProfile")
    if not sp:
        return []
    kind = sp.get("type")
    if kind == "RuntimeDefault":
        return []
    if kind == "Unconfined":
        return ["--security-opt", "seccomp=unconfined"]
    if kind != "Localhost":
        raise doc.malformed(f"{where}.securityContext.seccompProfile.type",
                            f"{kind}: RuntimeDefault, Localhost or Unconfined")
    rel = sp.get("localhostProfile")
    if not rel:
        raise doc.malformed(f"{where}.securityContext.seccompProfile.localhostProfile",
                            "missing (Localhost needs it)")
    file = (folder / str(rel)).resolve()
    if not file.is_file():
        raise doc.refuse(f"{where}.securityContext.seccompProfile.localhostProfile",
                         f"{rel}: no such file beside the YAML",
                         hint="kube generate writes it beside the YAML it writes")
    import json

    from secpod.kube import seccomp as kseccomp

    try:
        asked = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise doc.malformed(f"{where}.securityContext.seccompProfile.localhostProfile",
                            f"{rel}: not a seccomp JSON file ({e})") from None
    if _profile_filter(profile) == kseccomp.dumps(asked):
        return []    # the profile's own filter (kube generate wrote it): nothing to state
    return ["--security-opt", f"seccomp={file}"]


def _profile_filter(profile: str) -> str | None:
    """The kubelet file ``kube generate`` writes for ``profile``'s seccomp filter here."""
    from secpod.kube import seccomp as kseccomp
    from secpod.policies import profile as profile_mod
    from secpod.policies.confine import confine_profile
    from secpod.sandbox import host
    from secpod.spec import ContainerSpec

    conf = confine_profile(profile_mod.load(profile),
                           ContainerSpec(image="kube-play", profile=profile), host.probe())
    oci = conf.linux.get("seccomp")
    if not oci:
        return None
    try:
        return str(kseccomp.dumps(kseccomp.kubelet_json(oci, container="kube-play")))
    except Error:
        return None


def _env(doc: Document, c: dict[str, Any], where: str) -> list[str]:
    out = []
    for j, e in enumerate(c.get("env") or []):
        name = str(e.get("name") or "")
        if not name:
            raise doc.malformed(f"{where}.env[{j}].name", "missing")
        if "valueFrom" in e:
            raise doc.refuse(f"{where}.env[{j}].valueFrom", "secpod takes env values "
                             "written out", hint="give value, or mount the ConfigMap or "
                             "Secret as a volume")
        out += ["-e", f"{name}={e.get('value') or ''}"]
    return out


def _mount(doc: Document, m: dict[str, Any], at: str,
           volumes: dict[str, dict[str, Any]]) -> list[str]:
    name, dst = str(m.get("name") or ""), str(m.get("mountPath") or "")
    v = volumes.get(name)
    if v is None:
        raise doc.malformed(f"{at}.name", f"{name}: no such volume in spec.volumes")
    if not dst.startswith("/"):
        raise doc.malformed(f"{at}.mountPath", f"{dst!r} is not absolute")
    ro = bool(m.get("readOnly")) or bool(v.get("readonly"))
    if "tmpfs" in v:
        return ["--tmpfs", f"{dst}:{v['tmpfs']}" if v["tmpfs"] else dst]
    return ["-v", f"{v['source']}:{dst}" + (":ro" if ro else "")]


def _memory(doc: Document, q: str, at: str) -> str:
    units = {"Ki": "k", "Mi": "m", "Gi": "g", "K": "k", "M": "m", "G": "g"}
    for suffix, unit in units.items():
        if q.endswith(suffix) and q[:-len(suffix)].isdigit():
            return q[:-len(suffix)] + unit
    if q.isdigit():
        return q
    raise doc.malformed(f"{at}.limits.memory", f"{q}: a quantity such as 64Mi")


def _cpus(doc: Document, q: str, at: str) -> str:
    try:
        return str(int(q[:-1]) / 1000) if q.endswith("m") else str(float(q))
    except ValueError:
        raise doc.malformed(f"{at}.limits.cpu", f"{q}: a quantity such as 500m") from None


def _parse(doc: Document, where: str, argv: list[str]) -> ContainerSpec:
    import argparse

    from secpod.spec.flags import add_run_flags, spec_from_args

    parser = argparse.ArgumentParser(prog="kube play", add_help=False,
                                     exit_on_error=False)
    add_run_flags(parser)
    try:
        args = parser.parse_args(argv)
        args.command_line = ["kube", "play", doc.where, *argv]
        return spec_from_args(args, detach=True)
    except argparse.ArgumentError as e:
        raise doc.malformed(where, str(e)) from None
    except UsageError as e:
        raise doc.malformed(where, e.message) from None


# -- making them --------------------------------------------------------------------

def play(path: Path, *, replace: bool = False,
         progress: Any = None) -> list[Pod]:
    """Plan, then make and start every pod of ``path``. Raises what planning raises,
    Conflict (a pod name in use, without ``replace``), and what ``run`` raises for a
    member (the trust policy, the floor); a failure removes every pod and volume this
    call made. Every outcome is audited as ``kube.play``."""
    from secpod import audit
    from secpod.pods import lifecycle, record

    say = progress or (lambda _m: None)
    details: dict[str, Any] = {"file": str(path)}
    try:
        plans, notes = plan(path)
        details["pods"] = [p.name for p in plans]
        for p in plans:
            try:
                record.lookup(p.name)
            except Error:
                continue
            if not replace:
                raise Conflict(f"{p.doc.where}: metadata.name: the pod {p.name} exists",
                               hint="secpod kube play --replace, or secpod kube down FILE")
        for note in notes:
            say(f"note: {note}")
    except Error as e:
        audit.record("kube.play", "refused", reason=e.message, details=details)
        raise
    if replace:
        for p in plans:
            _down_one(p.name)
    made: list[Pod] = []
    volumes: list[str] = []
    try:
        for p in plans:
            made.append(_make(p, volumes, say))
    except BaseException as e:
        for pod in made:
            try:
                lifecycle.remove(pod.id, force=True)
            except Error:
                pass
        _pod_left(plans, made)
        _remove_volumes(volumes)
        if isinstance(e, Error):
            audit.record("kube.play", "refused", reason=e.message, details=details)
        raise
    audit.record("kube.play", "ok", details={**details, "ids": [p.id for p in made]})
    return made


def _pod_left(plans: list[Plan], made: list[Pod]) -> None:
    """A pod whose making failed half-way (its create returned nothing) is removed."""
    from secpod.pods import lifecycle, record

    done = {p.name for p in made}
    for p in plans:
        if p.name in done:
            continue
        try:
            pod = record.lookup(p.name)
        except Error:
            continue
        if pod.create_command[:3] == ["secpod", "kube", "play"]:
            try:
                lifecycle.remove(pod.id, force=True)
            except Error:
                pass


def _make(p: Plan, volumes: list[str], say: Any) -> Pod:
    from secpod.pods import lifecycle
    from secpod.sandbox import create, operations

    pod = lifecycle.create(p.name, ports=p.ports, hostname=p.hostname,
                           labels={LABEL: p.name},
                           command=["secpod", "kube", "play", str(p.doc.where)])
    say(f"pod {p.name}: {pod.id[:12]}")
    try:
        for name, files in p.volumes:
            _fill(name, files, p.name, volumes)
        for spec, where in zip(p.members, p.member_paths, strict=True):
            try:
                ctr = create.create_detached(spec)
                operations.start(ctr)
            except Error as e:
                raise _at(p, where, e) from e
            say(f"  container {ctr.name}: {ctr.id[:12]} ({ctr.profile})")
    except BaseException:
        try:
            lifecycle.remove(pod.id, force=True)
        except Error:
            pass
        raise
    return pod


def _at(p: Plan, where: str, e: Error) -> Error:
    """``e`` of making a member, naming the document and the field: a hostPath's when
    the refusal is of its source, else the container's."""
    path = next((at for src, at in p.sources.items() if src and src in e.message), where)
    message = f"{p.doc.where} ({p.doc.kind} {p.doc.name}): {path}: {e.message}"
    try:
        out = type(e)(message, e.hint)
    except TypeError:       # an error class of its own signature: the message still
        out = Error(message, e.hint)
    out.exit_code = e.exit_code
    return out


def _fill(name: str, files: dict[str, tuple[bytes, int]] | None, pod: str,
          made: list[str]) -> None:
    from secpod._files import write_atomic
    from secpod.sandbox import volumes

    vol, new = volumes.create(name, [(LABEL, pod)], by="kube play")
    if new:
        made.append(name)
    for rel, (data, mode) in (files or {}).items():
        target = vol.mountpoint / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data, mode=mode)
        os.chmod(target, mode)


def _remove_volumes(names: list[str]) -> None:
    from secpod.sandbox import volumes

    for name in names:
        try:
            volumes.remove(name, force=True, by="kube play")
        except Error:
            pass


def _down_one(name: str) -> bool:
    """Remove the pod ``name`` and the volumes kube play made for it; whether it was."""
    from secpod.pods import lifecycle, record
    from secpod.sandbox import volumes

    try:
        pod = record.lookup(name)
    except Error:
        pod = None
    if pod is not None:
        lifecycle.remove(pod.id, force=True)
    _remove_volumes([v.name for v in volumes.all_volumes() if v.labels.get(LABEL) == name])
    return pod is not None


def down(path: Path) -> list[str]:
    """``kube down FILE``: remove the pods it names (and kube play's volumes for them)."""
    from secpod import audit

    plans, _ = plan(path)
    gone = [p.name for p in plans if _down_one(p.name)]
    audit.record("kube.down", "ok", details={"file": str(path), "pods": gone})
    return gone
