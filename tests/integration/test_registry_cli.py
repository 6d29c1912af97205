"""`secpod pull` and `secpod push` against a real registry on loopback.

One docker-registry (Debian's package) serves the whole module over plain
HTTP on 127.0.0.1, so every command passes --tls-verify=false. secpod runs as
the unprivileged test users; skopeo is the real peer for interop.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import User
from tests.integration.registry_server import Registry, digest_of, free_port

pytestmark = [pytest.mark.registry, pytest.mark.crun, pytest.mark.userns]

NO_TLS = "--tls-verify=false"
PASSWORD = "registry test passphrase"  # noqa: S105


def audit(user: User) -> list[dict[str, Any]]:
    path = user.home / "data" / "secpod" / "audit" / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def store_files(user: User) -> list[str]:
    root = user.home / "data" / "secpod" / "images"
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for sub in ("blobs", "unpacked", "tmp")
                  for p in (root / sub).rglob("*") if not p.is_dir() and p.name != ".lock")


def signature_files(user: User) -> list[Path]:
    root = user.home / "data" / "secpod" / "signatures"
    return sorted(root.rglob("signature-*")) if root.exists() else []


def tags(reg: Registry, repo: str) -> list[str]:
    import urllib.request

    with urllib.request.urlopen(f"http://{reg.host}/v2/{repo}/tags/list") as r:  # noqa: S310
        return list(json.load(r)["tags"])


def unique_image(user: User, name: str) -> str:
    """An image with a layer of its own (random bytes), imported as ``name``."""
    import os

    root = user.home / f"rootfs-{name.replace('/', '-').replace(':', '-')}"
    (root / "data").mkdir(parents=True)
    (root / "data" / "random.bin").write_bytes(os.urandom(200_000))
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(root)], check=True)
    proc = user.run("image", "import", "--rootfs", str(root), "--name", name, check=True)
    return proc.stdout.strip()


def test_push_then_pull_into_another_users_store(user: User, user2: User, busybox: str,
                                                 registry: Registry) -> None:
    ref = f"{registry.host}/test/busybox:1"
    pushed = user.run("push", busybox, ref, NO_TLS)
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.strip()
    assert digest.startswith("sha256:") and len(pushed.stdout.splitlines()) == 1
    assert "sent" in pushed.stderr  # progress goes to stderr

    pulled = user2.run("pull", ref, NO_TLS)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == digest
    assert "received" in pulled.stderr and "unpacked" in pulled.stderr

    listed = json.loads(user2.run("image", "ls", "--json", check=True).stdout)
    assert [(r["digest"], r["names"]) for r in listed] == [(digest, [ref])]
    ran = user2.run("run", "--rm", ref, "true")
    assert ran.returncode == 0, ran.stderr

    push_rec = [r for r in audit(user) if r["action"] == "image.push"]
    assert [(r["outcome"], r["image"]["digest"], r["image"]["ref"]) for r in push_rec] == [
        ("ok", digest, ref)]
    pull_rec = [r for r in audit(user2) if r["action"] == "image.pull"]
    assert [(r["outcome"], r["image"]["digest"], r["image"]["ref"]) for r in pull_rec] == [
        ("ok", digest, ref)]

    by_digest = user2.run("pull", f"{registry.host}/test/busybox@{digest}", NO_TLS)
    assert by_digest.returncode == 0, by_digest.stderr
    assert by_digest.stdout.strip() == digest

    again = user.run("push", busybox, ref, NO_TLS, "--json", check=True)
    result = json.loads(again.stdout)
    assert result["blobs_sent"] == 0 and result["blobs_skipped"] == 2
    assert "already points at it" in again.stderr


def test_signed_push_then_trusted_pull_and_strict_run(user: User, user2: User, busybox: str,
                                                      registry: Registry) -> None:
    user.env["COSIGN_PASSWORD"] = PASSWORD
    user.run("key", "generate", "--output-key-prefix", "release", check=True)
    ref = f"{registry.host}/signed/busybox:1"
    pushed = user.run("push", busybox, ref, "--sign-by", "release.key", NO_TLS, "--json")
    assert pushed.returncode == 0, pushed.stderr
    result = json.loads(pushed.stdout)
    digest = result["digest"]
    sig_tag = "sha256-" + digest[7:] + ".sig"
    assert result["signature_tag"] == sig_tag and result["signatures_pushed"] == 1
    assert sig_tag in tags(registry, "signed/busybox")
    rec = next(r for r in audit(user) if r["action"] == "image.push")
    assert rec["details"]["signed_by"] == "release.key"

    unsigned_ref = f"{registry.host}/signed/unsigned:1"
    user.run("push", busybox, unsigned_ref, NO_TLS, check=True)

    pub = user2.file("release.pub", (user.home / "release.pub").read_bytes())
    user2.run("trust", "set", "--type", "sigstoreSigned", "--pubkeysfile", str(pub),
              f"{registry.host}/signed", check=True)
    user2.run("trust", "set", "--type", "reject", "default", check=True)

    pulled = user2.run("pull", ref, NO_TLS, "--json")
    assert pulled.returncode == 0, pulled.stderr
    info = json.loads(pulled.stdout)
    assert info["digest"] == digest and info["signatures"] == 1
    assert info["signature_sources"] == [f"tag {sig_tag}"]
    [sig] = signature_files(user2)
    assert sig.read_bytes() == signature_files(user)[0].read_bytes()

    verified = user2.run("verify", ref, "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["accepted"] is True
    strict = user2.run("run", "--rm", "--profile", "strict", ref, "true")
    assert strict.returncode == 0, strict.stderr

    # The same image under another name in the same scope: no signature for that name.
    other = user2.run("pull", unsigned_ref, NO_TLS, "--json", check=True)
    assert json.loads(other.stdout)["signatures"] == 1  # the signature names signed/busybox:1
    refused = user2.run("run", "--rm", unsigned_ref, "true")
    assert refused.returncode != 0
    assert "trust policy rejects" in refused.stderr


def test_unsigned_image_is_refused_under_the_policy(user: User, user2: User,
                                                    registry: Registry) -> None:
    ref = f"{registry.host}/signed/plain:1"
    unique_image(user, "plain:1")
    user.run("push", "plain:1", ref, NO_TLS, check=True)
    user2.env["COSIGN_PASSWORD"] = PASSWORD
    user2.run("key", "generate", "--output-key-prefix", "mine", check=True)
    user2.run("trust", "set", "--type", "sigstoreSigned", "--pubkeysfile", "mine.pub",
              f"{registry.host}/signed", check=True)
    pulled = user2.run("pull", ref, NO_TLS, "--json", check=True)
    assert json.loads(pulled.stdout)["signatures"] == 0
    assert signature_files(user2) == []
    refused = user2.run("run", "--rm", ref, "true")
    assert refused.returncode != 0
    assert "no signature exists" in refused.stderr or "rejects" in refused.stderr
    assert user2.run("verify", ref).returncode == 1


def _index_layout(dest: Path) -> tuple[str, str]:
    """An OCI layout holding an index of two images (linux/amd64 and linux/arm64)."""
    from secpod.images.build import write_layout
    from tests.imagekit import busybox_layout

    amd = busybox_layout(dest / "amd64")
    root = dest / "armroot"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "arch").write_text("arm64\n")
    arm = write_layout(root, dest / "arm64", arch="arm64")
    out = dest / "multi"
    (out / "blobs" / "sha256").mkdir(parents=True)
    for part in ("amd64", "arm64"):
        for blob in (dest / part / "blobs" / "sha256").iterdir():
            target = out / "blobs" / "sha256" / blob.name
            if not target.exists():
                target.write_bytes(blob.read_bytes())
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entries = []
    for digest, arch in ((arm, "arm64"), (amd, "amd64")):
        size = (out / "blobs" / "sha256" / digest[7:]).stat().st_size
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": digest, "size": size,
                        "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    (out / "blobs" / "sha256" / hashlib.sha256(index).hexdigest()).write_bytes(index)
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest_of(index),
        "size": len(index)}]}))
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    return amd, digest_of(index)


def test_multi_platform_index_selects_this_hosts_platform(user: User, registry: Registry
                                                          ) -> None:
    layout = user.home / "index-layout"
    amd, index_digest = _index_layout(layout)
    ref = f"{registry.host}/multi/busybox:1"
    subprocess.run(["skopeo", "copy", "--all", "-q", "--dest-tls-verify=false",
                    f"oci:{layout / 'multi'}", f"docker://{ref}"], check=True)
    pulled = user.run("pull", ref, NO_TLS, "--json")
    assert pulled.returncode == 0, pulled.stderr
    info = json.loads(pulled.stdout)
    assert info["digest"] == amd
    assert info["index_digest"] == index_digest and info["platform"] == "linux/amd64"
    assert user.run("run", "--rm", ref, "true").returncode == 0


def test_interop_with_skopeo_both_ways(user: User, busybox_layout: Path, busybox: str,
                                       registry: Registry) -> None:
    ref = f"{registry.host}/interop/from-skopeo:1"
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{busybox_layout}",
                    f"docker://{ref}"], check=True)
    pulled = user.run("pull", ref, NO_TLS)
    assert pulled.returncode == 0, pulled.stderr
    assert user.run("run", "--rm", ref, "true").returncode == 0

    ref2 = f"{registry.host}/interop/from-secpod:2"
    pushed = user.run("push", busybox, ref2, NO_TLS, check=True)
    seen = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref2}"],
                          check=True, capture_output=True, text=True)
    assert json.loads(seen.stdout)["Digest"] == pushed.stdout.strip()
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref2}"],
                         check=True, capture_output=True).stdout
    assert digest_of(raw) == pushed.stdout.strip()


def test_unreachable_registry(user: User) -> None:
    port = free_port()
    proc = user.run("pull", f"127.0.0.1:{port}/x/y:1", NO_TLS)
    assert proc.returncode == 1
    assert f"cannot connect to 127.0.0.1:{port}: connection refused" in proc.stderr
    assert "hint:" in proc.stderr
    recs = [r for r in audit(user) if r["action"] == "image.pull"]
    assert [(r["outcome"], r["reason"]) for r in recs] == [
        ("error", f"cannot connect to 127.0.0.1:{port}: connection refused")]
    assert store_files(user) == []


def test_tls_is_verified_by_default_even_on_loopback(user: User, registry: Registry) -> None:
    proc = user.run("pull", f"{registry.host}/test/busybox:1")
    assert proc.returncode == 1
    assert "TLS handshake with " + registry.host in proc.stderr
    assert "--tls-verify=false" in proc.stderr


def test_unknown_repository_and_tag(user: User, busybox: str, registry: Registry) -> None:
    user.run("push", busybox, f"{registry.host}/known/busybox:1", NO_TLS, check=True)
    for ref in (f"{registry.host}/unknown/repo:1", f"{registry.host}/known/busybox:nosuchtag"):
        proc = user.run("pull", ref, NO_TLS)
        assert proc.returncode == 1
        assert "not found on " + registry.host in proc.stderr
        assert "UNKNOWN" in proc.stderr
    assert [r["outcome"] for r in audit(user) if r["action"] == "image.pull"] == ["error"] * 2
    names = json.loads(user.run("image", "ls", "--json", check=True).stdout)
    assert [n for r in names for n in r["names"]] == ["docker.io/library/busybox:latest"]


def test_tampered_blob_is_refused_and_nothing_is_stored(user: User, user2: User,
                                                        registry: Registry) -> None:
    unique_image(user, "tamper:1")
    ref = f"{registry.host}/tamper/image:1"
    user.run("push", "tamper:1", ref, NO_TLS, check=True)
    manifest = json.loads(subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        check=True, capture_output=True).stdout)
    layer = manifest["layers"][0]["digest"]
    blob = registry.blob_file(layer)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))

    proc = user2.run("pull", ref, NO_TLS)
    assert proc.returncode == 1
    assert f"blob {layer}" in proc.stderr or layer in proc.stderr
    assert "content is sha256:" in proc.stderr
    assert store_files(user2) == []
    assert signature_files(user2) == []
    assert json.loads(user2.run("image", "ls", "--json", check=True).stdout) == []
    [rec] = [r for r in audit(user2) if r["action"] == "image.pull"]
    assert rec["outcome"] == "error" and "content is sha256:" in rec["reason"]

    # A manifest changed in the registry's storage: by tag and by digest.
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         check=True, capture_output=True).stdout
    mfile = registry.blob_file(digest_of(raw))
    config = manifest["config"]["digest"].encode()
    forged = raw.replace(config, config[:-1] + (b"0" if config[-1:] != b"0" else b"1"), 1)
    assert forged != raw and len(forged) == len(raw)
    mfile.write_bytes(forged)
    by_tag = user2.run("pull", ref, NO_TLS)
    assert by_tag.returncode == 1
    assert "does not match the digest the registry names" in by_tag.stderr
    by_digest = user2.run("pull", f"{registry.host}/tamper/image@{digest_of(raw)}", NO_TLS)
    assert by_digest.returncode == 1
    assert f"content is {digest_of(forged)}" in by_digest.stderr
    assert store_files(user2) == []


# --- a hostile registry: garbage JSON, an oversized blob -------------------------------------

class _Hostile(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, body: bool) -> None:
        status, headers, data = self.routes.get(self.path, (404, {}, b"{}"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)


@pytest.fixture
def hostile() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    garbage = b'{"schemaVersion": 2, "layers": [ not json'
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}}
                        ).encode()
    layer = b"x" * 100
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(layer), "size": 10}]}).encode()
    _Hostile.routes = {
        "/v2/": (200, {"Content-Length": "2"}, b"{}"),
        "/v2/bad/json/manifests/1": (200, {
            "Content-Type": "application/vnd.oci.image.manifest.v1+json",
            "Docker-Content-Digest": digest_of(garbage),
            "Content-Length": str(len(garbage))}, garbage),
        "/v2/bad/big/manifests/1": (200, {
            "Content-Type": "application/vnd.oci.image.manifest.v1+json",
            "Content-Length": str(len(manifest))}, manifest),
        f"/v2/bad/big/blobs/{digest_of(config)}": (200, {
            "Content-Length": str(len(config))}, config),
        # no Content-Length: the body runs on past the 10 bytes the descriptor says
        f"/v2/bad/big/blobs/{digest_of(layer)}": (200, {}, layer),
    }
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_hostile_registry_garbage_json_and_oversized_blob(user: User, hostile: str) -> None:
    proc = user.run("pull", f"{hostile}/bad/json:1", NO_TLS)
    assert proc.returncode == 1
    assert "is not valid JSON" in proc.stderr

    proc = user.run("pull", f"{hostile}/bad/big:1", NO_TLS)
    assert proc.returncode == 1
    assert "longer than the 10 bytes its descriptor says" in proc.stderr
    assert store_files(user) == []
    recs = [r for r in audit(user) if r["action"] == "image.pull"]
    assert [r["outcome"] for r in recs] == ["error", "error"]


# --- the client itself, in this process, against the same registry ---------------------------

class _Breaking:
    """An upload body that delivers ``after`` bytes and then loses the connection."""

    def __init__(self, inner: Any, after: int) -> None:
        self.inner = inner
        self.left = after

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise ConnectionResetError(104, "Connection reset by peer")
        data: bytes = self.inner.read(min(size if size >= 0 else self.left, self.left))
        self.left -= len(data)
        return data


@pytest.mark.parametrize("kept", [0, 30_000])
def test_chunked_upload_survives_a_broken_chunk(registry: Registry, tmp_path: Path, kept: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk whose connection breaks: the upload resumes at the registry's Range when the
    registry kept none of it, and restarts when it kept a part (docker-registry then
    refuses the session); either way the blob arrives whole."""
    import os

    from secpod.images._manifest import descriptor
    from secpod.images.registry import RegistryClient, _http

    data = os.urandom(300_000)
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    digest = digest_of(data)
    original = _http.Session._send
    patches: list[str] = []

    def flaky(self: Any, origin: Any, method: str, target: str, headers: dict[str, str],
              body: Any) -> Any:
        if method == "PATCH":
            patches.append(headers["Content-Range"])
            if len(patches) == 2:
                body = _Breaking(body, after=kept)
        return original(self, origin, method, target, headers, body)

    monkeypatch.setattr(_http.Session, "_send", flaky)
    repo = f"resume/blob{kept}"
    with RegistryClient(registry.host, tls_verify=False, push=True) as client:
        client.upload_blob(repo, digest, blob, chunk_size=64 << 10, monolithic_max=0)
        assert client.blob_size(repo, digest) == len(data)
        with client.open_blob(repo, descriptor(
                {"mediaType": "application/octet-stream", "digest": digest,
                 "size": len(data)}, "blob")) as f:
            assert f.read() == data
    assert patches[:2] == ["0-65535", "65536-131071"]
    if kept == 0:
        assert patches[2] == "65536-131071"  # resumed where the registry's Range said
    else:
        assert "0-65535" in patches[2:4]  # started over (at once, or after a refused resume)


def _put_artifact(client: Any, repo: str, subject: str, artifact_type: str,
                  layers: list[tuple[str, bytes, dict[str, str]]]) -> dict[str, Any]:
    """Upload an OCI 1.1 artifact manifest naming ``subject``; return its index entry."""
    empty = b"{}"
    client.upload_bytes(repo, digest_of(empty), empty)
    descs = []
    for media_type, data, notes in layers:
        client.upload_bytes(repo, digest_of(data), data)
        d: dict[str, Any] = {"mediaType": media_type, "digest": digest_of(data),
                             "size": len(data)}
        if notes:
            d["annotations"] = notes
        descs.append(d)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(empty),
                   "size": 2},
        "layers": descs,
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": subject, "size": 1}}).encode()
    digest = client.put_manifest(repo, digest_of(manifest), manifest,
                                 "application/vnd.oci.image.manifest.v1+json")
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
            "size": len(manifest), "artifactType": artifact_type}


def test_referrers_signature_and_bundle_are_stored(user: User, user2: User,
                                                   registry: Registry) -> None:
    """Docker-registry 2.8 has no referrers API: the fallback tag sha256-<hex> lists a
    cosign simple-signing referrer and a cosign 3 Sigstore bundle (both stored), and
    four that are skipped with a note each: a bundle whose statement signs another
    digest, malformed bundle JSON, an oversized bundle, and a referrer whose subject is
    another manifest."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from secpod.images.registry import RegistryClient
    from secpod.signing import parse_attachment
    from secpod.signing.imagebundles import make_bundle
    from secpod.signing.sigstore import make_signature

    unique_image(user, "referred:1")
    ref = f"{registry.host}/referred/image:1"
    digest = user.run("push", "referred:1", ref, NO_TLS, check=True).stdout.strip()
    key = ec.generate_private_key(ec.SECP256R1())
    att = parse_attachment(make_signature(key, ref, digest))
    bundle = make_bundle(key, digest, "referred/image")
    elsewhere = "sha256:" + "1" * 64
    wrong_subject = make_bundle(key, elsewhere, "referred/image")
    bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    with RegistryClient(registry.host, tls_verify=False, push=True) as client:
        entries = [
            _put_artifact(client, "referred/image", digest,
                          "application/vnd.dev.cosign.artifact.sig.v1+json",
                          [(att.mime_type, att.payload, dict(att.annotations))]),
            _put_artifact(client, "referred/image", digest, bundle_type,
                          [(bundle_type, bundle, {})]),
            _put_artifact(client, "referred/image", digest, bundle_type,
                          [(bundle_type, wrong_subject, {})]),
            _put_artifact(client, "referred/image", digest, bundle_type,
                          [(bundle_type, b'{"mediaType": ', {})]),
            _put_artifact(client, "referred/image", digest, bundle_type,
                          [(bundle_type, b" " * (4 * 1024 * 1024 + 1), {})]),
            _put_artifact(client, "referred/image", elsewhere, bundle_type,
                          [(bundle_type, bundle, {})]),
            _put_artifact(client, "referred/image", digest, "application/spdx+json",
                          [("application/spdx+json", b'{"spdxVersion":"SPDX-2.3"}', {})]),
        ]
        index = json.dumps({"schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": entries}).encode()
        client.put_manifest("referred/image", digest.replace(":", "-"), index,
                            "application/vnd.oci.image.index.v1+json")

    pub = user2.file("referrer.pub", key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    pulled = user2.run("pull", ref, NO_TLS, "--json")
    assert pulled.returncode == 0, pulled.stderr
    info = json.loads(pulled.stdout)
    assert info["signatures"] == 1
    assert info["signature_sources"] == [f"tag {digest.replace(':', '-')}"]
    [b] = info["bundles"]
    assert b["content"] == "dsse-envelope" and b["payload_type"] == "application/vnd.in-toto+json"
    notes = info["notes"]
    assert len(notes) == 4, notes
    assert any(f"subject is not {digest}" in n for n in notes)
    assert any("malformed bundle" in n for n in notes)
    assert any("larger than 4194304 bytes" in n for n in notes)
    assert any(f"{entries[5]['digest']} names another subject" in n for n in notes)
    [sig] = signature_files(user2)
    assert sig.read_bytes().startswith(b"\x00sigstore-json\n")
    [stored] = sorted((user2.home / "data" / "secpod" / "signatures").rglob("bundle-*"))
    assert stored.read_bytes() == bundle
    verified = user2.run("verify", ref, "--key", str(pub))
    assert verified.returncode == 0, verified.stderr
    [rec] = [r for r in audit(user2) if r["action"] == "image.pull"]
    assert rec["details"]["bundles"][0]["digest"] == digest_of(bundle)
    assert len(rec["details"]["referrer_notes"]) == 4
