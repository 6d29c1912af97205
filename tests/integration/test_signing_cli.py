"""The signing commands as a user runs them, and interop with Debian's skopeo and gpg.

Every command runs the real ``secpod`` as the unprivileged test user. GPG
uses a throwaway GNUPGHOME inside the user's test home; skopeo (containers/
image) signs and verifies on the other side. Debian builds skopeo with
sigstore disabled ("Debian-local change: sigstore disabled"), so the cosign
side of interop is proven against the conformance corpus's bytes instead
(tests/unit/test_signing_sigstore.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import User

PASSWORD = "correct horse"  # noqa: S105
REF = "registry.example.com/team/busybox:1.0"


def audit_actions(user: User) -> list[dict[str, object]]:
    """Every audit record in the user's log (JSON lines anywhere under audit/)."""
    out = []
    for path in (user.home / "data" / "secpod" / "audit").rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "action" in rec:
                out.append(rec)
    return out


def corpus(shared: Path) -> Path:
    return shared / "conformance" / "containers-image-signatures"


@pytest.fixture
def keyed(user: User) -> User:
    user.env["SECPOD_PASSWORD"] = PASSWORD
    user.run("key", "generate", "--output-key-prefix", "release", check=True)
    return user


def test_generate_sign_verify_round_trip(keyed: User, busybox: str) -> None:
    user = keyed
    assert (user.home / "release.key").read_text().startswith(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    assert (user.home / "release.key").stat().st_mode & 0o777 == 0o600

    signed = user.run("sign", busybox, "--key", "release.key", "--json", check=True)
    result = json.loads(signed.stdout)
    assert result["identity"] == "docker.io/library/busybox:latest"
    sig = Path(result["signature"])
    assert sig.name == "signature-1" and sig.parent.name == "sha256-" + result["digest"][7:]
    assert sig.read_bytes().startswith(b"\x00sigstore-json\n")

    ok = user.run("verify", busybox, "--key", "release.pub", "--json")
    assert ok.returncode == 0, ok.stderr
    decision = json.loads(ok.stdout)
    assert decision["accepted"] is True
    assert decision["requirements"] == ["sigstoreSigned"]
    assert decision["reference"] == "docker.io/library/busybox:latest"

    user.env["SECPOD_PASSWORD"] = "other"  # noqa: S105
    user.run("key", "generate", "--output-key-prefix", "other", check=True)
    bad = user.run("verify", busybox, "--key", "other.pub")
    assert bad.returncode == 1
    assert bad.stdout.startswith("rejected: docker.io/library/busybox:latest")
    assert "cryptographic signature verification failed" in bad.stderr

    actions = [(r["action"], r["outcome"]) for r in audit_actions(user)]
    assert ("image.sign", "ok") in actions
    assert ("image.verify", "ok") in actions and ("image.verify", "refused") in actions
    verify_rec = next(r for r in audit_actions(user) if r["action"] == "image.verify")
    assert verify_rec["trust"]["accepted"] is True  # type: ignore[index]


def test_trust_set_then_verify_by_policy(keyed: User, busybox: str) -> None:
    user = keyed
    unsigned = user.run("verify", busybox)
    assert unsigned.returncode == 0  # Debian's /etc/containers/policy.json accepts anything
    user.run("trust", "set", "--type", "sigstoreSigned", "--pubkeysfile", "release.pub",
             "docker.io/library/busybox", check=True)
    user.run("trust", "set", "--type", "reject", "default", check=True)
    policy_file = user.home / "config" / "containers" / "policy.json"
    policy = json.loads(policy_file.read_text())
    assert policy["default"] == [{"type": "reject"}]
    assert policy["transports"]["docker"]["docker.io/library/busybox"][0]["keyPath"] == str(
        user.home / "release.pub")

    refused = user.run("verify", busybox)
    assert refused.returncode == 1
    assert "a signature was required, but no signature exists" in refused.stderr
    user.run("sign", busybox, "--key", "release.key", check=True)
    accepted = user.run("verify", busybox, "--json")
    assert accepted.returncode == 0, accepted.stderr
    decision = json.loads(accepted.stdout)
    assert decision["scope"] == "docker.io/library/busybox"
    assert decision["policy_path"] == str(policy_file)

    shown = json.loads(user.run("trust", "show", "--json", check=True).stdout)
    assert shown["policy_path"] == str(policy_file)
    table = user.run("trust", "show", check=True).stdout
    assert "docker.io/library/busybox" in table and "sigstoreSigned" in table
    assert ("trust.set", "ok") in [(r["action"], r["outcome"]) for r in audit_actions(user)]


def test_bad_inputs_give_one_clear_error(keyed: User, busybox: str) -> None:
    user = keyed
    again = user.run("key", "generate", "--output-key-prefix", "release")
    assert again.returncode == 1
    assert "release.key already exists; refusing to overwrite a key" in again.stderr

    user.env["SECPOD_PASSWORD"] = "wrong"  # noqa: S105
    wrong = user.run("sign", busybox, "--key", "release.key")
    assert wrong.returncode == 1
    assert "release.key: cannot decrypt the private key: wrong passphrase" in wrong.stderr
    del user.env["SECPOD_PASSWORD"]
    no_tty = user.run("sign", busybox, "--key", "release.key")
    assert no_tty.returncode == 2
    assert "no terminal to prompt on" in no_tty.stderr
    assert not (user.home / "data" / "secpod" / "signatures").exists() or not any(
        (user.home / "data" / "secpod" / "signatures").rglob("signature-*"))

    policy = user.file("config/containers/policy.json",
                       '{"default": [{"type": "reject", "keyPath": "/k"}]}')
    broken = user.run("verify", busybox)
    assert broken.returncode == 1
    assert f"invalid trust policy {policy}: $.default[0].keyPath: unknown field" in broken.stderr
    policy.write_text('{"default": []}')
    empty = user.run("verify", busybox)
    assert "$.default: the requirement list must not be empty" in empty.stderr
    policy.write_text('{"default": [{"type": "reject"}], "default": [{"type": "reject"}]}')
    dup = user.run("trust", "show")
    assert dup.returncode == 1 and "duplicate field 'default'" in dup.stderr
    records = [(r["action"], r["outcome"]) for r in audit_actions(user)]
    assert ("image.sign", "error") in records and ("image.verify", "error") in records

    usage = user.run("verify", "dir:/nonexistent")
    assert usage.returncode == 2 and "dir:PATH needs --identity REF" in usage.stderr


def test_conformance_corpus_from_the_cli(user: User, shared: Path) -> None:
    c = corpus(shared)
    ident = "192.168.64.2:5000/cosign-signed-single-sample"
    ok = user.run("verify", f"dir:{c / 'dir-img-cosign-valid'}", "--identity", ident,
                  "--key", str(c / "cosign.pub"))
    assert ok.returncode == 0, ok.stderr
    policy = user.file("p.json", json.dumps({"default": [{
        "type": "sigstoreSigned", "keyPath": str(c / "cosign2.pub"),
        "signedIdentity": {"type": "matchRepository"}}]}))
    bad = user.run("verify", f"dir:{c / 'dir-img-cosign-valid'}", "--identity", ident,
                   "--policy", str(policy), "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["accepted"] is False


# --- interop with skopeo (containers/image) ----------------------------------------------


def _dir_copy(user: User, layout: Path, dest: str, *extra: str) -> Path:
    user.sh(["skopeo", "copy", "--quiet", *extra, f"oci:{layout}:latest", f"dir:{dest}"],
            check=True, timeout=300)
    return user.home / dest


def test_skopeo_gpg_signatures_verify_with_secpod(gpg_user: tuple[User, str],
                                                  busybox_layout: Path) -> None:
    user, fpr = gpg_user
    signed = _dir_copy(user, busybox_layout, "skopeo-signed", "--sign-by", fpr,
                       "--sign-identity", REF)
    assert (signed / "signature-1").exists()
    user.sh(["gpg", "--batch", "--export", "--output", str(user.home / "signer.gpg"), fpr],
            check=True)
    policy = user.file("gpg-policy.json", json.dumps({"default": [{
        "type": "signedBy", "keyType": "GPGKeys", "keyPath": str(user.home / "signer.gpg")}]}))
    ok = user.run("verify", f"dir:{signed}", "--identity", REF, "--policy", str(policy),
                  "--json")
    assert ok.returncode == 0, ok.stderr
    assert fpr in json.loads(ok.stdout)["reasons"][0]

    # standalone-sign over the same manifest, placed as a second layout's only signature
    other = user.home / "standalone"
    other.mkdir()
    shutil.copy(signed / "manifest.json", other / "manifest.json")
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(other)], check=True)
    user.sh(["skopeo", "standalone-sign", str(other / "manifest.json"), REF, fpr,
             "--output", str(other / "signature-1")], check=True)
    ok2 = user.run("verify", f"dir:{other}", "--identity", REF, "--policy", str(policy))
    assert ok2.returncode == 0, ok2.stderr
    wrong = user.run("verify", f"dir:{other}", "--identity",
                     "registry.example.com/team/other:1.0", "--policy", str(policy))
    assert wrong.returncode == 1 and "is not accepted" in wrong.stderr


def test_secpod_gpg_signatures_verify_with_skopeo(gpg_user: tuple[User, str],
                                                  busybox_layout: Path) -> None:
    user, fpr = gpg_user
    plain = _dir_copy(user, busybox_layout, "plain")
    out = user.run("sign", f"dir:{plain}", "--gpg-key", fpr, "--identity", REF, check=True)
    sig = Path(out.stdout.strip())
    assert sig == plain / "signature-1"
    verified = user.sh(["skopeo", "standalone-verify", str(plain / "manifest.json"), REF, fpr,
                        str(sig)])
    assert verified.returncode == 0, verified.stderr
    digest = "sha256:" + hashlib.sha256((plain / "manifest.json").read_bytes()).hexdigest()
    assert verified.stdout.strip() == f"Signature verified, digest {digest}"
    # containers/image's own policy check, reading the dir: layout secpod wrote
    user.sh(["gpg", "--batch", "--export", "--output", str(user.home / "signer.gpg"), fpr],
            check=True)
    policy = user.file("skopeo-policy.json", json.dumps({"default": [{
        "type": "signedBy", "keyType": "GPGKeys", "keyPath": str(user.home / "signer.gpg"),
        "signedIdentity": {"type": "exactReference", "dockerReference": REF}}]}))
    copied = user.sh(["skopeo", "--policy", str(policy), "copy", "--quiet", f"dir:{plain}",
                      f"dir:{user.home / 'copied'}"], timeout=300)
    assert copied.returncode == 0, copied.stderr
