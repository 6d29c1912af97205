"""What `secpod run` leaves out at start-up still works when something asks for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from secpod import audit
from secpod.audit import _note
from secpod.sandbox import state
from secpod.signing import policy, requirements

KEY_POLICY = {"default": [{"type": "reject"}], "transports": {"docker": {
    "docker.io/library/busybox": [{"type": "sigstoreSigned", "keyPath": "/k.pub"}]}}}

PARSE = """
import json, sys
from secpod.signing import policy
p = policy.parse_policy(sys.argv[1].encode(), source="t")
print(json.dumps({"policy": p.as_json(), "modules": sorted(sys.modules)}))
"""

CHECKPOINT = """
import json, sys
from secpod import audit
audit.record("container.exit", "ok", container_id="c", exit_status=0, checkpoint=True)
print(json.dumps(sorted(sys.modules)))
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=True, env=env).stdout


def test_a_key_policy_parses_without_the_rare_requirement_classes() -> None:
    out = json.loads(_run(PARSE, json.dumps(KEY_POLICY)))
    assert out["policy"] == KEY_POLICY | {"transports": {"docker": {
        "docker.io/library/busybox": [{"type": "sigstoreSigned", "keyPath": "/k.pub",
                                       "signedIdentity": {"type": "matchRepoDigestOrExact"}}]}}}
    assert "secpod.signing._policy_rare" not in out["modules"]
    assert "secpod.signing._signedby" not in out["modules"]


def test_signed_by_and_keyless_specs_still_parse_prepare_and_re_export(tmp_path: Path) -> None:
    ring = tmp_path / "ring.gpg"
    ring.write_bytes(b"keyring")
    doc = {"default": [
        {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(ring)},
        {"type": "signedBy", "keyType": "X509Certificates", "keyData": "YQ=="},
        {"type": "signedBaseLayer", "baseLayerIdentity": {"type": "matchRepository"}},
        {"type": "sigstoreSigned", "fulcio": {"caData": "YQ==", "oidcIssuer": "https://i",
                                              "subjectEmail": "a@b"},
         "rekorPublicKeyData": "YQ=="},
        {"type": "sigstoreSigned", "pki": {"caRootsData": "YQ==", "subjectEmail": "a@b"}}]}
    p = policy.parse_policy(json.dumps(doc).encode(), source="t")
    gpg, x509, base, fulcio, pki = p.default
    assert isinstance(gpg, policy.SignedBy) and gpg.key_path == str(ring)
    assert isinstance(base, policy.SignedBaseLayer)
    assert isinstance(fulcio, policy.SigstoreSigned) and isinstance(fulcio.fulcio,
                                                                     policy.FulcioSpec)
    assert isinstance(pki, policy.SigstoreSigned) and isinstance(pki.pki, policy.PKISpec)
    assert pki.pki.subject_email == "a@b"
    assert policy.parse_policy(p.dumps(), source="again") == p
    prepared = requirements.prepare(gpg)
    assert isinstance(prepared, requirements.GPGSignedBy)
    assert prepared.keyrings == (b"keyring",)
    assert isinstance(requirements.prepare(x509), requirements.UnimplementedKeyType)
    assert type(requirements.prepare(base)).__name__ == "SignedBaseLayerUnsupported"


def test_a_run_signs_a_checkpoint_without_loading_the_parser(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    audit.record("container.create", "ok", container_id="c")  # makes the log and its key
    modules = json.loads(_run(CHECKPOINT, env=dict(os.environ)))
    assert "secpod.audit._checkpoint" not in modules
    assert "secpod.audit._collector" not in modules
    assert "cryptography.hazmat.primitives.serialization" not in modules
    log = audit.user_log()
    cp = _note.parse_checkpoint(log.latest_checkpoint_file.read_text())
    assert cp.size == 2
    cp.verify(log.ensure_key())
    assert isinstance(cp, _note.Checkpoint)


def test_container_ids_and_generated_names(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    seen = set()
    for _ in range(20):
        cid, name, _folder = state.reserve(None)
        assert len(cid) == 64 and int(cid, 16) >= 0
        adj, noun, n = name.split("_")
        assert adj in state._ADJ and noun in state._NOUN and 0 <= int(n) < 100
        seen.add(cid)
    assert len(seen) == 20
