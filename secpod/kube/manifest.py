"""Reading Kubernetes YAML for ``kube play``: the documents, and the fields secpod
honours. Every field of a Pod, a Deployment, a ConfigMap or a Secret that is not in the
tables below is refused by its path (``spec.containers[1].livenessProbe``), never
dropped: what secpod runs is what the document says, or nothing."""

from __future__ import annotations

from pathlib import Path

from secpod.errors import MalformedInput, Refused

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

MAX_BYTES = 4 << 20
ANY = "any"          # a leaf of any value (checked where it is used)

# Fields secpod honours, as a tree: a dict is an object's keys, a one-element list a
# list of such objects, ANY a value. Names match the Kubernetes API (core/v1, apps/v1).
_METADATA = {"name": ANY, "labels": ANY, "annotations": ANY, "namespace": ANY}
_SECCOMP = {"type": ANY, "localhostProfile": ANY}
_CONTAINER_SC = {
    "privileged": ANY, "allowPrivilegeEscalation": ANY, "readOnlyRootFilesystem": ANY,
    "runAsUser": ANY, "runAsGroup": ANY, "runAsNonRoot": ANY,
    "capabilities": {"add": ANY, "drop": ANY}, "seccompProfile": _SECCOMP,
    "appArmorProfile": {"type": ANY, "localhostProfile": ANY},
    "seLinuxOptions": {"type": ANY},
}
_POD_SC = {"runAsUser": ANY, "runAsGroup": ANY, "runAsNonRoot": ANY,
           "seccompProfile": _SECCOMP, "appArmorProfile": {"type": ANY, "localhostProfile": ANY},
           "seLinuxOptions": {"type": ANY}}
_ENV_FROM = {"configMapKeyRef": {"name": ANY, "key": ANY, "optional": ANY},
             "secretKeyRef": {"name": ANY, "key": ANY, "optional": ANY}}
_CONTAINER = {
    "name": ANY, "image": ANY, "command": ANY, "args": ANY, "workingDir": ANY,
    "env": [{"name": ANY, "value": ANY, "valueFrom": _ENV_FROM}],
    "ports": [{"containerPort": ANY, "hostPort": ANY, "hostIP": ANY, "protocol": ANY,
               "name": ANY}],
    "volumeMounts": [{"name": ANY, "mountPath": ANY, "readOnly": ANY}],
    "securityContext": _CONTAINER_SC,
    "resources": {"limits": {"memory": ANY, "cpu": ANY}, "requests": {"memory": ANY,
                                                                       "cpu": ANY}},
    "tty": ANY, "stdin": ANY, "imagePullPolicy": ANY,
    "terminationMessagePath": ANY, "terminationMessagePolicy": ANY,
}
_ITEMS = [{"key": ANY, "path": ANY, "mode": ANY}]
_VOLUME = {
    "name": ANY,
    "emptyDir": {"medium": ANY, "sizeLimit": ANY},
    "hostPath": {"path": ANY, "type": ANY},
    "persistentVolumeClaim": {"claimName": ANY, "readOnly": ANY},
    "configMap": {"name": ANY, "items": _ITEMS, "defaultMode": ANY, "optional": ANY},
    "secret": {"secretName": ANY, "items": _ITEMS, "defaultMode": ANY, "optional": ANY},
}
POD_SPEC = {
    "containers": [_CONTAINER], "volumes": [_VOLUME], "restartPolicy": ANY,
    "hostname": ANY, "securityContext": _POD_SC, "terminationGracePeriodSeconds": ANY,
    "hostNetwork": ANY, "hostPID": ANY, "hostIPC": ANY, "hostUsers": ANY,
    "shareProcessNamespace": ANY, "automountServiceAccountToken": ANY,
    "enableServiceLinks": ANY, "dnsPolicy": ANY,
}
_POD = {"apiVersion": ANY, "kind": ANY, "metadata": _METADATA, "spec": POD_SPEC}
_DEPLOYMENT = {"apiVersion": ANY, "kind": ANY, "metadata": _METADATA,
               "spec": {"replicas": ANY, "selector": ANY,
                        "template": {"metadata": _METADATA, "spec": POD_SPEC},
                        "strategy": ANY, "revisionHistoryLimit": ANY}}
_CONFIG_MAP = {"apiVersion": ANY, "kind": ANY, "metadata": _METADATA, "data": ANY,
               "binaryData": ANY, "immutable": ANY}
_SECRET = {"apiVersion": ANY, "kind": ANY, "metadata": _METADATA, "data": ANY,
           "stringData": ANY, "type": ANY, "immutable": ANY}
KINDS = {("v1", "Pod"): _POD, ("apps/v1", "Deployment"): _DEPLOYMENT,
         ("v1", "ConfigMap"): _CONFIG_MAP, ("v1", "Secret"): _SECRET}
# Documents secpod reads and has nothing to run for (kube generate writes a NetworkPolicy
# beside its Pod): named on stderr, never taken for something that runs.
NOT_RUN = {("networking.k8s.io/v1", "NetworkPolicy"), ("v1", "Service")}


class Document:
    """One YAML document of the file: its place (``FILE#N``), kind and content."""

    def __init__(self, where: str, body: dict[str, Any]) -> None:
        self.where = where
        self.body = body
        self.kind = str(body.get("kind"))
        self.api = str(body.get("apiVersion"))
        meta = body.get("metadata")
        self.name = str(meta.get("name")) if isinstance(meta, dict) and meta.get("name") \
            else ""

    def refuse(self, path: str, why: str, hint: str | None = None) -> Refused:
        return Refused(f"{self.where} ({self.kind} {self.name or '?'}): {path}: {why}",
                       hint=hint)

    def malformed(self, path: str, why: str) -> MalformedInput:
        return MalformedInput(f"{self.where} ({self.kind} {self.name or '?'}): {path}: {why}",
                              hint="kubectl explain names each field's type")


def load(path: Path) -> list[Document]:
    """The documents of ``path``, each of a kind secpod reads and with no field it does
    not honour. Raises MalformedInput (not YAML, not Kubernetes), Refused (a kind or a
    field secpod does not run), NotFound."""
    import yaml  # type: ignore[import-untyped]  # no stubs in Debian's python3-yaml

    from secpod._files import TooLarge, read_limited
    from secpod.errors import NotFound

    try:
        data = read_limited(path, MAX_BYTES)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except TooLarge:
        raise MalformedInput(f"{path}: larger than {MAX_BYTES >> 20} MiB") from None
    except OSError as e:
        raise MalformedInput(f"{path}: cannot be read: {e.strerror}") from None
    try:
        raw = list(yaml.safe_load_all(data))
    except yaml.YAMLError as e:
        raise MalformedInput(f"{path}: not YAML: {str(e).splitlines()[0]}",
                             hint="kube play reads Kubernetes YAML (Pod, Deployment, "
                                  "ConfigMap, Secret)") from None
    docs = []
    for i, body in enumerate(raw):
        if body is None:
            continue
        where = f"{path}#{i + 1}"
        if not isinstance(body, dict) or "kind" not in body or "apiVersion" not in body:
            raise MalformedInput(f"{where}: not a Kubernetes object (no apiVersion and kind)",
                                 hint="each document needs apiVersion, kind and metadata")
        doc = Document(where, body)
        key = (doc.api, doc.kind)
        if key in NOT_RUN:
            docs.append(doc)
            continue
        if key not in KINDS:
            raise doc.refuse("kind", f"secpod does not run {doc.api} {doc.kind}",
                             hint="kube play runs v1 Pod, apps/v1 Deployment, and v1 "
                                  "ConfigMap and Secret for their volumes")
        if not doc.name:
            raise doc.malformed("metadata.name", "missing")
        check(doc, body, KINDS[key], "")
        docs.append(doc)
    if not docs:
        raise MalformedInput(f"{path}: no document", hint="a Pod or a Deployment")
    return docs


def check(doc: Document, value: Any, allowed: Any, path: str) -> None:
    """Refuse every field of ``value`` outside ``allowed`` (a tree, see above)."""
    if allowed is ANY:
        return
    if isinstance(allowed, list):
        if not isinstance(value, list):
            raise doc.malformed(path, "not a list")
        for i, item in enumerate(value):
            check(doc, item, allowed[0], f"{path}[{i}]")
        return
    if not isinstance(value, dict):
        raise doc.malformed(path or "(document)", "not an object")
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in allowed:
            raise doc.refuse(where, "secpod does not support this field",
                             hint="remove it, or run the workload where it is supported; "
                                  "kube play never ignores a field")
        check(doc, item, allowed[key], where)


def get(value: Any, *keys: str | int) -> Any:
    """``value[k1][k2]...``, None where a level is missing."""
    for k in keys:
        if isinstance(k, int):
            value = value[k] if isinstance(value, list) and len(value) > k else None
        else:
            value = value.get(k) if isinstance(value, dict) else None
        if value is None:
            return None
    return value
