"""The trust decision: which policy applies, and what it says about one image.

Where the policy comes from, in order:

1. the administrator's floor, when it names a trust policy: then nothing a
   user has (their policy file, ``--policy``) is used, and the decision says so;
2. an explicit ``policy_path``;
3. ``$XDG_CONFIG_HOME/containers/policy.json`` (rootless Podman's user file);
4. ``/etc/containers/policy.json``;
5. the built-in default ``{"default":[{"type":"insecureAcceptAnything"}]}``
   (Debian's), which the decision names as such.
"""

from __future__ import annotations

import os
from pathlib import Path

from secpod._record import record
from secpod.errors import Error, Refused, SignatureRejected, TrustPolicyError, VerificationError
from secpod.images import reference as refs
from secpod.images.reference import Reference
from secpod.signing import policy as pol
from secpod.signing import requirements, store

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

SYSTEM_POLICY = Path("/etc/containers/policy.json")
MAX_POLICY = 1024 * 1024


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class TrustDecision:
    """The verdict on one image and why: what the runner refuses on and the audit keeps."""

    accepted: bool
    reference: str
    scope: str
    requirements: tuple[str, ...]
    policy_path: str | None
    reasons: tuple[str, ...]
    notes: tuple[str, ...] = ()
    evidence: tuple[dict[str, object], ...] = ()
    attestation: str | None = None
    required_attestations: tuple[str, ...] = ()  # the scope's requireAttestations, described

    def as_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"attestation": self.attestation} if self.attestation else {}
        if self.required_attestations:
            extra["required_attestations"] = list(self.required_attestations)
        return {**extra,
            "accepted": self.accepted,
            "reference": self.reference,
            "scope": self.scope,
            "requirements": list(self.requirements),
            "policy_path": self.policy_path,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "evidence": [dict(e) for e in self.evidence],
        }


def user_policy_path() -> Path:
    """Rootless Podman's user policy: ``$XDG_CONFIG_HOME/containers/policy.json``."""
    value = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(value) if value and os.path.isabs(value) else Path.home() / ".config"
    return base / "containers" / "policy.json"


def admin_trust_policy() -> Path | None:
    """The trust policy the administrator's floor names, if any.

    It is held to the floor's own rule (owned by root, as is its folder, and
    writable by no one else), so a user cannot edit or swap the policy they
    cannot replace. Raises the floor's own error (AdminPolicyError) when /etc/secpod
    or the trust policy file is unsafe, or the floor is malformed.
    """
    from secpod.policies.floor import check_admin_file, load_admin_policy

    floor = load_admin_policy()
    if floor is None or floor.trust_policy_path is None:
        return None
    path = Path(floor.trust_policy_path)
    try:
        check_admin_file(path)
    except FileNotFoundError as e:
        raise TrustPolicyError(f"the administrator's trust policy {path} does not exist",
                               hint="ask the administrator to fix [trust] policy in "
                               f"{floor.path}") from e
    return path


def read_policy(path: Path) -> pol.Policy:
    """Read and parse a policy file. Raises TrustPolicyError (malformed) or VerificationError."""
    from secpod._files import TooLarge, read_limited

    try:
        data = read_limited(path, MAX_POLICY)
    except TooLarge as e:
        raise TrustPolicyError(f"the trust policy {path} is larger than {MAX_POLICY} bytes") from e
    except OSError as e:
        raise VerificationError(f"cannot read the trust policy {path}: {e.strerror}",
                                hint="fix the path or the file's permissions") from e
    return pol.parse_policy(data, source=str(path))


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class EffectivePolicy:
    """The policy that decides, where it came from, and what was ignored and why."""

    policy: pol.Policy
    path: Path | None
    notes: tuple[str, ...]
    admin: bool = False


def effective_policy(policy_path: Path | None = None) -> EffectivePolicy:
    """The policy that decides, with notes on what was ignored and why.

    Raises TrustPolicyError / VerificationError when the chosen file is unusable
    (never falls back to a weaker file when the chosen one is broken).
    """
    admin = admin_trust_policy()
    if admin is not None:
        notes = [f"the administrator's trust policy {admin} applies"]
        user = user_policy_path()
        if policy_path is not None:
            notes.append(f"the requested policy {policy_path} is ignored")
        elif user.exists():
            notes.append(f"your policy {user} is ignored")
        return EffectivePolicy(read_policy(admin), admin, tuple(notes), admin=True)
    if policy_path is not None:
        return EffectivePolicy(read_policy(policy_path), policy_path, ())
    for candidate in (user_policy_path(), SYSTEM_POLICY):
        if candidate.exists():
            return EffectivePolicy(read_policy(candidate), candidate, ())
    return EffectivePolicy(pol.BUILTIN_DEFAULT, None, (
        "no policy.json found: secpod's built-in default accepts any image "
        "(insecureAcceptAnything)",))


def normalise(reference: str) -> Reference:
    """``busybox`` -> ``docker.io/library/busybox:latest``. Raises UsageError."""
    return refs.parse(reference)


def image_reference(typed: str, names: tuple[str, ...] | list[str],
                    digest: str) -> Reference | None:
    """The reference the trust policy judges (and the audit records) for the image the
    user called ``typed``; ``names`` are the image's normalised names, ``digest`` its
    manifest digest. ``run``, ``create`` and ``verify`` all ask this.

    ``typed`` itself, normalised, when it names this image (``busybox`` is
    ``docker.io/library/busybox:latest``, whatever other names the image has;
    ``NAME@DIGEST`` of this image's digest); otherwise (a digest or an id prefix) the
    image's first name; None for an image without a name (the policy's default then).
    """
    try:
        parsed = refs.parse(typed)
    except Error:
        parsed = None
    if parsed is not None:
        if parsed.digest is None and str(parsed) in names:
            return parsed
        if parsed.digest is not None and parsed.digest == digest:
            return parsed
    return refs.parse(names[0]) if names else None


def bundle_settings_path(policy_path: Path | None) -> Path | None:
    """The bundle settings beside a policy: ``DIR/NAME.json`` -> ``DIR/NAME.bundles.json``;
    None for the built-in policy (:mod:`secpod.signing.imagebundles` reads them)."""
    if policy_path is None:
        return None
    stem = policy_path.name[:-5] if policy_path.name.endswith(".json") else policy_path.name
    return policy_path.with_name(stem + ".bundles.json")


def _has_bundle_settings(policy_path: Path | None) -> bool:
    """Whether bundle settings lie beside ``policy_path``: then they are read for every image,
    bundles or not, since a scope may require attestations (and a malformed file is always
    reported, never ignored). No file: a run never loads the bundle code."""
    path = bundle_settings_path(policy_path)
    return path is not None and (path.exists() or path.is_symlink())


def decide(ref: Reference | None, manifest_bytes: bytes | None, signatures: list[bytes], *,
           policy: pol.Policy, policy_path: Path | None, notes: tuple[str, ...] = (),
           scope_ref: Reference | None = None, bundles: list[bytes] | None = None,
           admin: bool = False, attestation: str | None = None,
           predicate_match: tuple[tuple[str, str], ...] = ()) -> TrustDecision:
    """Evaluate ``policy`` for an image; every requirement is evaluated for its reason.

    ``ref`` is the identity the image is claimed to have; ``scope_ref`` (default
    ``ref``) picks the policy scope. ``bundles`` are the image's Sigstore bundles, judged
    under the bundle settings beside ``policy_path`` (:mod:`secpod.signing.imagebundles`;
    ``admin``: that policy is the administrator's). The decision's evidence lists every
    signature and bundle looked at. ``attestation`` (a predicate type) asks instead for
    an in-toto attestation of that type among the bundles, verified by a
    ``sigstoreSigned`` requirement of the scope (a scope without one cannot accept it),
    whose predicate has ``predicate_match``'s exact values. Without ``attestation``, the
    attestations the bundle settings' scope requires (``requireAttestations``) are judged
    too (:func:`secpod.signing.imagebundles.check_required`): one not met is a rejection.
    Never raises SignatureRejected; raises
    VerificationError / KeyFormatError / TrustPolicyError when a requirement or the
    bundle settings cannot be prepared.
    """
    lookup = scope_ref or ref
    if lookup is not None:
        scope, specs = policy.requirements_for(lookup)
    else:
        scope, specs = "", policy.default
    if not specs:
        # The parser never yields an empty list; a hand-built Policy must not either.
        raise VerificationError("an empty requirement list cannot decide",
                                hint="every scope needs at least one requirement")
    prepared = [requirements.prepare(s) for s in specs]
    ctx = None
    if (bundles and any(s.type == "sigstoreSigned" for s in specs)) or (
            attestation is None and _has_bundle_settings(policy_path)):
        from secpod.signing import imagebundles

        ctx = imagebundles.context(policy_path, lookup, admin=admin)
    image = requirements.ImageUnderTest(reference=ref, manifest=manifest_bytes,
                                        signatures=tuple(signatures),
                                        bundles=tuple(bundles or ()), bundle_context=ctx,
                                        attestation=attestation,
                                        predicate_match=predicate_match)
    reasons: list[str] = []
    accepted = True
    if attestation is not None and not any(s.type == "sigstoreSigned" for s in specs):
        accepted = False
        reasons.append(f"attestation {attestation}: rejected: the scope's requirements name no "
                       "sigstoreSigned key or identity to verify an attestation with")
    for req in prepared:
        try:
            reasons.append(req.check(image))
        except SignatureRejected as e:
            accepted = False
            reasons.append(f"{req.type}: rejected: {e.message}")
    required: tuple[str, ...] = ()
    if attestation is None and ctx is not None and ctx.options.require_attestations:
        from secpod.signing import imagebundles

        met, why = imagebundles.check_required(
            [r for r in prepared if r.type == "sigstoreSigned"], image, ctx)
        accepted = accepted and met
        reasons.extend(why)
        required = tuple(n.describe() for n in ctx.options.require_attestations)
    return TrustDecision(
        accepted=accepted,
        reference=str(ref) if ref is not None else "",
        scope=scope,
        requirements=tuple(s.type for s in specs),
        policy_path=str(policy_path) if policy_path is not None else None,
        reasons=tuple(reasons),
        notes=notes,
        evidence=tuple(image.evidence),
        attestation=attestation,
        required_attestations=required,
    )


def evaluate_image(reference: str | Reference | None, manifest_digest: str,
                   manifest_bytes: bytes, *, policy_path: Path | None = None) -> TrustDecision:
    """The runner's check: the effective policy for ``reference`` (the runner passes
    :func:`image_reference`'s answer; a string is normalised; None, an image without a
    name, gets the policy's default), over the stored signatures.

    Never raises SignatureRejected (a rejection is ``accepted=False``). Raises
    VerificationError / TrustPolicyError / KeyFormatError when the check cannot
    run, and UsageError for a malformed reference string.
    """
    ref = normalise(reference) if isinstance(reference, str) else reference
    eff = effective_policy(policy_path)
    from secpod.signing.payload import manifest_digest as compute

    try:
        actual = compute(manifest_bytes)
    except SignatureRejected:
        actual = None
    if actual != manifest_digest:
        raise VerificationError(
            f"the manifest does not hash to {manifest_digest}",
            hint="the image store is damaged; re-import the image")
    return decide(ref, manifest_bytes, store.signatures_for(manifest_digest), policy=eff.policy,
                  policy_path=eff.path, notes=eff.notes,
                  bundles=store.bundles_for(manifest_digest), admin=eff.admin)


# --- editing the user's policy (`secpod trust set`) ---------------------------------------

TRUST_TYPES = {"accept": "insecureAcceptAnything", "reject": "reject", "signedBy": "signedBy",
               "sigstoreSigned": "sigstoreSigned"}


def _base_policy_for_edit() -> pol.Policy:
    user = user_policy_path()
    if user.exists():
        return read_policy(user)
    if SYSTEM_POLICY.exists():
        return read_policy(SYSTEM_POLICY)
    return pol.BUILTIN_DEFAULT


def set_trust(scope: str, trust_type: str, pubkeys: list[Path]) -> tuple[Path, pol.Policy]:
    """Set the requirement for ``scope`` (``default`` or a docker scope) in the user's file.

    Like ``podman image trust set``: starts from the user's policy (or the
    system's, or the built-in default), replaces that scope's requirements,
    and writes the user's file atomically. Raises UsageError (bad arguments),
    Refused (the administrator's policy applies), TrustPolicyError, or Error (the
    file cannot be written; the old one is kept).
    """
    from secpod.errors import UsageError

    if trust_type not in TRUST_TYPES:
        raise UsageError(f"unknown trust type {trust_type!r}",
                         hint="use accept, reject, signedBy or sigstoreSigned")
    admin = admin_trust_policy()
    if admin is not None:
        raise Refused(f"the administrator's trust policy {admin} applies; a user policy "
                      "would be ignored", hint="ask the administrator to change it")
    kind = TRUST_TYPES[trust_type]
    if kind in ("signedBy", "sigstoreSigned") and not pubkeys:
        raise UsageError(f"--type {trust_type} needs at least one --pubkeysfile")
    if kind not in ("signedBy", "sigstoreSigned") and pubkeys:
        raise UsageError(f"--pubkeysfile does not apply to --type {trust_type}")
    keys = [str(p.resolve()) for p in pubkeys]
    for k in keys:
        if not Path(k).is_file():
            raise UsageError(f"public key file {k} does not exist")
    req: pol.RequirementSpec
    if kind == "insecureAcceptAnything":
        req = pol.InsecureAcceptAnything()
    elif kind == "reject":
        req = pol.RejectRequirement()
    elif kind == "signedBy":
        req = pol.SignedBy(key_type="GPGKeys", key_path=keys[0] if len(keys) == 1 else None,
                           key_paths=tuple(keys) if len(keys) > 1 else None)
    else:
        from secpod._files import read_limited
        from secpod.signing import keys as keymod

        for k in keys:
            try:
                data = read_limited(Path(k), requirements.MAX_KEY_FILE)
            except OSError as e:
                raise UsageError(f"cannot read the public key file {k}: {e.strerror}",
                                 hint="give a cosign public key (-----BEGIN PUBLIC KEY-----)"
                                 ) from e
            keymod.load_public_key(data, source=k)
        req = pol.SigstoreSigned(key_path=keys[0] if len(keys) == 1 else None,
                                 key_paths=tuple(keys) if len(keys) > 1 else None)
    base = _base_policy_for_edit()
    if scope == "default":
        new = pol.Policy(default=(req,), transports=base.transports)
    else:
        if not scope or any(c.isspace() for c in scope):
            raise UsageError(f"invalid scope {scope!r}",
                             hint="use default, a registry, a repository or a reference")
        transports = {t: dict(s) for t, s in base.transports.items()}
        transports.setdefault("docker", {})[scope] = (req,)
        new = pol.Policy(default=base.default, transports=transports)
    data = new.dumps()
    pol.parse_policy(data, source="(the new policy)")  # never write what we cannot read back
    path = user_policy_path()
    from secpod._files import write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Error(f"cannot write {path}: {e.strerror}",
                    hint="check that the folder is yours and writable") from e
    write_atomic(path, data, mode=0o644, durable=True)
    return path, new


def describe_policy(eff: EffectivePolicy) -> list[dict[str, Any]]:
    """Rows for ``secpod trust show``: one per scope, default first."""
    rows = [{"transport": "", "scope": "default", "type": _types(eff.policy.default),
             "keys": _keys(eff.policy.default)}]
    for transport, scopes in sorted(eff.policy.transports.items()):
        for scope, reqs in sorted(scopes.items()):
            rows.append({"transport": transport, "scope": scope or "(all)",
                         "type": _types(reqs), "keys": _keys(reqs)})
    return rows


def _types(reqs: tuple[pol.RequirementSpec, ...]) -> str:
    names = {"insecureAcceptAnything": "accept"}
    return ",".join(names.get(r.type, r.type) for r in reqs)


def _keys(reqs: tuple[pol.RequirementSpec, ...]) -> list[str]:
    out: list[str] = []
    for r in reqs:
        if isinstance(r, pol.SignedBy | pol.SigstoreSigned):
            if r.key_path:
                out.append(r.key_path)
            out.extend(r.key_paths or ())
            if r.key_data is not None:
                out.append("(keyData)")
        if isinstance(r, pol.SigstoreSigned):
            out.extend("(keyData)" for _ in r.key_datas or ())
            if r.fulcio is not None:
                out.append(f"fulcio:{r.fulcio.subject_email}")
            if r.pki is not None:
                out.append(f"pki:{r.pki.subject_email or r.pki.subject_hostname}")
    return out


def policy_json(eff: EffectivePolicy) -> dict[str, Any]:
    return {"policy_path": str(eff.path) if eff.path else None, "admin": eff.admin,
            "notes": list(eff.notes), "policy": eff.policy.as_json()}

