"""Every case of ../shared/conformance/sigstore-bundles, through the real CLI as the test user.

Each case runs twice, as the upstream harness does: with the artifact's path and with its
``sha256:`` digest. A case ending in ``_fail`` must be rejected (exit 1 or 2) for a reason
other than a missing feature; the others must be accepted (exit 0). Key-signed and
certificate-signed (Fulcio) cases alike: none is expected to fail.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED, User

CASES = SHARED / "conformance" / "sigstore-bundles"
IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ISSUER = "https://token.actions.githubusercontent.com"
NOT_IMPLEMENTED = "not implemented in this build"


def _case_dirs() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.is_dir()) if CASES.is_dir() else []


def _params() -> list[object]:
    out: list[object] = []
    for case in _case_dirs():
        for mode in ("path", "digest"):
            out.append(pytest.param(case, mode, id=f"{case.name}-{mode}"))
    return out


def test_the_corpus_is_there(shared: Path) -> None:
    assert len(_case_dirs()) >= 40, f"{CASES} is missing or incomplete"


@pytest.mark.parametrize(("case", "mode"), _params())
def test_case_reaches_its_verdict(user: User, shared: Path, case: Path, mode: str) -> None:
    work = user.home / "case"
    shutil.copytree(case, work)
    artifact = work / "artifact" if (work / "artifact").exists() else CASES / "a.txt"
    if artifact.parent != work:
        shutil.copy(artifact, work / "a.txt")
        artifact = work / "a.txt"
    shutil.chown(user.home, user.uid, user.gid)
    for p in [work, *work.iterdir()]:
        shutil.chown(p, user.uid, user.gid)
    args = ["verify-bundle", "--bundle", str(work / "bundle.sigstore.json")]
    if (work / "key.pub").exists():
        args += ["--key", str(work / "key.pub")]
    else:
        ident = (work / "identity").read_text().strip() if (work / "identity").exists() \
            else IDENTITY
        iss = (work / "issuer").read_text().strip() if (work / "issuer").exists() else ISSUER
        args += ["--certificate-identity", ident, "--certificate-oidc-issuer", iss]
    if (work / "trusted_root.json").exists():
        args += ["--trusted-root", str(work / "trusted_root.json")]
    args.append(str(artifact) if mode == "path"
                else "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest())
    proc = user.run(*args)
    why = (case / "README").read_text().strip() if (case / "README").exists() else case.name
    if case.name.endswith("_fail"):
        assert proc.returncode in (1, 2), f"{case.name} was accepted; it must fail: {why}"
        assert NOT_IMPLEMENTED not in proc.stderr, proc.stderr
        assert "secpod: error:" in proc.stderr
    else:
        assert proc.returncode == 0, f"{case.name} rejected ({why}): {proc.stderr}"
        assert proc.stdout.startswith("accepted:")


def _audit(user: User) -> list[dict[str, object]]:
    out = []
    for path in (user.home / "data" / "secpod" / "audit").rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if isinstance(rec, dict) and rec.get("action") == "bundle.verify":
                out.append(rec)
    return out


def test_a_fulcio_bundle_names_the_failed_check_and_is_audited(user: User,
                                                              shared: Path) -> None:
    bundle = user.file("b.json", (CASES / "happy-path-v0.3" / "bundle.sigstore.json")
                       .read_bytes())
    artifact = user.file("a.txt", (CASES / "a.txt").read_bytes())
    root = json.loads((CASES / "production-trusted_root.json").read_bytes())
    common = ["verify-bundle", "--bundle", str(bundle), "--trusted-root"]
    good = user.file("root.json", json.dumps(root))
    ok = user.run(*common, str(good), "--certificate-identity", IDENTITY,
                  "--certificate-oidc-issuer", ISSUER, str(artifact))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"accepted: {artifact}\n"

    wrong_id = user.run(*common, str(good), "--certificate-identity", IDENTITY + "x",
                        "--certificate-oidc-issuer", ISSUER, str(artifact))
    assert wrong_id.returncode == 1 and wrong_id.stdout == ""
    assert "the certificate's identity is not" in wrong_id.stderr
    wrong_iss = user.run(*common, str(good), "--certificate-identity", IDENTITY,
                         "--certificate-oidc-issuer", "https://accounts.google.com",
                         str(artifact))
    assert wrong_iss.returncode == 1
    assert f"the certificate's OIDC issuer is '{ISSUER}'" in wrong_iss.stderr

    root["certificateAuthorities"] = []
    no_ca = user.file("no-ca.json", json.dumps(root))
    unusable = user.run(*common, str(no_ca), "--certificate-identity", IDENTITY,
                        "--certificate-oidc-issuer", ISSUER, str(artifact))
    assert unusable.returncode == 2
    assert "the trusted root has no certificate authorities" in unusable.stderr

    records = _audit(user)
    assert [r["outcome"] for r in records] == ["ok", "refused", "refused", "refused"], records
    assert "the certificate's identity is not" in str(records[1].get("reason"))
    assert IDENTITY + "x" in json.dumps(records[1])


@pytest.mark.parametrize("case", ["managed-key-happy-path", "managed-key-and-trusted-root"])
def test_a_key_bundle_loads_no_cryptography(user: User, shared: Path, case: str) -> None:
    """docs/BENCHMARKS.md: a key-signed bundle, with an RFC 3161 timestamp
    (managed-key-happy-path) or without (managed-key-and-trusted-root), is verified through
    the system's libcrypto (secpod.signing._openssl): no cryptography, no certificates."""
    src = CASES / case
    doc = json.loads((src / "bundle.sigstore.json").read_bytes())
    stamped = "timestampVerificationData" in doc["verificationMaterial"]
    assert stamped == (case == "managed-key-happy-path"), "the case's bundle changed"
    args = ["--bundle", str(user.file("b.json", (src / "bundle.sigstore.json").read_bytes())),
            "--key", str(user.file("k.pub", (src / "key.pub").read_bytes()))]
    if (src / "trusted_root.json").exists():
        args += ["--trusted-root",
                 str(user.file("root.json", (src / "trusted_root.json").read_bytes()))]
    artifact = user.file("a.txt", (CASES / "a.txt").read_bytes())
    r = user.sh([sys.executable, "-X", "importtime", "-m", "secpod", "verify-bundle", *args,
                 str(artifact)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"accepted: {artifact}\n"
    names = [line.split("|")[-1].strip() for line in r.stderr.splitlines()
             if line.startswith("import time:")]
    # what the interpreter's site set-up imported comes before secpod's first module
    first = next(i for i, n in enumerate(names) if n.split(".")[0] == "secpod")
    loaded = set(names[first:])
    assert "secpod.signing._openssl" in loaded
    assert ("secpod.signing._rfc3161" in loaded) == stamped
    assert not {n for n in loaded if n.split(".")[0] in ("cryptography", "nacl")}, \
        sorted(n for n in loaded if n.startswith("cryptography"))
    assert not loaded & {"secpod.signing._bundlecert", "secpod.signing.x509chain", "_strptime"}
