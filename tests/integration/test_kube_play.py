"""``secpod kube play`` and ``kube down`` (docs/kubernetes.md), as the unprivileged user
against real crun: a Pod with a ConfigMap volume serves the host and its containers
talk over localhost; `kube generate` then `kube play` keeps images, ports and
confinement; Pods written the way the Kubernetes documentation writes them run or are
refused with the field named; and every bad input is one error, an audit record and
nothing half-made. Traffic goes only to 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import User
from tests.integration.conftest import audit_records
from tests.integration.test_network import answers, free_port, get, listening, wait_for

pytestmark = [pytest.mark.crun, pytest.mark.userns]


def _write(user: User, name: str, docs: list[dict[str, object]] | str) -> Path:
    path = user.home / name
    text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs)
    user.sh(["sh", "-c", f"cat > {path}"], input=text, check=True)
    return path


def _caps(user: User, name: str) -> str:
    status = user.run("exec", name, "cat", "/proc/1/status", check=True).stdout
    return next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff"))


def _serves(port: int) -> bool:
    try:
        return get(port, "/")[0] == 200
    except OSError:
        return False


def _nothing(user: User) -> None:
    assert json.loads(user.run("pod", "ps", "--format", "json").stdout) == []
    assert user.run("ps", "-a", "-q").stdout.strip() == ""
    assert user.run("volume", "ls", "-q").stdout.strip() == ""


def _shop(port: int, image: str) -> list[dict[str, object]]:
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "site"},
         "data": {"index.html": "hello from a configmap\n"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shop", "labels": {"app": "s"}},
         "spec": {"restartPolicy": "Never", "containers": [
             {"name": "web", "image": image,
              "command": ["httpd", "-f", "-p", "80", "-h", "/www"],
              "ports": [{"containerPort": 80, "hostPort": port, "hostIP": "127.0.0.1"}],
              "volumeMounts": [{"name": "site", "mountPath": "/www", "readOnly": True},
                               {"name": "scratch", "mountPath": "/scratch"}]},
             {"name": "side", "image": image, "command": ["sleep", "600"],
              "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}}}],
             "volumes": [{"name": "site", "configMap": {"name": "site"}},
                         {"name": "scratch", "emptyDir": {}}]}},
    ]


def test_a_pod_with_a_configmap_runs_and_kube_down_removes_everything(
        user: User, busybox: str) -> None:
    port = free_port()
    path = _write(user, "shop.yaml", _shop(port, busybox))
    r = user.run("kube", "play", str(path))
    assert r.returncode == 0, r.stderr
    pod_id = r.stdout.strip()
    assert len(pod_id) == 64 and "container shop-web" in r.stderr
    wait_for(lambda: _serves(port))
    conn = get(port, "/")
    assert conn == (200, b"hello from a configmap\n")
    r = user.run("exec", "shop-side", "wget", "-qO-", "http://127.0.0.1:80/")
    assert r.stdout == "hello from a configmap\n", r.stderr
    assert user.run("exec", "shop-side", "id", "-u").stdout.strip() == "1000"
    assert _caps(user, "shop-side") == "0000000000000000"     # drop: [ALL], honoured
    # the ConfigMap's file is read-only in the container
    r = user.run("exec", "shop-web", "sh", "-c", "echo x > /www/index.html")
    assert r.returncode != 0
    info = json.loads(user.run("pod", "inspect", "shop", check=True).stdout)[0]
    assert [c["Name"] for c in info["Containers"]] == ["shop-web", "shop-side"]
    assert info["Labels"] == {"secpod.io/kube-play": "shop"}
    # a second play of the same file: the pod exists
    r = user.run("kube", "play", str(path))
    assert r.returncode == 1 and "the pod shop exists" in r.stderr
    # --replace makes it anew
    r = user.run("kube", "play", "--replace", str(path))
    assert r.returncode == 0 and r.stdout.strip() != pod_id, r.stderr
    wait_for(lambda: _serves(port))
    r = user.run("kube", "down", str(path))
    assert r.returncode == 0 and r.stdout.split() == ["shop"]
    assert not listening(port)
    _nothing(user)
    actions = [(a["action"], a["outcome"]) for a in audit_records(user)]
    assert ("kube.play", "ok") in actions and ("kube.play", "refused") in actions
    assert ("kube.down", "ok") in actions


def test_generate_then_play_keeps_images_ports_and_confinement(
        user: User, busybox: str) -> None:
    port = free_port()
    user.run("run", "-d", "--name", "api", "-p", f"127.0.0.1:{port}:80", "-v", "apidata:/data",
             busybox, "sh", "-c", "httpd -f -p 80 -h /etc", check=True)
    wait_for(lambda: answers(port))
    before = json.loads(user.run("inspect", "api", check=True).stdout)[0]
    caps = _caps(user, "api")
    out = user.home / "gen" / "api.yaml"
    user.sh(["mkdir", str(out.parent)], check=True)
    user.run("kube", "generate", "api", "-o", str(out), check=True)
    user.run("rm", "-f", "api", check=True)
    r = user.run("kube", "play", str(out))
    assert r.returncode == 0, r.stderr
    assert "NetworkPolicy" in r.stderr             # read, and said to run nothing
    wait_for(lambda: answers(port))                # the same host port
    after = json.loads(user.run("inspect", "api-pod-api", check=True).stdout)[0]
    assert after["Image"] == before["Image"]          # the same image, by digest
    assert after["Secpod"]["profile"].split("+")[0] == "default"
    assert _caps(user, "api-pod-api") == caps
    def argv(d: dict[str, object]) -> list[str]:
        cfg = d["Config"]
        return [*(cfg["Entrypoint"] or []), *(cfg["Cmd"] or [])]  # type: ignore[index]

    assert argv(after) == argv(before)        # command: in the Pod is the whole argv
    assert [m["Name"] for m in after["Mounts"] if m.get("Name")] == ["apidata"]
    # and generating the played pod again gives the same containers and confinement
    again = user.home / "gen" / "again.yaml"
    user.run("kube", "generate", "api-pod", "-o", str(again), check=True)
    first, second = (list(yaml.safe_load_all(p.read_text()))[0] for p in (out, again))
    strip = ("env",)
    c1, c2 = ({k: v for k, v in d["spec"]["containers"][0].items() if k not in strip}
              for d in (first, second))
    assert c1 == c2
    user.run("kube", "down", str(out), check=True)


# The Kubernetes documentation's examples (pods/simple-pod.yaml, pods/security/
# security-context.yaml, controllers/nginx-deployment.yaml), with busybox for their images:
# this host has no network to pull nginx from.
SIMPLE_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: nginx
spec:
  containers:
  - name: nginx
    image: {image}
    command: ["httpd", "-f", "-p", "80"]
    ports:
    - containerPort: 80
"""
SECURITY_CONTEXT = """\
apiVersion: v1
kind: Pod
metadata:
  name: security-context-demo
spec:
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
  volumes:
  - name: sec-ctx-vol
    emptyDir: {{}}
  containers:
  - name: sec-ctx-demo
    image: {image}
    command: [ "sh", "-c", "sleep 1h" ]
    volumeMounts:
    - name: sec-ctx-vol
      mountPath: /data/demo
    securityContext:
      allowPrivilegeEscalation: false
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: {image}
        command: ["httpd", "-f", "-p", "80"]
        ports:
        - containerPort: 80
"""


def test_pods_written_by_others_run_or_are_refused_by_field(user: User, busybox: str) -> None:
    r = user.run("kube", "play", str(_write(user, "simple.yaml",
                                            SIMPLE_POD.format(image=busybox))))
    assert r.returncode == 0, r.stderr
    assert "no hostPort, not published" in r.stderr
    assert user.run("exec", "nginx-nginx", "wget", "-qO-", "http://127.0.0.1/").returncode \
        in (0, 1)        # httpd answers (404 for /: no index), so the port is open
    r = user.run("kube", "play", str(_write(user, "sec.yaml",
                                            SECURITY_CONTEXT.format(image=busybox))))
    assert r.returncode == 1
    assert "spec.securityContext.fsGroup: secpod does not support this field" in r.stderr
    r = user.run("kube", "play", str(_write(user, "dep.yaml", DEPLOYMENT.format(image=busybox))))
    assert r.returncode == 0, r.stderr
    assert "runs its pod template once (spec.replicas is 3)" in r.stderr
    names = user.run("ps", "--format", "{{.Names}}").stdout.split()
    assert "nginx-deployment-nginx" in names and "nginx-nginx" in names
    for f in ("simple.yaml", "dep.yaml"):
        user.run("kube", "down", str(user.home / f), check=True)
    _nothing(user)


def _pod_doc(**spec: object) -> dict[str, object]:
    container = {"name": "c", "image": "busybox:latest", "command": ["true"]}
    container.update(spec.pop("container", {}))  # type: ignore[arg-type]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
            "spec": {"containers": [container], **spec}}


@pytest.mark.parametrize(("docs", "code", "words"), [
    ("{{{ not yaml", 1, "not YAML"),
    ("just: a map\n", 1, "not a Kubernetes object"),
    ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n", 1,
     "kind: secpod does not run batch/v1 Job"),
    ([_pod_doc(container={"securityContext": {"privileged": True}})], 1,
     "spec.containers[0].securityContext.privileged: true: secpod never runs a privileged"),
    ([_pod_doc(hostNetwork=True)], 1, "spec.hostNetwork: true"),
    ([_pod_doc(container={"livenessProbe": {"exec": {"command": ["true"]}}})], 1,
     "spec.containers[0].livenessProbe: secpod does not support this field"),
    ([_pod_doc(container={"securityContext": {"seccompProfile": {"type": "Localhost"}}})], 1,
     "localhostProfile: missing (Localhost needs it)"),
    ([_pod_doc(volumes=[{"name": "h", "hostPath": {"path": "/", "type": "DirectoryOrCreate"}}])],
     1, "spec.volumes[0].hostPath.type: DirectoryOrCreate"),
    ([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
       "spec": {"containers": [{"name": "c", "image": "busybox:latest"},
                               {"name": "c", "image": "busybox:latest"}]}}], 1,
     "spec.containers[1].name: a second container named c"),
    ([_pod_doc(container={"image": "nosuch/image:1"})], 125, "nosuch/image"),
])
def test_bad_input_is_one_error_with_the_field_and_nothing_half_made(
        user: User, busybox: str, docs: object, code: int, words: str) -> None:
    del busybox
    r = user.run("kube", "play", str(_write(user, "bad.yaml", docs)))  # type: ignore[arg-type]
    assert r.returncode != 0 and words in r.stderr, r.stderr
    del code
    _nothing(user)
    refused = [a for a in audit_records(user) if a["action"] == "kube.play"]
    assert refused and refused[-1]["outcome"] == "refused"


def test_an_image_the_trust_policy_rejects_leaves_no_pod(user: User, busybox: str) -> None:
    port = free_port()
    user.run("trust", "set", "--type", "reject", "default", check=True)
    r = user.run("kube", "play", str(_write(user, "shop.yaml", _shop(port, busybox))))
    assert r.returncode != 0 and "the trust policy rejects" in r.stderr, r.stderr
    _nothing(user)
    assert not listening(port)
    actions = [(a["action"], a["outcome"]) for a in audit_records(user)]
    assert ("container.run.refused", "refused") in actions
    assert ("kube.play", "refused") in actions


def test_a_host_path_outside_the_profile_s_sources_is_refused_by_its_field(
        user: User, signed_busybox: str) -> None:
    strict = {"readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    doc = _pod_doc(container={"image": signed_busybox, "securityContext": strict,
                              "volumeMounts": [{"name": "h", "mountPath": "/host"}]},
                   volumes=[{"name": "h", "hostPath": {"path": "/etc"}}])
    r = user.run("kube", "play", str(_write(user, "h.yaml", [doc])))
    assert r.returncode != 0
    assert "bad.yaml" not in r.stderr and "spec.volumes[0].hostPath.path" in r.stderr, r.stderr
    _nothing(user)
    # the same Pod with a source the strict profile allows runs, read-only root and all
    ok = str(user.home)
    doc["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": ok}}]  # type: ignore[index]
    doc["spec"]["containers"][0]["command"] = ["sleep", "60"]  # type: ignore[index]
    r = user.run("kube", "play", str(_write(user, "h.yaml", [doc])))
    assert r.returncode == 0, r.stderr
    name, profile = user.run("ps", "--format", "{{.Names}} {{.Profile}}").stdout.split()[:2]
    assert (name, profile.split("+")[0]) == ("bad-c", "strict")   # +1: the bind mount
    user.run("kube", "down", str(user.home / "h.yaml"), check=True)
