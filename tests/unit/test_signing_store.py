"""Signature storage beside images, and the runner's entry point ``evaluate_image``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from secpod.errors import MalformedInput, UsageError, VerificationError
from secpod.signing import add_signature, evaluate_image, keys, sign_sigstore, signatures_for, trust

MANIFEST = b'{"schemaVersion":2,"config":{}}'
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


def test_signatures_are_numbered_and_deduplicated(home: Path) -> None:
    assert signatures_for(DIGEST) == []
    first = add_signature(DIGEST, b"one")
    second = add_signature(DIGEST, b"two")
    assert first.name == "signature-1" and second.name == "signature-2"
    assert first.parent == home / "data" / "secpod" / "signatures" / f"sha256-{DIGEST[7:]}"
    assert add_signature(DIGEST, b"one") == first
    assert signatures_for(DIGEST) == [b"one", b"two"]
    assert not list(first.parent.glob(".*"))


def test_bad_digests_and_blobs(home: Path) -> None:
    with pytest.raises(UsageError):
        add_signature("sha256:../../etc", b"x")
    with pytest.raises(MalformedInput):
        add_signature(DIGEST, b"")


def test_a_dir_layout_with_links_fifos_or_folders_is_refused_not_crashed(tmp_path: Path) -> None:
    from secpod.signing import store

    layout = tmp_path / "layout"
    layout.mkdir()
    (tmp_path / "real.json").write_bytes(MANIFEST)
    (layout / "manifest.json").symlink_to(tmp_path / "real.json")
    with pytest.raises(MalformedInput, match="symbolic link"):
        store.read_dir(layout)
    (layout / "manifest.json").unlink()
    (layout / "manifest.json").mkdir()
    with pytest.raises(MalformedInput, match="not a regular file"):
        store.read_dir(layout)
    (layout / "manifest.json").rmdir()
    (layout / "manifest.json").write_bytes(MANIFEST)
    os.mkfifo(layout / "signature-1")  # opened without O_NONBLOCK, the read would hang
    with pytest.raises(MalformedInput, match="not a regular file"):
        store.read_dir(layout)


def _key_policy(home: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pub = home / "k.pub"
    pub.write_bytes(keys.public_key_pem(keys.public_key_of(key)))
    policy = home / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {"docker": {
        "docker.io/library/busybox": [{"type": "sigstoreSigned", "keyPath": str(pub)}]}}}))
    return policy


def test_evaluate_image_reads_the_store(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    policy = _key_policy(home, key)
    before = evaluate_image("busybox", DIGEST, MANIFEST, policy_path=policy)
    assert not before.accepted
    assert before.as_dict() == {
        "accepted": False, "reference": "docker.io/library/busybox:latest",
        "scope": "docker.io/library/busybox", "requirements": ["sigstoreSigned"],
        "policy_path": str(policy), "notes": [],
        "reasons": ["sigstoreSigned: rejected: a signature was required, but no signature "
                    "exists"], "evidence": []}
    add_signature(DIGEST, sign_sigstore(key, "docker.io/library/busybox:latest", DIGEST))
    after = evaluate_image("busybox:latest", DIGEST, MANIFEST, policy_path=policy)
    assert after.accepted, after.reasons
    [seen] = after.evidence
    assert seen["kind"] == "signature" and seen["verdict"] == "accepted"
    other = evaluate_image("alpine", DIGEST, MANIFEST, policy_path=policy)
    assert not other.accepted and other.scope == "" and other.requirements == ("reject",)


def test_evaluate_image_builtin_default_says_so(home: Path) -> None:
    d = evaluate_image("busybox", DIGEST, MANIFEST)
    assert d.accepted and d.policy_path is None
    assert d.requirements == ("insecureAcceptAnything",)
    assert "built-in default" in d.notes[0]


def test_evaluate_image_refuses_inconsistent_input(home: Path) -> None:
    with pytest.raises(VerificationError) as e:
        evaluate_image("busybox", DIGEST, MANIFEST + b" ")
    assert e.value.message == f"the manifest does not hash to {DIGEST}"


def test_admin_policy_wins_and_is_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = home / "admin.json"
    admin.write_text('{"default": [{"type": "reject"}]}')
    monkeypatch.setattr(trust, "admin_trust_policy", lambda: admin)
    user_policy = home / "config" / "containers" / "policy.json"
    user_policy.parent.mkdir(parents=True)
    user_policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    d = evaluate_image("busybox", DIGEST, MANIFEST)
    assert not d.accepted and d.policy_path == str(admin)
    assert d.notes == (f"the administrator's trust policy {admin} applies",
                       f"your policy {user_policy} is ignored")


def test_writes_that_fail_are_errors_with_a_hint(home: Path) -> None:
    from secpod.errors import Error, SigningError

    (home / "data" / "secpod").mkdir(parents=True)
    (home / "data" / "secpod" / "signatures").write_text("a file, not a folder")
    with pytest.raises(SigningError, match="cannot store the signature") as e:
        add_signature(DIGEST, b"one")
    assert e.value.hint
    (home / "config").write_text("a file, not a folder")
    with pytest.raises(Error, match="cannot write") as e2:
        trust.set_trust("default", "reject", [])
    assert e2.value.hint
