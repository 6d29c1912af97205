"""The runner's trust check loads only what a key-based sigstore check needs: no
cryptography, no certificates, no gpg."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from secpod.signing import keys, sigstore

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
REF = "docker.io/library/busybox:latest"

CHECK = """
import hashlib, json, sys
from secpod import signing
m = sys.argv[1].encode()
d = signing.evaluate_image(sys.argv[2], "sha256:" + hashlib.sha256(m).hexdigest(), m)
print(json.dumps({"accepted": d.accepted, "reasons": d.reasons, "modules": sorted(sys.modules)}))
"""


def test_a_key_check_does_not_load_x509_gpg_or_key_writing(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "k.pub"
    pub.write_bytes(keys.public_key_pem(keys.public_key_of(private)))
    policy = {"default": [{"type": "reject"}], "transports": {"docker": {
        "docker.io/library/busybox": [{"type": "sigstoreSigned", "keyPath": str(pub)}]}}}
    (tmp_path / "config" / "containers").mkdir(parents=True)
    (tmp_path / "config" / "containers" / "policy.json").write_text(json.dumps(policy))
    digest = hashlib.sha256(MANIFEST).hexdigest()
    folder = tmp_path / "data" / "secpod" / "signatures" / f"sha256-{digest}"
    folder.mkdir(parents=True)
    (folder / "signature-1").write_bytes(
        sigstore.make_signature(private, REF, f"sha256:{digest}"))
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_DATA_HOME=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-c", CHECK, MANIFEST.decode(), REF], env=env,
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["accepted"], result["reasons"]
    loaded = set(result["modules"])
    # Keys and signatures go through the system's OpenSSL (secpod.signing._openssl).
    assert not {m for m in loaded if m.split(".")[0] in ("cryptography", "nacl")}
    assert not loaded & {"secpod.signing.x509chain", "secpod.signing._certroots",
                         "secpod.signing._matchers", "secpod.signing.gpg", "getpass"}
    # An image without Sigstore bundles never loads their verifier.
    assert not loaded & {"secpod.signing.imagebundles", "secpod.signing.bundle",
                         "secpod.signing._bundlelog", "secpod.signing.trustedroot"}
