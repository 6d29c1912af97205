"""`secpod attest` and required attestations end to end: an SLSA provenance attestation
made by `attest`, pushed as a referrer with the image's signature bundle, pulled into
another user's store, then required by the scope (`requireAttestations` in
policy.bundles.json) before `verify` and real `run`s accept the image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records
from tests.integration.registry_server import Registry, digest_of
from tests.integration.test_registry_cli import NO_TLS

pytestmark = [pytest.mark.registry, pytest.mark.crun, pytest.mark.userns]
PASSWORD = "attest test passphrase"  # noqa: S105
SLSA1 = "https://slsa.dev/provenance/v1"
BUILDER = "https://ci.example/builder"
PROVENANCE = {"buildDefinition": {"buildType": "https://example.com/build/v1",
                                  "externalParameters": {"ref": "refs/heads/main"}},
              "runDetails": {"builder": {"id": BUILDER}}}


def _bundles(user: User) -> list[Path]:
    root = user.home / "data" / "secpod" / "signatures"
    return sorted(root.rglob("bundle-*")) if root.exists() else []


def _policy(user: User, host: str, pub: Path) -> None:
    user.file("config/containers/policy.json", json.dumps({
        "default": [{"type": "reject"}],
        "transports": {"docker": {f"{host}/attested": [
            {"type": "sigstoreSigned", "keyPath": str(pub)}]}}}))


def _require(user: User, host: str, *entries: object) -> None:
    user.file("config/containers/policy.bundles.json", json.dumps({"scopes": {
        f"{host}/attested": {"acceptDigestOnly": True, "allowNoLog": True,
                             "requireAttestations": list(entries)}}}))


def _refused(user: User, ref: str, *words: str) -> dict[str, object]:
    r = user.run("run", "--rm", ref, "true")
    assert r.returncode == 125, (r.returncode, r.stderr)
    assert "the trust policy rejects" in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    record = audit_records(user)[-1]
    assert (record["action"], record["outcome"]) == ("container.run.refused", "refused")
    for w in words:
        assert w in str(record["reason"]), (w, record["reason"])
    return record


NEED = {"type": "slsaprovenance1", "predicate": {"runDetails.builder.id": BUILDER}}


def test_attest_push_pull_then_run_requires_it(user: User, user2: User, busybox: str,
                                               registry: Registry) -> None:
    user.env["SECPOD_PASSWORD"] = PASSWORD
    user.run("key", "generate", "--output-key-prefix", "release", check=True)
    user.run("sign", busybox, "--key", "release.key", "--bundle", check=True)
    predicate = user.file("provenance.json", json.dumps(PROVENANCE))
    made = user.run("attest", "--key", "release.key", "--type", "slsaprovenance1",
                    "--predicate", str(predicate), busybox, "--json")
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    assert Path(result["signature"]).name == "bundle-2"
    assert result["predicate_type"] == SLSA1 and result["kind"] == "attestation"
    attestation = Path(result["signature"]).read_bytes()
    assert result["bundle"] == digest_of(attestation)
    record = audit_records(user)[-1]
    assert (record["action"], record["outcome"]) == ("image.attest", "ok")
    assert record["details"]["bundle"] == digest_of(attestation)  # type: ignore[index]

    ref = f"{registry.host}/attested/busybox:1"
    pushed = json.loads(user.run("push", busybox, ref, NO_TLS, "--json", check=True).stdout)
    assert pushed["bundles_pushed"] == 2
    from secpod.images.registry import RegistryClient

    with RegistryClient(registry.host, tls_verify=False) as client:
        index = client.get_manifest("attested/busybox", result["digest"].replace(":", "-"),
                                    accept=("application/vnd.oci.image.index.v1+json",))
    assert sorted(m["annotations"]["dev.sigstore.bundle.predicateType"]
                  for m in json.loads(index.data)["manifests"]) == [
        "https://sigstore.dev/cosign/sign/v1", SLSA1]
    pulled = json.loads(user2.run("pull", ref, NO_TLS, "--json", check=True).stdout)
    assert len(pulled["bundles"]) == 2
    stored = _bundles(user2)
    assert [p.read_bytes() for p in stored][1] == attestation

    pub = user2.file("release.pub", (user.home / "release.pub").read_bytes())
    _policy(user2, registry.host, pub)
    _require(user2, registry.host, NEED)

    # Accepted: verify and a real strict run; the audit names the attestation that decided.
    verified = user2.run("verify", ref, "--json")
    assert verified.returncode == 0, verified.stderr
    decision = json.loads(verified.stdout)
    assert decision["required_attestations"] == [
        f"slsaprovenance1 with runDetails.builder.id={BUILDER!r}"]
    ran = user2.run("run", "--rm", "--profile", "strict", ref, "echo", "attested")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "attested\n"
    create = [r for r in audit_records(user2) if r["action"] == "container.create"][-1]
    trust = create["trust"]
    assert trust["required_attestations"] == decision["required_attestations"]  # type: ignore[index]
    used = [e for e in trust["evidence"] if e["verdict"] == "accepted"]  # type: ignore[index]
    assert [(e["digest"], e["predicate_type"]) for e in used] == [
        (digest_of(stored[0].read_bytes()), "https://sigstore.dev/cosign/sign/v1"),
        (digest_of(attestation), SLSA1)]
    assert used[1]["predicate"] == {"runDetails.builder.id": BUILDER}

    # verify --attestation-type judges the predicate when asked.
    asked = user2.run("verify", ref, "--attestation-type", "slsaprovenance1",
                      "--predicate-match", f"runDetails.builder.id={BUILDER}")
    assert asked.returncode == 0, asked.stderr
    other = user2.run("verify", ref, "--attestation-type", "slsaprovenance1",
                      "--predicate-match", "buildDefinition.externalParameters.ref=refs/tags/v1")
    assert other.returncode == 1
    assert ("its predicate's buildDefinition.externalParameters.ref is 'refs/heads/main' "
            "(required: 'refs/tags/v1')") in other.stderr
    lone = user2.run("verify", ref, "--predicate-match", "a=b")
    assert lone.returncode == 2 and "--predicate-match needs --attestation-type" in lone.stderr

    # The wrong builder: refused, the reason quoting what the predicate said.
    _require(user2, registry.host, {"type": "slsaprovenance1",
                                    "predicate": {"runDetails.builder.id": "https://other"}})
    wrong = user2.run("verify", ref)
    assert wrong.returncode == 1
    said = f"its predicate's runDetails.builder.id is {BUILDER!r} (required: 'https://other')"
    assert said in wrong.stderr, wrong.stderr
    record = _refused(user2, ref, "requireAttestations slsaprovenance1 with", said)
    assert record["trust"]["accepted"] is False  # type: ignore[index]
    assert any(e["digest"] == digest_of(attestation) and e["verdict"] == "rejected"
               for e in record["trust"]["evidence"])  # type: ignore[index]

    # Missing: no attestation of that type among the bundles.
    _require(user2, registry.host, NEED, {"type": "cyclonedx"})
    _refused(user2, ref, "requireAttestations cyclonedx", "not an attestation of that type")

    # Signed by another key: user2's own attestation in place of the publisher's.
    _require(user2, registry.host, NEED)
    user2.env["SECPOD_PASSWORD"] = PASSWORD
    user2.run("key", "generate", "--output-key-prefix", "mine", check=True)
    user2.file("provenance.json", json.dumps(PROVENANCE))
    stored[1].unlink()
    forged = user2.run("attest", "--key", "mine.key", "--type", "slsaprovenance1",
                       "--predicate", "provenance.json", ref)
    assert forged.returncode == 0, forged.stderr
    _refused(user2, ref, "requireAttestations slsaprovenance1", "does not verify")

    # Back to the publisher's: accepted again.
    stored[1].write_bytes(attestation)
    again = user2.run("run", "--rm", ref, "true")
    assert again.returncode == 0, again.stderr

    # An unknown key in a requirement: unusable settings, exit 2 naming it; run refuses.
    _require(user2, registry.host, {"type": "slsaprovenance1", "builder": BUILDER})
    field = f'$.scopes["{registry.host}/attested"].requireAttestations[0].builder: unknown field'
    broken = user2.run("verify", ref)
    assert broken.returncode == 2 and field in broken.stderr, broken.stderr
    unusable = user2.run("run", "--rm", ref, "true")
    assert unusable.returncode == 2 and field in unusable.stderr, (unusable.returncode,
                                                                   unusable.stderr)
    record = audit_records(user2)[-1]
    assert (record["action"], record["outcome"]) == ("container.run.refused", "refused")


def test_attest_refuses_bad_predicates_and_types(user: User, busybox: str) -> None:
    user.env["SECPOD_PASSWORD"] = PASSWORD
    user.run("key", "generate", "--output-key-prefix", "release", check=True)
    cases = {
        "malformed": (b'{"runDetails": ', "invalid predicate", "is not valid JSON"),
        "array": (b'["not", "an", "object"]', "invalid predicate", "expected a JSON object"),
        "duplicate": (b'{"a": 1, "a": 2}', "invalid predicate", "duplicate field 'a'"),
        "large": (b'{"a": "' + b"x" * (1 << 20) + b'"}', "is larger than 1048576 bytes", ""),
    }
    for name, (data, words, more) in cases.items():
        path = user.file(f"{name}.json", data)
        r = user.run("attest", "--key", "release.key", "--type", "slsaprovenance1",
                     "--predicate", str(path), busybox)
        assert r.returncode == 2, (name, r.returncode, r.stderr)
        assert words in r.stderr and more in r.stderr, (name, r.stderr)
        record = audit_records(user)[-1]
        assert (record["action"], record["outcome"]) == ("image.attest", "error")
    good = user.file("good.json", json.dumps(PROVENANCE))
    unknown = user.run("attest", "--key", "release.key", "--type", "sbom", "--predicate",
                       str(good), busybox)
    assert unknown.returncode == 2 and "unknown attestation type 'sbom'" in unknown.stderr
    absent = user.run("attest", "--key", "release.key", "--type", "spdxjson", "--predicate",
                      str(user.home / "absent.json"), busybox)
    assert absent.returncode == 2 and "cannot read the predicate" in absent.stderr
    layout = user.run("attest", "--key", "release.key", "--type", "spdxjson", "--predicate",
                      str(good), "dir:" + str(user.home))
    assert layout.returncode == 2 and "attest cannot sign a dir: image" in layout.stderr
    assert _bundles(user) == []  # nothing half-done
    ok = user.run("attest", "--key", "release.key", "--type", "spdxjson", "--predicate",
                  str(good), busybox)
    assert ok.returncode == 0, ok.stderr
    assert [p.name for p in _bundles(user)] == ["bundle-1"]
