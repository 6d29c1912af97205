"""``secpod push``: an image of the store to a registry, with its signatures as ``.sig``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from secpod._record import record
from secpod.errors import Error, MalformedInput, NotFound, UsageError
from secpod.images import reference
from secpod.images._manifest import MAX_CONFIG, OCI_MANIFEST, parse_manifest
from secpod.images._store import failure_reason
from secpod.images.registry import cosign
from secpod.images.registry._auth import find_credentials
from secpod.images.registry._pull import RegistryOptions
from secpod.images.registry.distribution import CHUNK, MONOLITHIC_MAX, RegistryClient

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

Progress = Callable[[str], None]


@record(frozen=True)
class PushResult:
    """What a push sent."""

    digest: str
    reference: str
    blobs_sent: int
    blobs_skipped: int
    bytes_sent: int
    signatures_pushed: int
    signature_tag: str | None
    gpg_signatures_skipped: int
    signed: str | None
    bundles_pushed: int = 0
    bundles_listed_in: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "reference": self.reference,
                "blobs_sent": self.blobs_sent, "blobs_skipped": self.blobs_skipped,
                "bytes_sent": self.bytes_sent, "signatures_pushed": self.signatures_pushed,
                "signature_tag": self.signature_tag,
                "gpg_signatures_skipped": self.gpg_signatures_skipped, "signed": self.signed,
                "bundles_pushed": self.bundles_pushed,
                "bundles_listed_in": self.bundles_listed_in}


def _push_bundles(client: RegistryClient, repo: str, subject: dict[str, Any],
                  bundles: list[bytes]) -> tuple[int, str]:
    """Push each Sigstore bundle as an OCI 1.1 referrer of ``subject`` (as cosign 3 does)
    and, where the registry serves no referrers API, list them in the ``sha256-<hex>``
    fallback index (keeping what it lists); return how many and where they are listed."""
    import hashlib

    from secpod.images._manifest import OCI_INDEX
    from secpod.signing import imagebundles

    empty = cosign.EMPTY_CONFIG
    empty_digest = "sha256:" + hashlib.sha256(empty).hexdigest()
    if client.blob_size(repo, empty_digest) != len(empty):
        client.upload_bytes(repo, empty_digest, empty)
    entries: list[dict[str, Any]] = []
    for data in bundles:
        b = imagebundles.screen(data, subject["digest"])
        # No creation time: the same bundle is always the same referrer (a push again
        # adds nothing to the fallback index).
        notes = {"dev.sigstore.bundle.content": "dsse-envelope" if b.dsse_payload is not None
                 else "message-signature"}
        if b.dsse_payload is not None:
            notes["dev.sigstore.bundle.predicateType"] = imagebundles.statement(b)[0]
        blob_digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if client.blob_size(repo, blob_digest) != len(data):
            client.upload_bytes(repo, blob_digest, data)
        manifest = cosign.bundle_artifact(data, subject, notes)
        mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        client.put_manifest(repo, mdigest, manifest, OCI_MANIFEST)
        entries.append({"mediaType": OCI_MANIFEST, "digest": mdigest, "size": len(manifest),
                        "artifactType": cosign.BUNDLE_ARTIFACT_TYPE, "annotations": notes})
    if client.serves_referrers(repo, subject["digest"]):
        return len(entries), "referrers API"
    tag = subject["digest"].replace(":", "-", 1)
    try:
        existing: bytes | None = client.get_manifest(repo, tag, accept=(OCI_INDEX,)).data
    except NotFound:
        existing = None
    client.put_manifest(repo, tag, cosign.referrers_index(existing, entries,
                                                          f"referrers tag {tag}"), OCI_INDEX)
    return len(entries), f"tag {tag}"


def _sign(key_path: Path, identity: str, digest: str) -> Path:
    from secpod.signing import add_signature, load_private_key, sign_sigstore

    return add_signature(digest, sign_sigstore(load_private_key(key_path), identity, digest))


def _push_signatures(client: RegistryClient, repo: str, digest: str,
                     layers: list[cosign.SigLayer]) -> int:
    """Add ``layers`` to the ``.sig`` manifest of ``digest`` (keeping what it holds);
    return how many were new."""
    import hashlib

    from secpod.images._manifest import check_digest

    tag = cosign.sig_tag(digest)
    kept: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    existing: tuple[Any, ...] = ()
    try:
        m = client.get_manifest(repo, tag, accept=(OCI_MANIFEST,))
    except NotFound:
        m = None
    if m is not None:
        art = cosign.parse_artifact(m.data, f"signature manifest {tag}")
        existing = art.layers
        kept = [d.raw for d in art.layers]
        config = client.read_blob(repo, art.config, MAX_CONFIG)
        try:
            ids = json.loads(config)["rootfs"]["diff_ids"]
            diff_ids = [check_digest(i, f"signature config of {tag}") for i in ids]
        except (ValueError, KeyError, TypeError) as e:
            raise MalformedInput(f"the config of signature manifest {tag} is malformed",
                                 hint="delete the tag in the registry and push again") from e
    new = [layer for layer in layers if not any(cosign.same_layer(d, layer) for d in existing)]
    if not new:
        return 0
    for layer in new:
        desc = cosign.layer_descriptor(layer)
        if client.blob_size(repo, desc["digest"]) != desc["size"]:
            client.upload_bytes(repo, desc["digest"], layer.payload)
        kept.append(desc)
        diff_ids.append(desc["digest"])
    config = cosign.sig_config(diff_ids)
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    if client.blob_size(repo, config_digest) != len(config):
        client.upload_bytes(repo, config_digest, config)
    client.put_manifest(repo, tag, cosign.sig_manifest(config, kept), OCI_MANIFEST)
    return len(new)


def push(image: str, ref_text: str, options: RegistryOptions | None = None, *,
         sign_by: Path | None = None, progress: Progress | None = None,
         chunk_size: int = CHUNK, monolithic_max: int = MONOLITHIC_MAX) -> PushResult:
    """Push ``image`` (a name or digest in the user's store) to ``ref_text``
    (``HOST[:PORT]/NAME[:TAG]``), then its sigstore signatures as the ``.sig`` tag and
    its Sigstore bundles as OCI 1.1 referrers (listed in the ``sha256-<hex>`` fallback
    index where the registry serves no referrers API); audited as ``image.push``.

    ``sign_by`` (a cosign private key; passphrase from SECPOD_PASSWORD,
    COSIGN_PASSWORD or a prompt) first signs the image as ``ref_text`` and stores
    the signature. Blobs the registry has are skipped; blobs over
    ``monolithic_max`` go up in ``chunk_size`` PATCH chunks. Raises NotFound,
    UsageError, KeyFormatError, RegistryUnreachable, AuthenticationFailed,
    RegistryError, MalformedInput.
    """
    from secpod import audit
    from secpod.images import Store, human_size
    from secpod.signing import signatures_for
    from secpod.signing.store import bundles_for

    options = options or RegistryOptions()
    say = progress or (lambda _m: None)
    details: dict[str, Any] = {"image": image, "reference": ref_text,
                               "tls_verify": options.tls_verify}
    digest: str | None = None
    try:
        dest = reference.parse(ref_text)
        if dest.digest:
            raise UsageError(f"push to a tag, not a digest: {ref_text!r}",
                             hint="give HOST/NAME[:TAG]; the manifest's digest is its own")
        details["reference"] = str(dest)
        store = Store.open()
        rec = store.resolve(image)
        digest = rec.digest
        manifest_bytes = store.manifest_bytes(digest)
        manifest = parse_manifest(manifest_bytes, f"stored manifest {digest}")
        signed: str | None = None
        if sign_by is not None:
            signed = str(_sign(sign_by, str(dest), digest))
            details["signed_by"] = str(sign_by)
            say(f"signed {digest[7:19]} as {dest} with {sign_by}")
        creds = find_credentials(dest.domain, dest.path, creds=options.creds,
                                 authfile=options.authfile)
        if creds is not None:
            details["user"] = creds.username
        sent = skipped = sent_bytes = 0
        with RegistryClient(dest.domain, tls_verify=options.tls_verify, credentials=creds,
                            push=True) as client:
            for what, d in [("config", manifest.config)] + [
                    (f"layer {i + 1}/{len(manifest.layers)}", x)
                    for i, x in enumerate(manifest.layers)]:
                if client.blob_size(dest.path, d.digest) == d.size:
                    skipped += 1
                    say(f"{what} {d.digest[7:19]}: already in the registry")
                    continue
                path = store.blob_path(d.digest)
                if not path.is_file() or path.stat().st_size != d.size:
                    raise MalformedInput(f"the store's copy of blob {d.digest} is missing or "
                                         "damaged", hint=f"secpod image rm {image} and import "
                                                         "it again")
                client.upload_blob(dest.path, d.digest, path, chunk_size=chunk_size,
                                   monolithic_max=monolithic_max, progress=say)
                sent += 1
                sent_bytes += d.size
                say(f"{what} {d.digest[7:19]}: {human_size(d.size)} sent")
            tag_ = dest.tag or "latest"
            if client.head_manifest(dest.path, tag_, accept=(manifest.media_type,)) == digest:
                say(f"manifest {digest[7:19]}: {dest} already points at it")
            else:
                client.put_manifest(dest.path, tag_, manifest_bytes, manifest.media_type)
                say(f"manifest {digest[7:19]} written as {dest}")
            layers: list[cosign.SigLayer] = []
            gpg = 0
            gpg_blobs: list[bytes] = []
            for blob in signatures_for(digest):
                layer = cosign.from_attachment(blob)
                if layer is None:
                    gpg += 1
                    gpg_blobs.append(blob)
                else:
                    layers.append(layer)
            # GPG signatures go to the lookaside store registries.d names for the
            # destination (file:// only), as containers/image writes them.
            from secpod.signing.lookaside import stage_signature

            staged = [stage_signature(dest, digest, b) for b in gpg_blobs]
            staged_paths = [str(s.path) for s in staged if s is not None and s.path is not None]
            if staged_paths:
                details["lookaside_staged"] = staged_paths
                say(f"{len(staged_paths)} GPG signature(s) written to the lookaside store "
                    f"{staged[0].url if staged[0] else ''}")
            elif gpg:
                if staged[0] is not None and staged[0].warning:
                    say(f"warning: {staged[0].warning}")
                say(f"note: {gpg} GPG signature(s) not pushed: a registry's .sig tag carries "
                    "sigstore signatures only (a registries.d lookaside-staging takes them)")
            pushed = _push_signatures(client, dest.path, digest, layers) if layers else 0
            tag = cosign.sig_tag(digest) if layers else None
            if layers:
                say(f"signatures: {pushed} new, {len(layers) - pushed} already in {tag}")
            bundles = bundles_for(digest)
            n_bundles, listed = 0, None
            if bundles:
                n_bundles, listed = _push_bundles(
                    client, dest.path, {"mediaType": manifest.media_type, "digest": digest,
                                        "size": len(manifest_bytes)}, bundles)
                say(f"Sigstore bundles: {n_bundles} pushed as referrers ({listed})")
        result = PushResult(digest=digest, reference=str(dest), blobs_sent=sent,
                            blobs_skipped=skipped, bytes_sent=sent_bytes,
                            signatures_pushed=pushed, signature_tag=tag,
                            gpg_signatures_skipped=gpg, signed=signed,
                            bundles_pushed=n_bundles, bundles_listed_in=listed)
        details.update({k: v for k, v in result.as_dict().items()
                        if k not in ("digest", "reference")})
        audit.record("image.push", "ok", image_ref=str(dest), image_digest=digest,
                     details=details)
        return result
    except (Error, KeyboardInterrupt) as e:
        audit.record("image.push", "error", image_ref=ref_text, image_digest=digest,
                     reason=failure_reason(e), details=details)
        raise
