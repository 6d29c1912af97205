"""``secpod kube generate`` of real containers (crun, as the unprivileged user): every
document valid against the Kubernetes schemas (kubernetes-validate --strict), and the
confinement in each container's securityContext."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import User
from tests.integration.conftest import audit_records

pytestmark = [pytest.mark.crun, pytest.mark.userns]

K8S = "1.30"


def _check(docs: list[dict[str, Any]]) -> None:
    """Schema-valid, and the cross-field rules the schema misses."""
    for doc in docs:
        kubernetes_validate.validate(doc, K8S, strict=True)
    pod = docs[0]["spec"] if docs[0]["kind"] == "Pod" else docs[0]["spec"]["template"]["spec"]
    for c in pod["containers"]:
        sc = c["securityContext"]
        prof = sc.get("seccompProfile") or {}
        assert prof.get("type") in ("Localhost", "RuntimeDefault", "Unconfined")
        if prof.get("type") == "Localhost":
            assert prof.get("localhostProfile", "").endswith(".json")
        if sc.get("runAsNonRoot"):
            assert sc.get("runAsUser", 1) != 0
        caps = sc["capabilities"]
        assert caps["drop"] == ["ALL"]
        assert not any(x.startswith("CAP_") for x in caps.get("add", []))
        assert sc["allowPrivilegeEscalation"] is False


def test_a_default_container_becomes_a_valid_pod_with_its_confinement(
        user: User, busybox: str) -> None:
    data = user.home / "data-dir"
    user.sh(["mkdir", str(data)], check=True)
    user.run("create", "--name", "web", "-p", "127.0.0.1:18080:80", "-v", f"{data}:/data:ro",
             "-v", "webdata:/srv",
             "--tmpfs", "/cache:size=1m", "-e", "A=b", "-w", "/tmp", "--user", "1000:1000",
             "--label", "app=web", "--restart", "always", busybox, "sleep", "60", check=True)
    out = user.home / "web.yaml"
    r = user.run("kube", "generate", "web", "-o", str(out))
    assert r.returncode == 0, r.stderr
    docs = list(yaml.safe_load_all(out.read_text()))
    _check(docs)
    pod = docs[0]
    assert pod["kind"] == "Pod" and pod["metadata"]["labels"]["app"] == "web"
    (c,) = pod["spec"]["containers"]
    assert "@sha256:" in c["image"]
    assert (c.get("command", []) + c.get("args", []))[-2:] == ["sleep", "60"], c
    assert {"name": "A", "value": "b"} in c["env"] and c["workingDir"] == "/tmp"
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP", "hostPort": 18080,
                           "hostIP": "127.0.0.1"}]
    sc = c["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"]) == (1000, 1000, True)
    assert sc["seccompProfile"]["type"] == "Localhost"
    written = user.home / sc["seccompProfile"]["localhostProfile"]
    assert json.loads(written.read_text())["defaultAction"].startswith("SCMP_ACT_")
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    kinds = sorted(k for v in vols.values() for k in v if k != "name")
    assert kinds == ["emptyDir", "hostPath", "persistentVolumeClaim"], vols
    assert any(v.get("persistentVolumeClaim", {}).get("claimName") == "webdata"
               for v in vols.values())
    assert any(v.get("emptyDir", {}).get("sizeLimit") == "1Mi" for v in vols.values())
    assert pod["spec"]["restartPolicy"] == "Always"
    # a loopback-only network says so to the cluster
    assert [d["kind"] for d in docs[1:]] == ["NetworkPolicy"]
    assert any(x["action"] == "kube.generate" for x in audit_records(user))
    # the same as a Deployment, to stdout
    r = user.run("kube", "generate", "--type", "deployment", "web")
    assert r.returncode == 0, r.stderr
    docs = list(yaml.safe_load_all(r.stdout))
    _check(docs)
    assert docs[0]["kind"] == "Deployment" and docs[0]["spec"]["replicas"] == 1
    user.run("rm", "-f", "web", check=True)
    user.run("volume", "rm", "webdata", check=True)


def test_generate_refuses_what_a_pod_cannot_say(user: User, busybox: str) -> None:
    r = user.run("kube", "generate", "nosuch")
    assert r.returncode != 0 and "No such container" in r.stderr
    # two containers of one Pod share a network: one port cannot be two containers'
    for name, port in (("one", "18081"), ("two", "18082")):
        user.run("create", "--name", name, "-p", f"127.0.0.1:{port}:80", busybox, "true",
                 check=True)
    r = user.run("kube", "generate", "one", "two", "-o", str(user.home / "both.yaml"))
    assert r.returncode != 0 and "both listen on 80/tcp" in r.stderr, r.stderr
    assert not list(user.home.glob("*.yaml"))
    assert any(x["action"] == "kube.generate" and x["outcome"] == "refused"
               for x in audit_records(user))
    user.run("rm", "-f", "one", "two", check=True)
