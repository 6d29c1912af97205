"""The ``.sig`` layout: layers <-> secpod.signing attachments, manifests, referrers, bundles."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from secpod.errors import MalformedInput
from secpod.images._manifest import descriptor
from secpod.images.registry import cosign

CORPUS_DIRS = ["dir-img-cosign-valid", "dir-img-cosign-valid-2",
               "dir-img-cosign-fulcio-rekor-valid", "dir-img-cosign-key-rekor-valid", "dir-img-cosign-pki-valid",
               "dir-img-cosign-other-attachment", "dir-img-cosign-valid-with-tag"]


def _sigstore_files(shared: Path) -> list[Path]:
    corpus = shared / "conformance" / "containers-image-signatures"
    out = [p for d in CORPUS_DIRS for p in sorted((corpus / d).glob("signature-*"))
           if p.read_bytes().startswith(b"\x00sigstore-json\n")]
    assert len(out) >= len(CORPUS_DIRS)
    return out


def test_layer_round_trip_is_byte_identical_to_containers_image(shared: Path) -> None:
    """cosign wrote these layers, containers/image turned them into these files: going
    file -> layer -> file gives the same bytes, so pull stores what skopeo would."""
    for path in _sigstore_files(shared):
        blob = path.read_bytes()
        layer = cosign.from_attachment(blob)
        assert layer is not None
        # other-attachment was written by hand upstream (a trailing newline json.Marshal
        # never emits); every file cosign and containers/image made matches byte for byte.
        want = blob.rstrip(b"\n") if path.parent.name.endswith("other-attachment") else blob
        assert cosign.to_attachment(layer) == want, path


def test_layer_fields_come_from_the_manifest_layer(shared: Path) -> None:
    blob = (shared / "conformance" / "containers-image-signatures" / "dir-img-cosign-valid"
            / "signature-1").read_bytes()
    layer = cosign.from_attachment(blob)
    assert layer is not None
    assert layer.media_type == cosign.SIGNATURE_MEDIA_TYPE
    assert json.loads(layer.payload)["critical"]["type"] == "cosign container image signature"
    assert set(layer.annotations) == {"dev.cosignproject.cosign/signature"}
    desc = cosign.layer_descriptor(layer)
    assert desc["mediaType"] == cosign.SIGNATURE_MEDIA_TYPE and desc["size"] == len(layer.payload)
    assert cosign.same_layer(descriptor(desc, "layer"), layer)
    other = dict(desc, annotations={"dev.cosignproject.cosign/signature": "AAAA"})
    assert not cosign.same_layer(descriptor(other, "layer"), layer)


def test_gpg_signatures_have_no_layer(shared: Path) -> None:
    gpg = (shared / "conformance" / "containers-image-signatures" / "image.signature")
    assert cosign.from_attachment(gpg.read_bytes()) is None


def test_sig_manifest_layout() -> None:
    layers = [cosign.SigLayer(cosign.SIGNATURE_MEDIA_TYPE, b'{"critical":{}}',
                              {"dev.cosignproject.cosign/signature": "c2ln"})]
    descs = [cosign.layer_descriptor(x) for x in layers]
    config = cosign.sig_config([d["digest"] for d in descs])
    manifest = cosign.sig_manifest(config, descs)
    art = cosign.parse_artifact(manifest, "m")
    assert art.config.media_type == "application/vnd.oci.image.config.v1+json"
    assert [d.raw for d in art.layers] == descs
    assert json.loads(config)["rootfs"] == {"type": "layers", "diff_ids": [descs[0]["digest"]]}
    assert cosign.sig_tag("sha256:" + "ab" * 32) == "sha256-" + "ab" * 32 + ".sig"


@pytest.mark.parametrize(("doc", "message"), [
    ({"schemaVersion": 1}, "schemaVersion is not 2"),
    ({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"},
     "is not an OCI manifest"),
    ({"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:" + "0" * 64,
                                     "size": 2}}, "has no layers list"),
    ({"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:zz", "size": 2},
      "layers": []}, "invalid digest"),
])
def test_parse_artifact_refuses_malformed_manifests(doc: dict[str, object], message: str
                                                    ) -> None:
    with pytest.raises(MalformedInput, match=message):
        cosign.parse_artifact(json.dumps(doc).encode(), "m")


def test_parse_artifact_reads_artifact_type_and_subject() -> None:
    doc = {"schemaVersion": 2, "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
           "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                      "digest": "sha256:" + "4" * 64, "size": 2},
           "layers": [], "subject": {"digest": "sha256:" + "1" * 64}}
    art = cosign.parse_artifact(json.dumps(doc).encode(), "m")
    assert art.artifact_type == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert art.subject == "sha256:" + "1" * 64
    too_many = dict(doc, layers=[{"mediaType": "x", "digest": "sha256:" + "0" * 64,
                                  "size": 1}] * (cosign.MAX_LAYERS + 1))
    with pytest.raises(MalformedInput, match="more than"):
        cosign.parse_artifact(json.dumps(too_many).encode(), "m")


def test_referrer_artifact_types() -> None:
    assert cosign.is_sigstore_artifact("")
    assert cosign.is_sigstore_artifact("application/vnd.dev.cosign.artifact.sig.v1+json")
    assert cosign.is_sigstore_artifact("application/vnd.dev.sigstore.bundle.v0.3+json")
    assert not cosign.is_sigstore_artifact("application/spdx+json")


def test_describe_bundle() -> None:
    d = descriptor({"mediaType": cosign.BUNDLE_MEDIA_TYPES[0], "digest": "sha256:" + "2" * 64,
                    "size": 1}, "b")
    dsse = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "dsseEnvelope": {"payloadType": "application/vnd.in-toto+json",
                             "payload": base64.b64encode(b"{}").decode(), "signatures": []}}
    info = cosign.describe_bundle(json.dumps(dsse).encode(), d, "referrers API")
    assert (info.content, info.payload_type, info.where) == (
        "dsse-envelope", "application/vnd.in-toto+json", "referrers API")
    msg = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
           "messageSignature": {"signature": "AAAA"}}
    assert cosign.describe_bundle(json.dumps(msg).encode(), d, "x").content == \
        "message-signature"
    with pytest.raises(MalformedInput, match="no bundle mediaType"):
        cosign.describe_bundle(b'{"mediaType": "text/plain"}', d, "x")
    with pytest.raises(MalformedInput, match="not valid JSON"):
        cosign.describe_bundle(b"{nope", d, "x")
