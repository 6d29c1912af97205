"""``secpod key generate``, ``sign``, ``attest``, ``verify`` and ``trust show|set|export``.

Exit codes of ``verify``: 0 accepted, 1 rejected (or the check could not
run: the message says which), 2 bad usage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from secpod._record import record

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    from typing import Any, NoReturn

    from secpod.images.reference import Reference


def _add_key(sub: _Subparsers) -> None:
    key = sub.add_parser("key", help="manage signing keys (cosign format)")
    key_sub = key.add_subparsers(dest="key_command", metavar="COMMAND")
    key_sub.required = True
    gen = key_sub.add_parser(
        "generate", help="make an ECDSA P-256 key pair: NAME.key (encrypted) and NAME.pub",
        description="Make a cosign-compatible key pair. The passphrase comes from "
                    "SECPOD_PASSWORD or COSIGN_PASSWORD, else a prompt on the terminal.")
    gen.add_argument("--output-key-prefix", default="cosign", metavar="NAME",
                     help="write NAME.key and NAME.pub (default: cosign)")
    gen.set_defaults(func=_key_generate)


def _add_sign(sub: _Subparsers) -> None:
    sign = sub.add_parser(
        "sign", help="sign an image with a cosign key or a GPG key",
        description="Sign IMAGE (a name in your store, or dir:PATH) and store the signature "
                    "beside it. The private key's passphrase comes from SECPOD_PASSWORD or "
                    "COSIGN_PASSWORD, else a prompt.")
    sign.add_argument("image", metavar="IMAGE")
    how = sign.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, metavar="NAME.key", help="cosign private key")
    how.add_argument("--gpg-key", metavar="FPR", help="GPG key fingerprint (your GNUPGHOME)")
    sign.add_argument("--identity", metavar="REF",
                      help="the reference to sign as (default: the image's name)")
    sign.add_argument("--bundle", action="store_true",
                      help="with --key: write cosign 3's format, a Sigstore bundle (in-toto "
                           "statement for the manifest digest, DSSE, no log entry); `secpod "
                           "push` sends it as an OCI 1.1 referrer")
    sign.add_argument("--json", action="store_true", help="print the result as JSON")
    sign.set_defaults(func=_sign)


def _add_attest(sub: _Subparsers) -> None:
    att = sub.add_parser(
        "attest", help="attach an in-toto attestation (SLSA provenance, an SBOM) to an image",
        description="Sign PREDICATE's JSON as an in-toto attestation of TYPE for IMAGE's "
                    "manifest digest (cosign's attest: a Sigstore bundle, DSSE, no log entry) "
                    "and store it beside the image; `secpod push` sends it as an OCI 1.1 "
                    "referrer. The key's passphrase comes from SECPOD_PASSWORD or "
                    "COSIGN_PASSWORD, else a prompt. Exit 0 written, 1 an error, 2 usage.")
    att.add_argument("image", metavar="IMAGE")
    att.add_argument("--key", type=Path, required=True, metavar="NAME.key",
                     help="cosign private key")
    att.add_argument("--type", required=True, dest="attestation_type", metavar="TYPE",
                     help="slsaprovenance, slsaprovenance1, spdxjson, cyclonedx, ..., or a "
                          "predicate type URI (as verify --attestation-type)")
    att.add_argument("--predicate", type=Path, required=True, metavar="FILE",
                     help="the predicate: one JSON object (at most 1 MiB)")
    att.add_argument("--json", action="store_true", help="print the result as JSON")
    att.set_defaults(func=_attest)


def _add_verify(sub: _Subparsers) -> None:
    verify = sub.add_parser(
        "verify", help="check an image's signatures against the trust policy",
        description="Evaluate the trust policy for IMAGE (a name in your store, or dir:PATH "
                    "with --identity). Exit 0 accepted, 1 rejected, 2 usage.")
    verify.add_argument("image", metavar="IMAGE")
    src = verify.add_mutually_exclusive_group()
    src.add_argument("--key", type=Path, metavar="NAME.pub",
                     help="accept only sigstore signatures by this cosign public key "
                          "(signedIdentity matchRepository, as cosign checks)")
    src.add_argument("--policy", type=Path, metavar="FILE",
                     help="evaluate this containers-policy.json file instead")
    verify.add_argument("--identity", metavar="REF",
                        help="for dir:PATH: the reference the image is claimed to have")
    verify.add_argument("--attestation-type", metavar="TYPE",
                        help="check an in-toto attestation of this type (slsaprovenance, "
                             "slsaprovenance1, spdxjson, cyclonedx, ..., or a predicate type "
                             "URI) among the image's Sigstore bundles, instead of a signature")
    verify.add_argument("--predicate-match", action="append", default=[], metavar="PATH=VALUE",
                        help="with --attestation-type: the attestation's predicate must have "
                             "exactly VALUE at the dotted PATH (repeatable)")
    verify.add_argument("--json", action="store_true", help="print the decision as JSON")
    verify.set_defaults(func=_verify)


def _add_trust(sub: _Subparsers) -> None:
    trust = sub.add_parser("trust", help="show or edit the trust policy (like podman image trust)")
    trust_sub = trust.add_subparsers(dest="trust_command", metavar="COMMAND")
    trust_sub.required = True
    show = trust_sub.add_parser("show", help="show the effective trust policy")
    show.add_argument("--json", action="store_true", help="print the policy as JSON")
    show.set_defaults(func=_trust_show)
    tset = trust_sub.add_parser(
        "set", help="set the requirement for a scope in your policy file",
        description="Set SCOPE's requirement in $XDG_CONFIG_HOME/containers/policy.json. "
                    "SCOPE is 'default', a registry, a namespace, a repository or a reference.")
    tset.add_argument("scope", metavar="SCOPE")
    tset.add_argument("--type", "-t", required=True, dest="trust_type",
                      choices=["accept", "reject", "signedBy", "sigstoreSigned"])
    tset.add_argument("--pubkeysfile", "-f", type=Path, action="append", default=[],
                      metavar="FILE", help="a public key file (repeatable)")
    tset.set_defaults(func=_trust_set)
    texp = trust_sub.add_parser(
        "export", help="the trust policy as a cluster's admission policy (YAML)",
        description="Write the effective trust policy's key requirements as sigstore "
                    "policy-controller ClusterImagePolicy documents or a Kyverno ClusterPolicy "
                    "(docs/kubernetes.md). What cannot be stated exactly is refused, naming "
                    "the scope. Exit 0 written, 1 refused or an error, 2 usage.")
    texp.add_argument("--format", required=True, dest="export_format",
                      choices=["policy-controller", "kyverno"])
    texp.add_argument("-o", "--output", type=Path, metavar="FILE",
                      help="write the YAML to FILE (atomically) instead of stdout")
    texp.add_argument("--policy", type=Path, metavar="PATH",
                      help="export this containers-policy.json instead of the effective one")
    texp.set_defaults(func=_trust_export)


def _add_verify_bundle(sub: _Subparsers) -> None:
    vb = sub.add_parser(
        "verify-bundle", help="check a Sigstore bundle for a file or a sha256: digest",
        description="Verify a Sigstore bundle (v0.1-v0.3) offline against a trusted root "
                    "(default: Sigstore's public-good root shipped with secpod). "
                    "Exit 0 accepted, 1 rejected, 2 unusable input.")
    vb.add_argument("artifact", metavar="FILE_OR_DIGEST",
                    help="the signed file, or sha256:HEX of it")
    vb.add_argument("--bundle", type=Path, required=True, metavar="FILE")
    vb.add_argument("--key", type=Path, metavar="PEM", help="the signer's public key")
    vb.add_argument("--certificate-identity", metavar="ID")
    vb.add_argument("--certificate-oidc-issuer", metavar="URL")
    vb.add_argument("--trusted-root", type=Path, metavar="FILE")
    vb.set_defaults(func=_verify_bundle)


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "key": _add_key,
    "sign": _add_sign,
    "attest": _add_attest,
    "verify": _add_verify,
    "verify-bundle": _add_verify_bundle,
    "trust": _add_trust,
}


@record(frozen=True)
class _Target:
    """The image a command acts on: from the store, or a dir: layout."""

    label: str
    reference: Reference | None
    digest: str
    manifest: bytes | None
    dir_path: Path | None
    signatures: tuple[bytes, ...]
    bundles: tuple[bytes, ...] = ()


def _target(image: str, identity: str | None, *, need_manifest: bool) -> _Target:
    from secpod.errors import UsageError
    from secpod.signing import identity as ident
    from secpod.signing import store
    from secpod.signing.payload import manifest_digest

    if image.startswith("dir:"):
        path = Path(image[4:]).resolve()
        if not identity:
            raise UsageError("dir:PATH needs --identity REF",
                             hint="give the reference the image is claimed to have")
        claimed = ident.parse_named(identity)
        if claimed is None:
            raise UsageError(f"invalid --identity {identity!r}", hint="use NAME[:TAG][@DIGEST]")
        d = store.read_dir(path)
        if d.manifest is None and need_manifest:
            from secpod.errors import NotFound

            raise NotFound(f"{path} has no manifest.json")
        digest = manifest_digest(d.manifest) if d.manifest is not None else ""
        return _Target(image, claimed, digest, d.manifest, path, d.signatures)
    from secpod.images import Store
    from secpod.signing import trust

    st = Store.open()
    rec = st.resolve(image)
    ref: Reference | None
    if identity:
        ref = ident.parse_named(identity)
        if ref is None:
            raise UsageError(f"invalid --identity {identity!r}", hint="use NAME[:TAG][@DIGEST]")
    else:
        ref = trust.image_reference(image, rec.names, rec.digest)
    manifest = st.manifest_bytes(rec.digest)
    return _Target(image, ref, rec.digest, manifest, None,
                   tuple(store.signatures_for(rec.digest)), tuple(store.bundles_for(rec.digest)))


def _audit(action: str, outcome: str, **kw: Any) -> None:
    from secpod import audit

    audit.record(action, outcome, **kw)


def _key_generate(args: argparse.Namespace) -> int:
    import os

    from secpod.cli._output import status
    from secpod.errors import Conflict, Error
    from secpod.signing import keys

    prefix = args.output_key_prefix
    priv, pub = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    try:
        for p in (priv, pub):
            if p.exists() or p.is_symlink():
                raise Conflict(f"{p} already exists; refusing to overwrite a key",
                               hint="choose another --output-key-prefix or move the old key")
        passphrase = keys.read_passphrase(confirm=True, purpose=str(priv))
        priv_pem, pub_pem = keys.generate_key_pair(passphrase)
        written: list[Path] = []
        try:
            for path, data, mode in ((priv, priv_pem, 0o600), (pub, pub_pem, 0o644)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
                written.append(path)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as e:
            for path in written:
                path.unlink(missing_ok=True)
            if isinstance(e, FileExistsError):
                raise Conflict(f"{e.filename} already exists; refusing to overwrite a key") from e
            raise Conflict(f"cannot write {e.filename}: {e.strerror}") from e
    except Error as e:
        _audit("key.generate", "refused" if isinstance(e, Conflict) else "error",
               reason=e.message, details={"private_key": str(priv), "public_key": str(pub)})
        raise
    _audit("key.generate", "ok", details={"private_key": str(priv.resolve()),
                                          "public_key": str(pub.resolve())})
    status(f"Private key written to {priv}")
    status(f"Public key written to {pub}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_json
    from secpod.errors import Error, UsageError
    from secpod.signing import keys, sign, store

    image_ref: str | None = None
    digest: str | None = None
    try:
        t = _target(args.image, args.identity, need_manifest=True)
        digest = t.digest
        if t.reference is None:
            raise UsageError(f"{args.image} has no name to sign as",
                             hint="give --identity REF")
        image_ref = str(t.reference)
        if args.bundle:
            if args.key is None:
                raise UsageError("--bundle needs --key", hint="a bundle is signed by a cosign "
                                 "key (secpod key generate)")
            blob = _bundle_for(t, args.key, "--bundle")
            kind, signer = "sigstore-bundle", str(args.key)
        elif args.key is not None:
            blob = sign.sign_sigstore(keys.load_private_key(args.key), image_ref, t.digest)
            kind, signer = "sigstore", str(args.key)
        else:
            blob = sign.sign_gpg(args.gpg_key, image_ref, t.digest)
            kind, signer = "gpg", args.gpg_key
        staged = None
        if kind == "gpg" and t.dir_path is None:
            from secpod.signing.lookaside import stage_signature

            staged = stage_signature(t.reference, t.digest, blob)
        if args.bundle:
            path = store.add_bundle(t.digest, blob)
        elif t.dir_path is not None:
            path = store.add_dir_signature(t.dir_path, blob)
        else:
            path = store.add_signature(t.digest, blob)
    except Error as e:
        _audit("image.sign", "error", reason=e.message, image_ref=image_ref or args.image,
               image_digest=digest)
        raise
    result = {"image": args.image, "identity": image_ref, "digest": t.digest, "kind": kind,
              "signer": signer, "signature": str(path)}
    if staged is not None:
        from secpod.cli._output import status

        if staged.path is not None:
            result["lookaside"] = str(staged.path)
            status(f"signature also written to the lookaside store: {staged.path}")
        elif staged.warning:
            status(f"warning: {staged.warning}")
    _audit("image.sign", "ok", image_ref=image_ref, image_digest=t.digest,
           details={k: v for k, v in result.items() if k in ("kind", "signer", "signature",
                                                              "lookaside")})
    if args.json:
        emit_json(result)
    else:
        print(path)
    return 0


def _bundle_for(t: _Target, key: Path, flag: str, predicate_type: str | None = None,
                predicate: dict[str, Any] | None = None) -> bytes:
    """The bundle ``sign --bundle`` and ``attest`` write for ``t``: an image signature, or
    an attestation of ``predicate_type``. Raises UsageError for a dir: image."""
    from secpod.signing import imagebundles, keys

    if t.dir_path is not None:
        _no_dir(flag)
    assert t.reference is not None
    # The statement's subject name is the repository; what is signed is the digest.
    return imagebundles.make_bundle(keys.load_private_key(key), t.digest,
                                    t.reference.repository,
                                    predicate_type=predicate_type or imagebundles.PREDICATE_SIGN,
                                    predicate=predicate)


def _no_dir(flag: str) -> NoReturn:
    from secpod.errors import UsageError

    raise UsageError(f"{flag} cannot sign a dir: image (the layout has no place for "
                     "bundles)", hint="sign an image in your store")


def _attest(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_json
    from secpod.errors import Error, UsageError
    from secpod.signing import attestations, store
    from secpod.signing.imagebundles import bundle_name, predicate_type

    image_ref: str | None = None
    digest: str | None = None
    details: dict[str, Any] = {"kind": "attestation", "signer": str(args.key),
                               "type": args.attestation_type, "predicate": str(args.predicate)}
    try:
        if args.image.startswith("dir:"):
            _no_dir("attest")
        ptype = predicate_type(args.attestation_type)
        details["predicate_type"] = ptype
        predicate = attestations.read_predicate(args.predicate)
        t = _target(args.image, None, need_manifest=True)
        digest = t.digest
        if t.reference is None:
            raise UsageError(f"{args.image} has no name to attest",
                             hint="tag the image (secpod image tag) first")
        image_ref = str(t.reference)
        blob = _bundle_for(t, args.key, "attest", ptype, predicate)
        path = store.add_bundle(t.digest, blob)
    except Error as e:
        _audit("image.attest", "error", reason=e.message, image_ref=image_ref or args.image,
               image_digest=digest, details=details)
        raise
    details.update({"bundle": bundle_name(blob), "signature": str(path)})
    _audit("image.attest", "ok", image_ref=image_ref, image_digest=t.digest, details=details)
    if args.json:
        emit_json({"image": args.image, "identity": image_ref, "digest": t.digest,
                   **details})
    else:
        print(path)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_json, status
    from secpod.errors import Error
    from secpod.signing import policy as pol
    from secpod.signing import trust

    digest: str | None = None
    try:
        attestation = None
        matches: tuple[tuple[str, str], ...] = ()
        if args.predicate_match and args.attestation_type is None:
            from secpod.errors import UsageError

            raise UsageError("--predicate-match needs --attestation-type",
                             hint="it judges the predicate of the attestation asked for")
        if args.attestation_type is not None:
            from secpod.signing.attestations import parse_match
            from secpod.signing.imagebundles import predicate_type

            attestation = predicate_type(args.attestation_type)
            matches = tuple(parse_match(m) for m in args.predicate_match)
        t = _target(args.image, args.identity, need_manifest=False)
        digest = t.digest or None
        if args.key is not None:
            key_path = args.key.resolve()
            from secpod.signing import keys

            try:
                keys.load_public_key(key_path.read_bytes(), source=str(args.key))
            except OSError as e:
                from secpod.errors import NotFound

                raise NotFound(f"cannot read the public key {args.key}: {e.strerror}") from e
            from secpod.signing.identity import MatchRepository

            policy = pol.Policy(default=(pol.SigstoreSigned(
                key_path=str(key_path), signed_identity=MatchRepository()),))
            eff = trust.EffectivePolicy(policy, None, (
                f"only sigstore signatures by {args.key} count (this does not change what "
                "`secpod run` accepts)",))
        elif args.policy is not None:
            eff = trust.EffectivePolicy(trust.read_policy(args.policy), args.policy, (
                "explicit --policy (this does not change what `secpod run` accepts)",))
        else:
            eff = trust.effective_policy()
        decision = trust.decide(t.reference, t.manifest, list(t.signatures), policy=eff.policy,
                                policy_path=eff.path, notes=eff.notes, bundles=list(t.bundles),
                                admin=eff.admin, attestation=attestation,
                                predicate_match=matches)
    except Error as e:
        _audit("image.verify", "error", reason=e.message, image_ref=args.image,
               image_digest=digest)
        raise
    _audit("image.verify", "ok" if decision.accepted else "refused",
           reason=None if decision.accepted else "; ".join(decision.reasons),
           image_ref=decision.reference or args.image, image_digest=digest,
           trust=decision.as_dict())
    if args.json:
        emit_json({**decision.as_dict(), "digest": digest, "image": args.image})
    else:
        what = f" (attestation {attestation})" if attestation else ""
        print(f"{'accepted' if decision.accepted else 'rejected'}: {decision.reference}{what}")
        for note in decision.notes:
            status(f"note: {note}")
        status(f"policy: {decision.policy_path or '(built-in default)'}; scope: "
               f"{decision.scope or 'default'}")
        for reason in decision.reasons:
            status(f"  {reason}")
    return 0 if decision.accepted else 1


def _trust_show(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_json, emit_table, status
    from secpod.signing import trust

    eff = trust.effective_policy()
    if args.json:
        emit_json(trust.policy_json(eff))
        return 0
    status(f"policy: {eff.path or '(built-in default)'}")
    for note in eff.notes:
        status(f"note: {note}")
    rows = trust.describe_policy(eff)
    emit_table(["TRANSPORT", "SCOPE", "TYPE", "KEYS"],
               [[r["transport"], r["scope"], r["type"], ", ".join(r["keys"])] for r in rows])
    return 0


def _trust_set(args: argparse.Namespace) -> int:
    from secpod.cli._output import status
    from secpod.errors import Error, Refused
    from secpod.signing import trust

    details = {"scope": args.scope, "type": args.trust_type,
               "pubkeysfile": [str(p) for p in args.pubkeysfile]}
    try:
        path, _ = trust.set_trust(args.scope, args.trust_type, list(args.pubkeysfile))
    except Error as e:
        _audit("trust.set", "refused" if isinstance(e, Refused) else "error", reason=e.message,
               details=details)
        raise
    _audit("trust.set", "ok", details={**details, "policy_path": str(path)})
    status(f"{args.scope}: {args.trust_type} (written to {path})")
    return 0


def _trust_export(args: argparse.Namespace) -> int:
    import sys

    from secpod.cli._output import status
    from secpod.errors import Error, Refused
    from secpod.kube import admission
    from secpod.signing import trust

    details: dict[str, Any] = {"format": args.export_format,
                               "output": str(args.output) if args.output else None}
    try:
        if args.policy is not None:
            eff = trust.EffectivePolicy(trust.read_policy(args.policy), args.policy, ())
        else:
            eff = trust.effective_policy()
        details["policy_path"] = str(eff.path) if eff.path else None
        out = admission.export(eff.policy, args.export_format)
        source = str(eff.path) if eff.path else "secpod's built-in default policy"
        if eff.admin:
            source += " (the administrator's)"
        text = out.yaml(args.export_format, source)
        if args.output:
            from secpod._files import write_atomic

            write_atomic(args.output, text, mode=0o644)
    except Error as e:
        _audit("trust.export", "refused" if isinstance(e, Refused) else "error",
               reason=e.message, details=details)
        raise
    if args.output:
        status(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    for note in (*eff.notes, *out.notes):
        status(f"note: {note}")
    _audit("trust.export", "ok", details={**details, "documents": len(out.documents)})
    return 0


def _read_input(path: Path, limit: int, what: str) -> bytes:
    from secpod._files import TooLarge, read_limited
    from secpod.errors import UsageError

    try:
        return read_limited(path, limit)
    except TooLarge as e:
        raise UsageError(f"{what} {path} is larger than {limit} bytes") from e
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}") from e


def _verify_bundle(args: argparse.Namespace) -> int:
    import hashlib

    from secpod.cli._output import status
    from secpod.errors import Error, UsageError
    from secpod.signing import bundle, keys, trustedroot

    details = {"bundle": str(args.bundle), "artifact": args.artifact}
    if args.key is not None:
        details["key"] = str(args.key)
    if args.certificate_identity is not None:
        details["certificate_identity"] = args.certificate_identity
        details["certificate_oidc_issuer"] = args.certificate_oidc_issuer
    try:
        if (args.key is None) == (args.certificate_identity is None):
            raise UsageError("give --key PEM, or --certificate-identity and "
                             "--certificate-oidc-issuer")
        if args.certificate_identity is not None and args.certificate_oidc_issuer is None:
            raise UsageError("--certificate-identity needs --certificate-oidc-issuer")
        key = None
        if args.key is not None:
            key = keys.load_public_key(_read_input(args.key, 64 * 1024, "the key"),
                                       source=str(args.key))
        if args.artifact.startswith("sha256:"):
            try:
                digest = bytes.fromhex(args.artifact[7:])
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise UsageError(f"{args.artifact!r} is not a sha256:HEX digest")
            artifact = bundle.Artifact(sha256=digest)
        else:
            path = Path(args.artifact)
            with path.open("rb") if path.exists() else _missing(path) as f:
                h, data = hashlib.sha256(), bytearray()
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    data += chunk
            artifact = bundle.Artifact(sha256=h.digest(), data=bytes(data))
        root = trustedroot.load_trusted_root(args.trusted_root)
        data_b = _read_input(args.bundle, bundle.MAX_BUNDLE, "the bundle")
        times = bundle.verify_bundle(data_b, artifact, root, key=key,
                                     identity=args.certificate_identity,
                                     issuer=args.certificate_oidc_issuer)
    except Error as e:
        _audit("bundle.verify", "refused", reason=e.message, details=details)
        raise
    _audit("bundle.verify", "ok", details={**details, "times": [t.isoformat() for t in times]})
    print(f"accepted: {args.artifact}")
    status(f"signed at {', '.join(t.isoformat() for t in times)}")
    return 0


def _missing(path: Path) -> Any:
    from secpod.errors import UsageError

    raise UsageError(f"cannot read the artifact {path}: no such file")
