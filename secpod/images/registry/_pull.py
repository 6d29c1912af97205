"""``secpod pull``: a registry image into the store, with its signatures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from secpod._record import field, record
from secpod.errors import (
    AuthenticationFailed,
    Error,
    MalformedInput,
    NotFound,
    RegistryError,
    RegistryUnreachable,
)
from secpod.images import reference
from secpod.images._manifest import (
    DOCKER_MANIFEST,
    INDEX_TYPES,
    OCI_MANIFEST,
    descriptor,
    load_json,
    parse_index,
    parse_manifest,
    select,
)
from secpod.images._store import failure_reason
from secpod.images.registry import cosign
from secpod.images.registry._auth import find_credentials
from secpod.images.registry.distribution import RegistryClient

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any, BinaryIO

Progress = Callable[[str], None]
MAX_REFERRERS = 64
MAX_REFERRER_LAYERS = 512


@record(frozen=True)
class RegistryOptions:
    """How to reach a registry: TLS verification and where credentials come from."""

    tls_verify: bool = True
    creds: str | None = None
    authfile: Path | None = None


@record(frozen=True)
class PullResult:
    """What a pull stored: the image, its name, and the signatures and Sigstore bundles
    that came with it."""

    digest: str
    name: str | None
    reference: str
    index_digest: str | None
    platform: str | None
    signatures: int
    signature_sources: tuple[str, ...]
    bundles: tuple[cosign.BundleInfo, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "name": self.name, "reference": self.reference,
                "index_digest": self.index_digest, "platform": self.platform,
                "signatures": self.signatures,
                "signature_sources": list(self.signature_sources),
                "bundles": [b.as_dict() for b in self.bundles], "notes": list(self.notes)}


class RegistrySource:
    """The :class:`~secpod.images.BlobSource` of one repository: streams, verified by the store."""

    def __init__(self, client: RegistryClient, repo: str, labels: dict[str, str],
                 progress: Progress | None) -> None:
        self.client = client
        self.repo = repo
        self.labels = labels
        self.progress = progress

    def open_blob(self, descriptor_: dict[str, Any]) -> BinaryIO:
        d = descriptor(descriptor_, "blob")
        label = self.labels.get(d.digest)
        return self.client.open_blob(self.repo, d, label=label,
                                     progress=self.progress if label else None)


def _is_index(media_type: str, data: bytes) -> bool:
    if media_type in INDEX_TYPES:
        return True
    try:
        return "manifests" in load_json(data, "manifest")
    except MalformedInput:
        return False


def _tag_signatures(client: RegistryClient, repo: str, digest: str) -> list[bytes]:
    """The attachments of the ``sha256-<hex>.sig`` manifest; [] when there is none."""
    from secpod.signing.store import MAX_SIGNATURE

    tag = cosign.sig_tag(digest)
    try:
        m = client.get_manifest(repo, tag, accept=(OCI_MANIFEST,))
    except NotFound:
        return []
    art = cosign.parse_artifact(m.data, f"signature manifest {tag}")
    return [cosign.to_attachment(cosign.SigLayer(d.media_type,
                                                 client.read_blob(repo, d, MAX_SIGNATURE),
                                                 d.annotations))
            for d in art.layers]


@record
class _Referred:
    signatures: list[bytes] = field(default_factory=list)
    bundles: list[cosign.BundleInfo] = field(default_factory=list)
    bundle_data: list[bytes] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    where: str | None = None


def _referrers(client: RegistryClient, repo: str, digest: str) -> _Referred:
    """Signatures and bundles attached as OCI 1.1 referrers. One broken referrer is noted
    and skipped (a registry may list unrelated or damaged artifacts), as containers/image
    does; so is a bundle that is unusable or signs another digest. A registry that cannot
    be reached or refuses us still fails the pull."""
    from secpod.errors import SignatureRejected
    from secpod.signing.imagebundles import screen
    from secpod.signing.store import MAX_BUNDLES, MAX_SIGNATURE

    out = _Referred()
    try:
        found = client.referrers(repo, digest)
    except (RegistryUnreachable, AuthenticationFailed):
        raise
    except (RegistryError, MalformedInput, NotFound) as e:
        out.notes.append(f"the referrers of {digest} could not be read: {e.message}")
        return out
    if found is None:
        return out
    entries, out.where = found
    fetched = layers = 0
    for d in entries:
        artifact_type = d.raw.get("artifactType", "")
        if not isinstance(artifact_type, str) or not cosign.is_sigstore_artifact(artifact_type):
            continue
        if fetched >= MAX_REFERRERS or layers >= MAX_REFERRER_LAYERS:
            out.notes.append(f"more than {MAX_REFERRERS} referrers; the rest were not read")
            break
        fetched += 1
        try:
            m = client.get_manifest(repo, d.digest, expect=d, accept=(OCI_MANIFEST,))
            art = cosign.parse_artifact(m.data, f"referrer {d.digest}")
            if art.subject is not None and art.subject != digest:
                out.notes.append(f"referrer {d.digest} names another subject; skipped")
                continue
            for layer in art.layers[:MAX_REFERRER_LAYERS - layers]:
                layers += 1
                if layer.media_type == cosign.SIGNATURE_MEDIA_TYPE:
                    payload = client.read_blob(repo, layer, MAX_SIGNATURE)
                    out.signatures.append(cosign.to_attachment(cosign.SigLayer(
                        layer.media_type, payload, layer.annotations)))
                elif layer.media_type in cosign.BUNDLE_MEDIA_TYPES:
                    if len(out.bundle_data) >= MAX_BUNDLES:
                        full = f"more than {MAX_BUNDLES} bundles; the rest were not read"
                        if full not in out.notes:
                            out.notes.append(full)
                        break
                    data = client.read_blob(repo, layer, MAX_SIGNATURE)
                    try:
                        screen(data, digest)
                    except SignatureRejected as e:
                        out.notes.append(f"bundle {layer.digest} in referrer {d.digest} "
                                         f"skipped: {e.message}")
                        continue
                    if data not in out.bundle_data:
                        out.bundles.append(cosign.describe_bundle(data, layer, out.where))
                        out.bundle_data.append(data)
                else:
                    out.notes.append(f"referrer {d.digest}: a layer of unknown media type "
                                     f"{layer.media_type[:100]!r} skipped")
        except (RegistryUnreachable, AuthenticationFailed):
            raise
        except (RegistryError, MalformedInput, NotFound) as e:
            out.notes.append(f"referrer {d.digest} skipped: {e.message}")
    return out


def pull(ref_text: str, options: RegistryOptions | None = None, *,
         progress: Progress | None = None) -> PullResult:
    """Pull ``ref_text`` (``HOST[:PORT]/NAME[:TAG][@DIGEST]``) into the user's store under its
    normalised name, with its cosign signatures; audited as ``image.pull``.

    An index resolves to this host's platform. Signatures come from the ``.sig``
    tag and from OCI 1.1 referrers (the referrers API, every page, else the
    ``sha256-<hex>`` tag), and so do Sigstore bundles whose statement signs this
    manifest; both are stored with the image so ``run`` and ``verify`` work offline.
    Raises UsageError, RegistryUnreachable, AuthenticationFailed, NotFound,
    DigestMismatch, MalformedInput, RegistryError, HostileArchive; on failure nothing is stored.
    """
    from secpod import audit
    from secpod.images import ImageRecord, Store

    options = options or RegistryOptions()
    say = progress or (lambda _m: None)
    details: dict[str, Any] = {"reference": ref_text, "tls_verify": options.tls_verify}
    audited = False
    try:
        ref = reference.parse(ref_text)
        details["reference"] = str(ref)
        name = str(reference.Reference(ref.domain, ref.path, ref.tag)) if ref.tag else None
        creds = find_credentials(ref.domain, ref.path, creds=options.creds,
                                 authfile=options.authfile)
        if creds is not None:
            details["user"] = creds.username
        store = Store.open()
        with RegistryClient(ref.domain, tls_verify=options.tls_verify,
                            credentials=creds) as client:
            top = client.get_manifest(ref.path, ref.digest or ref.tag or "latest")
            index_digest = platform = None
            image = top
            if _is_index(top.media_type, top.data):
                index_digest = top.digest
                entries = parse_index(top.data, f"index {ref}")
                chosen, _ = select(
                    entries, lambda d: client.get_manifest(ref.path, d.digest, expect=d).data,
                    want=[], what=f"index {ref}")
                p = chosen.platform or {}
                platform = f"{p.get('os', '?')}/{p.get('architecture', '?')}" if p else None
                say(f"index {index_digest[7:19]}: {platform or 'one image'}, manifest "
                    f"{chosen.digest[7:19]}")
                image = client.get_manifest(ref.path, chosen.digest, expect=chosen,
                                            accept=(OCI_MANIFEST, DOCKER_MANIFEST))
            manifest = parse_manifest(image.data, f"manifest {image.digest}")
            details["digest"] = image.digest
            signatures = _tag_signatures(client, ref.path, image.digest)
            sources = [f"tag {cosign.sig_tag(image.digest)}"] if signatures else []
            referred = _referrers(client, ref.path, image.digest)
            if referred.signatures:
                sources.append(referred.where or "referrers")
            signatures += referred.signatures
            notes = list(referred.notes)
            for note in notes:
                say(f"note: {note}")
            # registries.d lookaside store: GPG signatures beside the registry; an
            # unreadable store warns only (the trust policy judges a missing signature).
            from secpod.signing.lookaside import fetch_for_pull

            side = fetch_for_pull(ref, image.digest)
            signatures += side.signatures
            sources += side.sources
            notes += side.warnings
            for warning in side.warnings:
                say(f"warning: {warning}")
            if side.details:
                details["lookaside"] = side.details
            labels = {d.digest: f"layer {i + 1}/{len(manifest.layers)} {d.digest[7:19]}"
                      for i, d in enumerate(manifest.layers)}
            source = RegistrySource(client, ref.path, labels, say)
            details.update(signatures=len(signatures), signature_sources=sources,
                           bundles=[b.as_dict() for b in referred.bundles])
            if referred.notes:
                details["referrer_notes"] = referred.notes
            if index_digest:
                details.update(index_digest=index_digest, platform=platform)

            def commit(rec: ImageRecord, moved: list[str]) -> None:
                nonlocal audited
                from secpod.signing import add_signature
                from secpod.signing.store import add_bundle

                for blob in signatures:
                    add_signature(rec.digest, blob)
                for data in referred.bundle_data:
                    add_bundle(rec.digest, data)
                if moved:
                    details["moved_names"] = moved
                details["content"] = rec.content
                audit.record("image.pull", "ok", image_ref=name or str(ref),
                             image_digest=rec.digest, details=details)
                audited = True

            rec = store.add_image(image.data, source, names=[name] if name else [],
                                  progress=say, before_commit=commit)
        say(f"pulled {rec.familiar_names()[0] if rec.names else rec.short_id()}"
            f" ({len(signatures)} signature(s)"
            + (f", {len(referred.bundles)} Sigstore bundle(s)" if referred.bundles else "")
            + " stored)")
        return PullResult(digest=rec.digest, name=name, reference=str(ref),
                          index_digest=index_digest, platform=platform,
                          signatures=len(signatures), signature_sources=tuple(sources),
                          bundles=tuple(referred.bundles), notes=tuple(notes))
    except (Error, KeyboardInterrupt) as e:
        if not audited:
            audit.record("image.pull", "error", image_ref=ref_text,
                         reason=failure_reason(e), details=details)
        raise


__all__ = ["PullResult", "RegistryOptions", "RegistrySource", "pull"]
