"""cosign 3's image signatures (Sigstore bundles as OCI 1.1 referrers) end to end:
`sign --bundle`, `push` (docker-registry 2.8 serves no referrers API: the sha256-<hex>
fallback index), `pull` into another user's store, then `verify` and real `run`s
under a policy that requires the key, accepted only with the scope's opt-ins."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records
from tests.integration.registry_server import Registry, digest_of
from tests.integration.test_registry_cli import NO_TLS, tags, unique_image

pytestmark = [pytest.mark.registry, pytest.mark.crun, pytest.mark.userns]
PASSWORD = "bundle test passphrase"  # noqa: S105


def _bundle_files(user: User) -> list[Path]:
    root = user.home / "data" / "secpod" / "signatures"
    return sorted(root.rglob("bundle-*")) if root.exists() else []


def _policy(user: User, host: str, pub: Path, settings: dict[str, object] | None) -> None:
    folder = user.home / "config" / "containers"
    user.file("config/containers/policy.json", json.dumps({
        "default": [{"type": "reject"}],
        "transports": {"docker": {f"{host}/bundled": [
            {"type": "sigstoreSigned", "keyPath": str(pub)}]}}}))
    side = folder / "policy.bundles.json"
    if settings is None:
        side.unlink(missing_ok=True)
    else:
        user.file("config/containers/policy.bundles.json", json.dumps(settings))


def _refused(user: User, ref: str, words: str) -> dict[str, object]:
    r = user.run("run", "--rm", ref, "true")
    assert r.returncode == 125, (r.returncode, r.stderr)
    assert "the trust policy rejects" in r.stderr and words in r.stderr, r.stderr
    record = audit_records(user)[-1]
    assert (record["action"], record["outcome"]) == ("container.run.refused", "refused")
    return record


def test_sign_bundle_push_pull_run(user: User, user2: User, busybox: str,
                                   registry: Registry) -> None:
    user.env["SECPOD_PASSWORD"] = PASSWORD
    user.run("key", "generate", "--output-key-prefix", "release", check=True)
    user.run("key", "generate", "--output-key-prefix", "other", check=True)
    signed = user.run("sign", busybox, "--key", "release.key", "--bundle", "--json")
    assert signed.returncode == 0, signed.stderr
    result = json.loads(signed.stdout)
    assert result["kind"] == "sigstore-bundle" and Path(result["signature"]).name == "bundle-1"
    digest = result["digest"]
    ref = f"{registry.host}/bundled/busybox:1"
    pushed = user.run("push", busybox, ref, NO_TLS, "--json")
    assert pushed.returncode == 0, pushed.stderr
    push = json.loads(pushed.stdout)
    fallback = digest.replace(":", "-")
    assert (push["bundles_pushed"], push["bundles_listed_in"]) == (1, f"tag {fallback}")
    assert fallback in tags(registry, "bundled/busybox")
    assert not any(t.endswith(".sig") for t in tags(registry, "bundled/busybox"))
    again = json.loads(user.run("push", busybox, ref, NO_TLS, "--json", check=True).stdout)
    assert again["bundles_pushed"] == 1
    from secpod.images.registry import RegistryClient

    with RegistryClient(registry.host, tls_verify=False) as client:
        index = client.get_manifest("bundled/busybox", fallback,
                                    accept=("application/vnd.oci.image.index.v1+json",))
    [entry] = json.loads(index.data)["manifests"]  # pushing again adds no second referrer
    assert entry["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert entry["annotations"]["dev.sigstore.bundle.predicateType"] == (
        "https://sigstore.dev/cosign/sign/v1")

    pulled = user2.run("pull", ref, NO_TLS, "--json")
    assert pulled.returncode == 0, pulled.stderr
    info = json.loads(pulled.stdout)
    assert info["signatures"] == 0 and len(info["bundles"]) == 1
    assert info["bundles"][0]["found_in"] == f"tag {fallback}"
    [stored] = _bundle_files(user2)
    good = stored.read_bytes()
    assert good == Path(result["signature"]).read_bytes()
    assert "1 Sigstore bundle(s) stored" in pulled.stderr

    pub = user2.file("release.pub", (user.home / "release.pub").read_bytes())
    other = user2.file("other.pub", (user.home / "other.pub").read_bytes())
    both = {"scopes": {f"{registry.host}/bundled": {"acceptDigestOnly": True,
                                                    "allowNoLog": True}}}

    # Refused by default: the bundle signs a digest, not a docker reference.
    _policy(user2, registry.host, pub, None)
    record = _refused(user2, ref, "acceptDigestOnly")
    [seen] = record["trust"]["evidence"]  # type: ignore[index]
    assert seen["digest"] == digest_of(good) and seen["verdict"] == "rejected"
    no_opt = user2.run("verify", ref)
    assert no_opt.returncode == 1 and "acceptDigestOnly" in no_opt.stderr

    # Digest-only allowed, but no log allowance: still refused.
    _policy(user2, registry.host, pub, {"scopes": {f"{registry.host}/bundled": {
        "acceptDigestOnly": True}}})
    _refused(user2, ref, "allowNoLog")

    # Both opt-ins: verify and a real run accept, and the audit names the bundle.
    _policy(user2, registry.host, pub, both)
    verified = user2.run("verify", ref, "--json")
    assert verified.returncode == 0, verified.stderr
    decision = json.loads(verified.stdout)
    assert decision["evidence"][0]["digest"] == digest_of(good)
    assert decision["evidence"][0]["verdict"] == "accepted"
    ran = user2.run("run", "--rm", "--profile", "strict", ref, "echo", "bundled")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "bundled\n"
    create = [r for r in audit_records(user2) if r["action"] == "container.create"][-1]
    [used] = create["trust"]["evidence"]  # type: ignore[index]
    assert used["kind"] == "bundle" and used["digest"] == digest_of(good)
    assert used["verdict"] == "accepted" and used["scope"] == f"{registry.host}/bundled"

    # Unusable settings: exit 2 naming the field, and the refused run is audited.
    user2.file("config/containers/policy.bundles.json", '{"scopes": {"x": {"allowNoLog": 1}}}')
    broken = user2.run("verify", ref)
    assert broken.returncode == 2 and "allowNoLog" in broken.stderr, broken.stderr
    unusable = user2.run("run", "--rm", ref, "true")
    assert unusable.returncode != 0 and "invalid bundle settings" in unusable.stderr
    record = audit_records(user2)[-1]
    assert (record["action"], record["outcome"]) == ("container.run.refused", "refused")

    # The wrong key.
    _policy(user2, registry.host, other, both)
    _refused(user2, ref, "does not verify")

    # A tampered bundle: the statement's predicate changed after signing.
    _policy(user2, registry.host, pub, both)
    doc = json.loads(good)
    stmt = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    stmt["predicate"] = {"tampered": True}
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    stored.write_text(json.dumps(doc))
    _refused(user2, ref, "does not verify")

    # A bundle for another digest (another image's, signed by the same key).
    unique_image(user, "elsewhere:1")
    elsewhere = json.loads(user.run("sign", "elsewhere:1", "--key", "release.key", "--bundle",
                                    "--json", check=True).stdout)
    stored.write_bytes(Path(elsewhere["signature"]).read_bytes())
    _refused(user2, ref, "not a subject of the in-toto statement")

    stored.write_bytes(good)
    again = user2.run("run", "--rm", ref, "true")
    assert again.returncode == 0, again.stderr


def test_sign_bundle_bad_usage(user: User, busybox: str) -> None:
    no_key = user.run("sign", busybox, "--gpg-key", "ABCD", "--bundle")
    assert no_key.returncode == 2 and "--bundle needs --key" in no_key.stderr
    record = audit_records(user)[-1]
    assert (record["action"], record["outcome"]) == ("image.sign", "error")


def test_verify_attestation_type(user: User, user2: User, busybox: str,
                                 registry: Registry) -> None:
    """An in-toto attestation (SLSA provenance) attached as a referrer bundle, by the same
    key: `verify --attestation-type` checks it through the same requirement; an image
    signature bundle is no attestation, and an attestation is no image signature."""
    from secpod.signing.imagebundles import make_bundle
    from secpod.signing.keys import decrypt_private_key

    user.env["SECPOD_PASSWORD"] = PASSWORD
    user.run("key", "generate", "--output-key-prefix", "release", check=True)
    digest = json.loads(user.run("sign", busybox, "--key", "release.key", "--bundle",
                                 "--json", check=True).stdout)["digest"]
    key = decrypt_private_key((user.home / "release.key").read_bytes(), PASSWORD.encode(),
                              source="release.key")
    folder = user.home / "data" / "secpod" / "signatures" / digest.replace(":", "-")
    user.file(str((folder / "bundle-2").relative_to(user.home)), make_bundle(
        key, digest, "bundled/attested", predicate_type="https://slsa.dev/provenance/v1",
        predicate={"buildDefinition": {"buildType": "https://example.com/build/v1"}}))
    ref = f"{registry.host}/bundled/attested:1"
    pushed = json.loads(user.run("push", busybox, ref, NO_TLS, "--json", check=True).stdout)
    assert pushed["bundles_pushed"] == 2

    pulled = json.loads(user2.run("pull", ref, NO_TLS, "--json", check=True).stdout)
    assert len(pulled["bundles"]) == 2
    pub = user2.file("release.pub", (user.home / "release.pub").read_bytes())
    _policy(user2, registry.host, pub, {"scopes": {f"{registry.host}/bundled": {
        "acceptDigestOnly": True, "allowNoLog": True}}})

    ok = user2.run("verify", ref, "--attestation-type", "slsaprovenance1", "--json")
    assert ok.returncode == 0, ok.stderr
    decision = json.loads(ok.stdout)
    assert decision["attestation"] == "https://slsa.dev/provenance/v1"
    assert [e["verdict"] for e in decision["evidence"]] == ["rejected", "accepted"]
    record = audit_records(user2)[-1]
    assert record["action"] == "image.verify" and record["outcome"] == "ok"
    assert record["trust"]["attestation"] == "https://slsa.dev/provenance/v1"  # type: ignore[index]

    sbom = user2.run("verify", ref, "--attestation-type", "spdxjson")
    assert sbom.returncode == 1 and "not an attestation of that type" in sbom.stderr
    unknown = user2.run("verify", ref, "--attestation-type", "sbom")
    assert unknown.returncode == 2 and "unknown attestation type 'sbom'" in unknown.stderr
    ran = user2.run("run", "--rm", ref, "true")
    assert ran.returncode == 0, ran.stderr
