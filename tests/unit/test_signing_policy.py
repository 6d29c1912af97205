"""containers-policy.json parsing (strict, with JSON paths) and scope precedence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secpod.errors import TrustPolicyError, VerificationError
from secpod.images.reference import parse
from secpod.signing import policy as pol
from secpod.signing import trust
from secpod.signing.identity import (
    ExactReference,
    ExactRepository,
    MatchExact,
    MatchRepoDigestOrExact,
    MatchRepository,
    RemapIdentity,
)

ACCEPT = [{"type": "insecureAcceptAnything"}]


def parse_text(text: str) -> pol.Policy:
    return pol.parse_policy(text.encode(), source="policy.json")


def error_of(text: str) -> str:
    with pytest.raises(TrustPolicyError) as e:
        parse_text(text)
    return e.value.message


def test_unknown_field_is_named_with_its_path() -> None:
    assert error_of('{"default": [{"type": "reject", "extra": 1}]}') == (
        "invalid trust policy policy.json: $.default[0].extra: unknown field")
    assert error_of('{"default": [{"type": "reject"}], "surprise": {}}') == (
        "invalid trust policy policy.json: $.surprise: unknown field")


def test_duplicate_field_rejects_the_file() -> None:
    assert error_of('{"default": [{"type": "reject"}], "default": []}') == (
        "invalid trust policy policy.json: $: duplicate field 'default' in the trust policy")
    assert "duplicate field 'keyPath'" in error_of(
        '{"default": [{"type": "sigstoreSigned", "keyPath": "/a", "keyPath": "/b"}]}')


def test_empty_requirement_lists_are_errors() -> None:
    assert error_of('{"default": []}') == (
        "invalid trust policy policy.json: $.default: the requirement list must not be empty")
    text = json.dumps({"default": ACCEPT, "transports": {"docker": {"example.com": []}}})
    assert error_of(text) == ('invalid trust policy policy.json: $.transports.docker["example.com"]'
                              ": the requirement list must not be empty")


def test_missing_default_and_bad_json() -> None:
    assert error_of("{}") == "invalid trust policy policy.json: $.default: missing required field"
    assert "is not valid JSON" in error_of('{"default": [')
    assert "unknown policy requirement type 'acceptEverything'" in error_of(
        '{"default": [{"type": "acceptEverything"}]}')


@pytest.mark.parametrize(("req", "message"), [
    ({"type": "sigstoreSigned"}, "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio"),
    ({"type": "sigstoreSigned", "keyPath": "/a", "keyData": "YQ=="}, "exactly one of keyPath"),
    ({"type": "sigstoreSigned", "keyPaths": []}, "$.default[0].keyPaths: must not be empty"),
    ({"type": "sigstoreSigned", "keyData": "not base64!"}, "keyData: is not valid base64"),
    ({"type": "sigstoreSigned", "fulcio": {"caPath": "/ca", "oidcIssuer": "i",
                                           "subjectEmail": "e"}},
     "a Rekor public key must be specified when fulcio is used"),
    ({"type": "sigstoreSigned", "keyPath": "/k", "rekorPublicKeyPath": "/r",
      "rekorPublicKeyData": "YQ=="}, "at most one of rekorPublicKeyPath"),
    ({"type": "sigstoreSigned", "pki": {"caRootsPath": "/r", "subjectEmail": "e"},
      "rekorPublicKeyPath": "/r"}, "Rekor public keys are not supported with pki"),
    ({"type": "sigstoreSigned", "pki": {"caRootsPath": "/r"}},
     'at least one of "subjectEmail" and "subjectHostname"'),
    ({"type": "sigstoreSigned", "fulcio": {"oidcIssuer": "i", "subjectEmail": "e"},
      "rekorPublicKeyPath": "/r"}, 'exactly one of "caPath" and "caData"'),
    ({"type": "signedBy", "keyPath": "/k"}, "$.default[0].keyType: missing required field"),
    ({"type": "signedBy", "keyType": "PGP", "keyPath": "/k"}, "unknown keyType 'PGP'"),
    ({"type": "signedBy", "keyType": "GPGKeys"}, 'exactly one of "keyPath", "keyPaths"'),
    ({"type": "reject", "signedIdentity": {"type": "matchExact"}},
     "$.default[0].signedIdentity: unknown field"),
    ({"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "matchAll"}},
     "unknown signedIdentity type 'matchAll'"),
    ({"type": "sigstoreSigned", "keyPath": "/k",
      "signedIdentity": {"type": "exactReference", "dockerReference": "busybox"}},
     "'busybox' contains neither a tag nor a digest"),
    ({"type": "sigstoreSigned", "keyPath": "/k",
      "signedIdentity": {"type": "remapIdentity", "prefix": "busybox:", "signedPrefix": "x.io"}},
     "'busybox:' is not a host[:port], namespace or repository"),
])
def test_invalid_requirements(req: dict[str, object], message: str) -> None:
    assert message in error_of(json.dumps({"default": [req]}))


def test_full_policy_round_trips() -> None:
    doc = {
        "default": [{"type": "reject"}],
        "transports": {"docker": {
            "example.com/a": [{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": ["/k1", "/k2"],
                               "signedIdentity": {"type": "matchRepository"}}],
            "example.com/b": [{"type": "sigstoreSigned", "keyDatas": ["YQ==", "Yg=="],
                               "rekorPublicKeyPaths": ["/r1"],
                               "signedIdentity": {"type": "remapIdentity",
                                                  "prefix": "example.com/b",
                                                  "signedPrefix": "vendor.io/b"}}],
            "example.com/c": [{"type": "sigstoreSigned",
                               "pki": {"caRootsData": "YQ==", "caIntermediatesPath": "/i",
                                       "subjectHostname": "h.example.com"},
                               "signedIdentity": {"type": "exactRepository",
                                                  "dockerRepository": "example.com/x"}}],
        }, "dir": {"": ACCEPT}},
    }
    policy = parse_text(json.dumps(doc))
    assert pol.parse_policy(policy.dumps(), source="again") == policy
    assert policy.as_json()["transports"]["docker"]["example.com/a"][0]["keyPaths"] == ["/k1",
                                                                                      "/k2"]


def test_default_signed_identity_is_match_repo_digest_or_exact() -> None:
    policy = parse_text('{"default": [{"type": "sigstoreSigned", "keyPath": "/k"}]}')
    req = policy.default[0]
    assert isinstance(req, pol.SigstoreSigned)
    assert isinstance(req.signed_identity, MatchRepoDigestOrExact)


def test_scope_precedence_most_specific_first() -> None:
    scopes = ["docker.io", "docker.io/library", "docker.io/library/busybox",
              "docker.io/library/busybox:1.36", "*.io", "registry.example.com:5000",
              "*.example.com", "*.com", "registry.example.com:5000/team"]
    doc = {"default": [{"type": "reject"}],
           "transports": {"docker": {s: ACCEPT for s in scopes}}}
    policy = parse_text(json.dumps(doc))

    def scope(ref: str) -> str:
        return policy.requirements_for(parse(ref))[0]

    assert scope("busybox:1.36") == "docker.io/library/busybox:1.36"
    assert scope("busybox:latest") == "docker.io/library/busybox"
    assert scope("alpine") == "docker.io/library"
    assert scope("someone/tool") == "docker.io"
    assert scope("quay.io/x/y") == "*.io"
    assert scope("registry.example.com:5000/team/app:1") == "registry.example.com:5000/team"
    assert scope("registry.example.com:5000/other") == "registry.example.com:5000"
    assert scope("a.b.example.com/x") == "*.example.com"
    assert scope("gitlab.com/x") == "*.com"
    assert scope("localhost/x") == ""


def test_digest_scope_and_transport_default() -> None:
    digest = "sha256:" + "a" * 64
    doc = {"default": [{"type": "reject"}],
           "transports": {"docker": {f"example.org/app@{digest}": ACCEPT, "": [
               {"type": "reject"}]}}}
    policy = parse_text(json.dumps(doc))
    assert policy.requirements_for(parse(f"example.org/app@{digest}"))[0] == (
        f"example.org/app@{digest}")
    assert policy.requirements_for(parse("example.org/app:1"))[0] == "docker:"


def test_identity_matchers() -> None:
    busybox = parse("busybox:1.36")
    by_digest = parse("busybox@sha256:" + "b" * 64)
    assert MatchExact().matches(busybox, "docker.io/library/busybox:1.36")
    assert not MatchExact().matches(busybox, "busybox")
    assert MatchRepoDigestOrExact().matches(busybox, "busybox:1.36")
    assert not MatchRepoDigestOrExact().matches(busybox, "busybox:1.35")
    assert MatchRepoDigestOrExact().matches(by_digest, "busybox:anything")
    assert MatchRepository().matches(busybox, "docker.io/library/busybox")
    assert not MatchRepository().matches(busybox, "docker.io/library/alpine")
    assert ExactReference("quay.io/a/b:1").matches(busybox, "quay.io/a/b:1")
    assert ExactRepository("quay.io/a/b").matches(busybox, "quay.io/a/b:7")
    remap = RemapIdentity("mirror.local:5000/vendor", "vendor.example.com")
    assert remap.matches(parse("mirror.local:5000/vendor/app:2"), "vendor.example.com/app:2")
    assert not remap.matches(parse("mirror.local:5000/vendor/app:2"),
                             "mirror.local:5000/vendor/app:3")
    assert not remap.matches(parse("mirror.local:5000/vendorx/app:2"), "vendor.example.comx/app:2")


def test_builtin_default_and_user_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr(trust, "SYSTEM_POLICY", tmp_path / "none" / "policy.json")
    monkeypatch.setattr(trust, "admin_trust_policy", lambda: None)
    eff = trust.effective_policy()
    assert eff.path is None and eff.policy == pol.BUILTIN_DEFAULT
    assert "built-in default" in eff.notes[0]
    (tmp_path / "containers").mkdir()
    (tmp_path / "containers" / "policy.json").write_text('{"default": [{"type": "reject"}]}')
    eff = trust.effective_policy()
    assert eff.path == tmp_path / "containers" / "policy.json"
    assert eff.policy.default[0].type == "reject"


def test_admin_policy_overrides_the_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = tmp_path / "admin.json"
    admin.write_text('{"default": [{"type": "reject"}]}')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "containers").mkdir()
    (tmp_path / "containers" / "policy.json").write_text(json.dumps({"default": ACCEPT}))
    monkeypatch.setattr(trust, "admin_trust_policy", lambda: admin)
    eff = trust.effective_policy()
    assert eff.admin and eff.path == admin
    assert any("is ignored" in n for n in eff.notes)
    eff = trust.effective_policy(tmp_path / "containers" / "policy.json")
    assert eff.path == admin and "the requested policy" in eff.notes[1]


def test_unreadable_policy_is_a_verification_error(tmp_path: Path) -> None:
    with pytest.raises(VerificationError) as e:
        trust.read_policy(tmp_path / "missing.json")
    assert "cannot read the trust policy" in e.value.message


def test_missing_key_file_cannot_run_the_check(tmp_path: Path) -> None:
    policy = parse_text(json.dumps({"default": [{"type": "sigstoreSigned",
                                                  "keyPath": str(tmp_path / "nope.pub")}]}))
    with pytest.raises(VerificationError) as e:
        trust.decide(parse("busybox"), b"{}", [], policy=policy, policy_path=None)
    assert e.value.message.startswith(f"cannot read public key {tmp_path / 'nope.pub'}")
