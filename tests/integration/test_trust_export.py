"""``secpod trust export`` as the unprivileged user: a real key from ``key generate``, a
policy from ``trust set``, and what comes out checked against the CRD schemas of
sigstore policy-controller and Kyverno (tests/assets/crds) plus the rules they leave to
their admission code (tests/kubecrd.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests import kubecrd
from tests.conftest import User
from tests.integration.test_signing_cli import audit_actions

PASSWORD = "correct horse"  # noqa: S105


@pytest.fixture
def keyed(user: User) -> User:
    """The user with a cosign key pair and a policy: busybox signed by it, else reject."""
    user.env["SECPOD_PASSWORD"] = PASSWORD
    user.run("key", "generate", "--output-key-prefix", "release", check=True)
    user.run("trust", "set", "--type", "sigstoreSigned", "--pubkeysfile", "release.pub",
             "docker.io/library/busybox", check=True)
    user.run("trust", "set", "--type", "reject", "default", check=True)
    return user


def _same_key(pem: str, path: Path) -> bool:
    return load_pem_public_key(pem.encode()) == load_pem_public_key(path.read_bytes())


def _exports(user: User) -> list[dict[str, object]]:
    return [r for r in audit_actions(user) if r["action"] == "trust.export"]


def test_policy_controller_export_of_the_users_policy(keyed: User) -> None:
    user = keyed
    r = user.run("trust", "export", "--format", "policy-controller")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# made by secpod trust export --format policy-controller")
    policy_file = user.home / "config" / "containers" / "policy.json"
    assert f"# from {policy_file}" in r.stdout
    docs = list(yaml.safe_load_all(r.stdout))
    for doc in docs:
        kubecrd.check(doc)
    (cip,) = docs
    assert cip["kind"] == "ClusterImagePolicy"
    assert [g["glob"] for g in cip["spec"]["images"]] == [
        "index.docker.io/library/busybox/**", "index.docker.io/library/busybox:*",
        "index.docker.io/library/busybox@*"]
    (auth,) = cip["spec"]["authorities"]
    assert _same_key(auth["key"]["data"], user.home / "release.pub")
    # Only busybox needs the key; an image no policy names falls to no-match-policy.
    assert kubecrd.pc_policies(docs, "busybox:1.36") == docs
    assert kubecrd.pc_policies(docs, "alpine") == []
    assert "policy.sigstore.dev/include=true" in r.stderr
    assert "no-match-policy: deny" in r.stderr
    (rec,) = _exports(user)
    assert rec["outcome"] == "ok"
    assert rec["details"]["policy_path"] == str(policy_file)  # type: ignore[index]


def test_kyverno_export_to_a_file(keyed: User) -> None:
    user = keyed
    out = user.home / "kyverno.yaml"
    # The user's default is reject, which Kyverno's verifyImages cannot state.
    r = user.run("trust", "export", "--format", "kyverno", "-o", str(out))
    assert r.returncode == 1 and not out.exists()
    assert "default: reject cannot be exported to Kyverno" in r.stderr
    assert "hint:" in r.stderr and r.stdout == ""
    user.run("trust", "set", "--type", "accept", "default", check=True)
    r = user.run("trust", "export", "--format", "kyverno", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and f"wrote {out}" in r.stderr
    (doc,) = yaml.safe_load_all(out.read_text())
    kubecrd.check(doc)
    (entry,) = kubecrd.kyverno_entries(doc, "busybox@sha256:" + "0" * 64)
    assert kubecrd.kyverno_entries(doc, "docker.io/library/busybox:1") == [entry]
    assert kubecrd.kyverno_entries(doc, "registry.example.com/busybox:1") == []
    (att,) = entry["attestors"]
    assert _same_key(att["entries"][0]["keys"]["publicKeys"], user.home / "release.pub")
    assert [r["outcome"] for r in _exports(user)] == ["refused", "ok"]


def test_what_cannot_be_exported_is_refused_naming_the_scope(keyed: User) -> None:
    user = keyed
    user.run("trust", "set", "--type", "sigstoreSigned", "--pubkeysfile", "release.pub",
             "registry.example.com/app:1.0", check=True)
    r = user.run("trust", "export", "--format", "policy-controller")
    assert r.returncode == 1 and r.stdout == ""
    assert "scope registry.example.com/app:1.0: a tag scope cannot be exported" in r.stderr
    gpg = user.file("gpg-policy.json", json.dumps({"default": [{"type": "reject"}], "transports": {
        "docker": {"registry.example.com": [{"type": "signedBy", "keyType": "GPGKeys",
                                             "keyPath": "/nonexistent.gpg"}]}}}))
    r = user.run("trust", "export", "--format", "policy-controller", "--policy", str(gpg))
    assert r.returncode == 1
    assert "scope registry.example.com: signedBy (GPG simple signing)" in r.stderr
    r = user.run("trust", "export", "--format", "gatekeeper")
    assert r.returncode == 2
    assert [(x["outcome"], "tag scope" in str(x["reason"])) for x in _exports(user)] == [
        ("refused", True), ("refused", False)]
