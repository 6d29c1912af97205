"""`trust export` mapping: every document valid against the projects' CRD schemas, and, for
sample images, the cluster asks exactly what the host's trust policy asks (or the export
is refused, naming the scope)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from secpod.errors import KeyFormatError, Refused
from secpod.images.reference import parse
from secpod.kube import admission
from secpod.signing import keys as keymod
from secpod.signing import policy as pol
from tests import kubecrd

DIGEST = "sha256:" + "ab" * 32


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


K1, K2, K3 = _pem(), _pem(), _pem()


def signed(*pems: str, **extra: Any) -> dict[str, Any]:
    datas = [base64.b64encode(p.encode()).decode() for p in pems]
    req: dict[str, Any] = {"type": "sigstoreSigned"}
    req.update({"keyData": datas[0]} if len(datas) == 1 else {"keyDatas": datas})
    req.update(extra)
    return req


ACCEPT = {"type": "insecureAcceptAnything"}
REJECT = {"type": "reject"}


def policy(default: dict[str, Any], **scopes: list[dict[str, Any]]) -> pol.Policy:
    doc = {"default": [default], "transports": {"docker": scopes}}
    return pol.parse_policy(json.dumps(doc).encode(), source="test")


def canon(pem: str) -> str:
    return keymod.public_key_pem(keymod.load_public_key(pem.encode(), source="t")).decode()


def host_asks(p: pol.Policy, image: str) -> tuple[str, frozenset[frozenset[str]]]:
    """What the host asks of ``image``: (accept|reject|keys, the key sets)."""
    _, reqs = p.requirements_for(parse(image))
    rule = admission.rule_of("t", reqs, [])
    return rule.kind, frozenset(frozenset(ks) for ks in rule.keysets)


def pc_asks(docs: list[dict[str, Any]], image: str,
            default: str) -> tuple[str, frozenset[frozenset[str]]]:
    """What policy-controller asks, in an opted-in namespace whose no-match-policy is
    what the export's notes say (deny for a reject default, allow for an accept one)."""
    found = kubecrd.pc_policies(docs, image)
    if not found:
        return default, frozenset()
    sets = []
    for d in found:
        auths = d["spec"]["authorities"]
        if any(a.get("static", {}).get("action") == "fail" for a in auths):
            return "reject", frozenset()
        if any("static" in a for a in auths):
            continue
        sets.append(frozenset(a["key"]["data"] for a in auths))
    return ("keys", frozenset(sets)) if sets else ("accept", frozenset())


def kyverno_asks(doc: dict[str, Any], image: str) -> tuple[str, frozenset[frozenset[str]]]:
    entries = kubecrd.kyverno_entries(doc, image)
    if not entries:
        return "accept", frozenset()
    sets = frozenset(frozenset(e["keys"]["publicKeys"] for e in att["entries"])
                     for vi in entries for att in vi["attestors"])
    return "keys", sets


IMAGES = [
    "busybox", "busybox:1.36", f"busybox@{DIGEST}", "library/busybox:1", "docker.io/busybox",
    "index.docker.io/library/busybox:1", "busybox/other:1", "docker.io/library/alpine",
    "registry.example.com/app:1", "registry.example.com/team:2", "registry.example.com/team/app",
    f"registry.example.com/team/app@{DIGEST}", "registry.example.com/teamx/app:1",
    "registry.example.com/team/public/x:1", "registry.example.com:5000/team/app:1",
    "registry.example.com.evil.net/team/app:1", "a.internal.example/x:1",
    "a.b.internal.example:5000/x/y:1", "internal.example/x:1", "evil.com/a.internal.example/x:1",
    "localhost:5000/app:1", f"localhost:5000/pinned@{DIGEST}", "localhost:5000/pinned:1",
    "index.docker.io/busybox:1", "busybox/x:1", "docker.io/library/busybox/x:1",
]


def export(p: pol.Policy, fmt: str) -> admission.Exported:
    out = admission.export(p, fmt)
    for doc in out.documents:
        kubecrd.check(doc)
    back = list(yaml.safe_load_all(out.yaml(fmt, "test")))
    assert back == list(out.documents)
    return out


def test_policy_controller_asks_what_the_host_asks_for_each_image() -> None:
    p = policy(REJECT, **{
        "docker.io/library/busybox": [signed(K2)],
        "registry.example.com/team": [signed(K1, K3)],
        "registry.example.com/team/public": [REJECT],
        "*.internal.example": [signed(K1), signed(K3)],
        f"localhost:5000/pinned@{DIGEST}": [ACCEPT],
    })
    out = export(p, "policy-controller")
    docs = list(out.documents)
    assert all(d["apiVersion"] == "policy.sigstore.dev/v1beta1" for d in docs)
    for image in IMAGES:
        kind, sets = host_asks(p, image)
        want = (kind, frozenset(frozenset(canon(k) for k in s) for s in sets))
        assert pc_asks(docs, image, "reject") == want, image
    globs = {g["glob"] for d in docs for g in d["spec"]["images"]}
    assert "index.docker.io/library/busybox:*" in globs
    assert "*.internal.example/**" in globs
    assert any("policy.sigstore.dev/include=true" in n for n in out.notes)
    assert any("no-match-policy: deny" in n for n in out.notes)
    assert any("signedIdentity" in n and "not checked" in n for n in out.notes)
    text = out.yaml("policy-controller", "/x/policy.json")
    assert text.startswith("# made by secpod trust export --format policy-controller")
    assert "# note: policy-controller checks only namespaces labelled" in text
    assert "data: |\n" in text  # the PEM as a block, as people paste it


def test_kyverno_asks_what_the_host_asks_for_each_image() -> None:
    p = policy(signed(K3), **{
        "docker.io/library/busybox": [signed(K2)],
        "registry.example.com": [signed(K1)],
        "registry.example.com/team": [signed(K1, K2), signed(K3)],
        "registry.example.com/team/public": [ACCEPT],
        f"localhost:5000/pinned@{DIGEST}": [ACCEPT],
    })
    out = export(p, "kyverno")
    (doc,) = out.documents
    assert doc["kind"] == "ClusterPolicy" and doc["apiVersion"] == "kyverno.io/v1"
    for image in IMAGES:
        kind, sets = host_asks(p, image)
        want = (kind, frozenset(frozenset(canon(k) for k in s) for s in sets))
        assert kyverno_asks(doc, image) == want, image
    assert any("admits images no rule names" in n for n in out.notes)


def test_policy_controller_default_accept_says_no_match_allow() -> None:
    p = policy(ACCEPT, **{"registry.example.com": [signed(K1)]})
    out = export(p, "policy-controller")
    for image in IMAGES:
        kind, sets = host_asks(p, image)
        want = (kind, frozenset(frozenset(canon(k) for k in s) for s in sets))
        assert pc_asks(list(out.documents), image, "accept") == want, image
    assert any("no-match-policy: allow" in n for n in out.notes)


def test_a_signed_default_becomes_a_policy_for_every_image() -> None:
    p = policy(signed(K1), **{"registry.example.com/secret": [REJECT]})
    out = export(p, "policy-controller")
    assert [g["glob"] for d in out.documents for g in d["spec"]["images"]][0] == "**"
    for image in IMAGES:
        kind, sets = host_asks(p, image)
        want = (kind, frozenset(frozenset(canon(k) for k in s) for s in sets))
        assert pc_asks(list(out.documents), image, "accept") == want, image


def test_a_key_file_is_read_and_a_bad_one_named(tmp_path: Path) -> None:
    key = tmp_path / "release.pub"
    key.write_text(K1)
    doc = {"default": [REJECT], "transports": {"docker": {
        "registry.example.com": [{"type": "sigstoreSigned", "keyPath": str(key)}]}}}
    p = pol.parse_policy(json.dumps(doc).encode(), source="t")
    (cip,) = export(p, "policy-controller").documents
    assert cip["spec"]["authorities"][0]["key"]["data"] == canon(K1)
    assert cip["metadata"]["annotations"]["secpod.io/trust-scope"] == "registry.example.com"
    key.write_text("not a key\n")
    with pytest.raises(KeyFormatError, match=str(key)):
        admission.export(p, "policy-controller")


@pytest.mark.parametrize(("fmt", "scopes", "words"), [
    ("policy-controller", {"registry.example.com/app:1.0": [signed(K1)]},
     ["registry.example.com/app:1.0", "tag scope"]),
    ("kyverno", {"registry.example.com/app:1.0": [signed(K1)]}, ["tag scope"]),
    ("policy-controller", {"registry.example.com": [{"type": "signedBy", "keyType": "GPGKeys",
                                                     "keyData": "AAAA"}]},
     ["registry.example.com", "GPG"]),
    ("policy-controller", {"registry.example.com": [signed(K1, rekorPublicKeyData=base64.b64encode(
        K2.encode()).decode())]}, ["Rekor"]),
    ("kyverno", {"registry.example.com": [signed(K1, signedIdentity={
        "type": "exactRepository", "dockerRepository": "other.example.com/app"})]},
     ["exactRepository"]),
    ("policy-controller", {"registry.example.com": [signed(K1)],
                           "registry.example.com/team": [ACCEPT]},
     ["registry.example.com/team (accept) lies inside scope registry.example.com"]),
    ("policy-controller", {"registry.example.com": [signed(K1)],
                           "registry.example.com/team": [signed(K2)]},
     ["lies inside"]),
    ("policy-controller", {"*.docker.io": [signed(K1)]}, ["*.docker.io"]),
    ("kyverno", {"*.example.com": [signed(K1)]}, ["*.example.com", "Kyverno"]),
    ("kyverno", {"docker.io/library": [signed(K1)]}, ["docker.io/library"]),
    ("kyverno", {"registry.example.com": [signed(K1)], "registry.example.com/x": [REJECT]},
     ["registry.example.com/x: reject cannot be exported to Kyverno"]),
])
def test_what_cannot_be_stated_exactly_is_refused_naming_the_scope(
        fmt: str, scopes: dict[str, list[dict[str, Any]]], words: list[str]) -> None:
    with pytest.raises(Refused) as e:
        admission.export(policy(ACCEPT, **scopes), fmt)
    for w in words:
        assert w in e.value.message
    assert e.value.hint


@pytest.mark.parametrize("default", [ACCEPT, REJECT])
def test_policy_controller_refuses_a_policy_of_a_default_alone(default: dict[str, Any]) -> None:
    with pytest.raises(Refused, match="no-match-policy") as e:
        admission.export(policy(default), "policy-controller")
    assert "policy.sigstore.dev/include=true" in str(e.value.hint)


def test_a_digest_scope_says_it_applies_however_the_pod_names_the_image() -> None:
    out = admission.export(policy(REJECT, **{f"localhost:5000/app@{DIGEST}": [signed(K1)]}),
                           "policy-controller")
    assert any("resolves a Pod's tags to digests" in n for n in out.notes)


def test_kyverno_refuses_a_reject_default_and_a_policy_with_nothing_signed() -> None:
    with pytest.raises(Refused, match="default: reject"):
        admission.export(policy(REJECT, **{"registry.example.com": [signed(K1)]}), "kyverno")
    with pytest.raises(Refused, match="nothing to export"):
        admission.export(policy(ACCEPT), "kyverno")


def test_docker_hub_namespaces_match_as_on_the_host() -> None:
    p = policy(REJECT, **{"docker.io/busybox": [signed(K1)], "docker.io/library": [signed(K2)]})
    docs = list(export(p, "policy-controller").documents)
    for image in IMAGES:
        kind, sets = host_asks(p, image)
        want = (kind, frozenset(frozenset(canon(k) for k in s) for s in sets))
        assert pc_asks(docs, image, "reject") == want, image
    p = policy(ACCEPT, **{"docker.io/busybox": [signed(K1)], "docker.io": [signed(K2)]})
    (doc,) = export(p, "kyverno").documents
    for image in IMAGES:
        kind, sets = host_asks(p, image)
        want = (kind, frozenset(frozenset(canon(k) for k in s) for s in sets))
        assert kyverno_asks(doc, image) == want, image


def test_scopes_the_host_never_matches_are_skipped_with_a_note() -> None:
    p = policy(REJECT, **{"busybox": [signed(K1)], "registry.example.com": [signed(K2)],
                          "docker.io/busybox:1": [ACCEPT]})
    out = export(p, "policy-controller")
    assert [d["metadata"]["annotations"]["secpod.io/trust-scope"] for d in out.documents] == [
        "registry.example.com"]
    assert any(n.startswith("scope busybox: skipped") for n in out.notes)


# Rows of policy-controller's own pkg/apis/glob/glob_test.go (at f925c0c1): the matching
# tests/kubecrd.py simulates, and with it the comparisons above, agree with the project.
@pytest.mark.parametrize(("image", "glob", "match"), [
    ("foo", "index.docker.io/library/foo:*", True), ("foo", "index.docker.io/*/*", True),
    ("foo", "foo", True), ("myuser/myapp", "index.docker.io/myuser/*", True),
    ("myuser/myapp", "myuser/myapp", True), ("ghcr.io/foo/bar", "ghcr.io/*/*", True),
    ("ghcr.io/foo", "ghcr.io/*/*", False), ("ghcr.io/foo", "*/**", True),
    ("ghcr.io/foo", "ghcr.io/foo*", True), ("prefix-ghcr.io/foo", "ghcr.io/foo", False),
    ("ghcr.io/foo-suffix", "ghcr.io/foo", False), ("ghcrxio/foo", "ghcr.io/**", False),
    (f"ghcr.io/foo@{DIGEST}", f"ghcr.io/foo@{DIGEST}", True),
])
def test_the_simulated_glob_matching_agrees_with_policy_controllers_tests(
        image: str, glob: str, match: bool) -> None:
    doc = {"spec": {"images": [{"glob": glob}]}}
    assert bool(kubecrd.pc_policies([doc], image)) is match


_POOL = ["docker.io", "docker.io/library", "docker.io/library/busybox", "docker.io/busybox",
         "registry.example.com", "registry.example.com/team", "registry.example.com/team/app",
         "registry.example.com/team/public", f"registry.example.com/team/app@{DIGEST}",
         "registry.example.com:5000", "*.example.com", "*.internal.example",
         "a.internal.example", "localhost:5000", f"localhost:5000/pinned@{DIGEST}", ""]
_RULES = [ACCEPT, REJECT, signed(K1), signed(K2), signed(K1, K2)]


@settings(max_examples=150, deadline=None)
@given(default=st.sampled_from(_RULES),
       scopes=st.dictionaries(st.sampled_from(_POOL), st.lists(st.sampled_from(_RULES),
                                                               min_size=1, max_size=2)),
       fmt=st.sampled_from(admission.FORMATS))
def test_an_export_either_asks_what_the_host_asks_or_is_refused(
        default: dict[str, Any], scopes: dict[str, list[dict[str, Any]]], fmt: str) -> None:
    """Property: for any policy over these scopes, every image the cluster checks is
    held to exactly the host's requirement (in policy-controller's case, with the
    no-match-policy the notes ask for), or the export is refused."""
    p = pol.parse_policy(json.dumps({"default": [default], "transports": {
        "docker": scopes}}).encode(), source="t")
    try:
        out = admission.export(p, fmt)
    except Refused:
        return
    docs = list(out.documents)
    for doc in docs:
        kubecrd.check(doc)
    no_match = "reject" if any("no-match-policy: deny" in n for n in out.notes) else "accept"
    for image in IMAGES:
        kind, sets = host_asks(p, image)
        want = (kind, frozenset(frozenset(canon(k) for k in s) for s in sets))
        got = pc_asks(docs, image, no_match) if fmt == "policy-controller" \
            else kyverno_asks(docs[0], image)
        assert got == want, (image, scopes)
