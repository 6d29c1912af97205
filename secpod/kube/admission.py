"""``secpod trust export``: the trust policy as a cluster's image admission policy.

A containers-policy.json(5) (parsed by :mod:`secpod.signing.policy`) becomes sigstore
policy-controller ``ClusterImagePolicy`` documents or one Kyverno ``ClusterPolicy`` with
``verifyImages`` rules, so that a cluster admits the images the host runs. Only what
the target states exactly is exported; anything else is refused naming the scope
(never widened, never narrowed without saying so). docs/kubernetes.md lists each rule.

How the two differ from containers/image, and what that forces here:

- containers/image applies the most specific scope only. policy-controller applies
  every policy whose glob matches (all must pass), so a scope inside another may only
  differ from it where the result is the same (the inner one rejects, or the outer one
  accepts). Kyverno skips references (``skipImageReferences``), so the outer rule skips
  every scope inside it.
- policy-controller's ``*`` stays within one ``/`` component and ``**`` crosses them;
  it matches ``ref.Name()`` of go-containerregistry (``index.docker.io/library/x:tag``,
  ``repo@digest``). Kyverno's ``*`` crosses ``/`` and it matches ``registry/path:tag``
  or ``registry/path@digest`` as written (``docker.io/busybox`` and
  ``docker.io/library/busybox`` are two strings for one image).
- Both resolve tags to digests before they check, so a ``repo:tag`` scope is refused.
- Neither checks the reference a signature names (``signedIdentity``): said as a note.
"""

from __future__ import annotations

import hashlib
import re

from secpod._record import record
from secpod.errors import Refused
from secpod.images import reference as refs
from secpod.kube import names
from secpod.signing import policy as pol

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

FORMATS = ("policy-controller", "kyverno")
PC_API = "policy.sigstore.dev/v1beta1"
KYVERNO_API = "kyverno.io/v1"
INCLUDE_LABEL = "policy.sigstore.dev/include"
SCOPE_ANNOTATION = "secpod.io/trust-scope"
# policy-controller's own check of a glob (pkg/apis/glob: validGlob).
PC_GLOB = re.compile(r"[a-zA-Z0-9\-_:/*.@]+")
_HUB = "docker.io"
_HUB_PC = "index.docker.io"  # go-containerregistry's name for Docker Hub
# The identities that differ from each other only in how a tag is compared: neither
# target checks the signed reference at all, which the export says.
_SAME_REPOSITORY = ("matchRepoDigestOrExact", "matchRepository", "matchExact")


@record(frozen=True)
class Rule:
    """What a scope asks: ``accept``, ``reject``, or ``keys`` (every key set must be
    satisfied, each by one signature of one of its keys: PEM texts)."""

    kind: str
    keysets: tuple[tuple[str, ...], ...] = ()

    def describe(self) -> str:
        if self.kind != "keys":
            return self.kind
        return "sigstoreSigned by " + " and ".join(
            f"one of {len(k)} keys" if len(k) > 1 else "a key" for k in self.keysets)


@record(frozen=True)
class Scope:
    """A docker scope as the host matches it.

    ``kind`` is ``all`` (the default, or the transport's ``""``), ``wildcard``
    (``*.DOMAIN``, ``value`` DOMAIN), ``host`` (``host[:port]``), ``path`` (a namespace
    or repository, ``value`` DOMAIN/PATH) or ``digest`` (``value`` DOMAIN/PATH@DIGEST).
    """

    label: str
    kind: str
    value: str
    rule: Rule


@record(frozen=True, eq=False)
class Exported:
    """The documents, and what the cluster's administrator must know (for stderr)."""

    documents: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]

    def yaml(self, fmt: str, source: str) -> str:
        import yaml  # type: ignore[import-untyped]  # no stubs in Debian's python3-yaml

        from secpod import __version__

        class Dumper(yaml.SafeDumper):  # type: ignore[misc]  # untyped base
            pass

        def text(dumper: Any, data: str) -> Any:
            style = "|" if "\n" in data else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

        Dumper.add_representer(str, text)
        head = [f"made by secpod trust export --format {fmt} (secpod {__version__})",
                f"from {source}", *(f"note: {n}" for n in self.notes)]
        comment = "".join(f"# {line}\n" for line in head)
        body: str = yaml.dump_all(list(self.documents), Dumper=Dumper, sort_keys=False,
                                  default_flow_style=False)
        return comment + body


# --- the host's side: scopes and what each asks ------------------------------------------


def _keys(spec: pol.SigstoreSigned, label: str) -> tuple[str, ...]:
    from secpod.signing import keys as keymod
    from secpod.signing.requirements import _read

    paths = [spec.key_path] if spec.key_path else list(spec.key_paths or ())
    datas = [spec.key_data] if spec.key_data is not None else list(spec.key_datas or ())
    loaded = [keymod.load_public_key(_read(p, "public key"), source=p) for p in paths]
    loaded += [keymod.load_public_key(d, source=f"{label}: keyData") for d in datas]
    return tuple(sorted({keymod.public_key_pem(k).decode() for k in loaded}))


def _unexportable(label: str, what: str, hint: str) -> Refused:
    return Refused(f"scope {label}: {what}", hint=hint)


def rule_of(label: str, reqs: tuple[pol.RequirementSpec, ...], notes: list[str]) -> Rule:
    """What the requirement list of scope ``label`` asks. Raises Refused for what no
    cluster target states (GPG, Fulcio/PKI, Rekor keys, identities naming another
    image), KeyFormatError / VerificationError for a key that cannot be read."""
    reject = False
    keysets: list[tuple[str, ...]] = []
    for req in reqs:
        if isinstance(req, pol.InsecureAcceptAnything):
            continue
        if isinstance(req, pol.RejectRequirement):
            reject = True
            continue
        if isinstance(req, pol.SigstoreSigned):
            if req.fulcio is not None or req.pki is not None:
                raise _unexportable(label, "keyless (fulcio or pki) sigstoreSigned requirements "
                                    "are not exported", "only key requirements (keyPath, "
                                    "keyPaths, keyData, keyDatas) are exported")
            if (req.rekor_public_key_path or req.rekor_public_key_paths
                    or req.rekor_public_key_data is not None or req.rekor_public_key_datas):
                raise _unexportable(label, "a Rekor public key requirement cannot be exported",
                                    "the exported policy would not ask for the Rekor entry "
                                    "the host asks for")
            ident = req.signed_identity.type
            if ident not in _SAME_REPOSITORY:
                raise _unexportable(label, f"signedIdentity {ident} cannot be exported",
                                    "the cluster checks signatures found beside the image "
                                    "and never the reference they name")
            note = (f"scope {label}: signedIdentity ({ident}) is not checked by the cluster: "
                    "a signature by the key over the image's digest suffices there")
            if note not in notes:
                notes.append(note)
            keysets.append(_keys(req, label))
            continue
        if req.type == "signedBaseLayer":
            reject = True  # containers/image never implemented it: it always rejects
            continue
        raise _unexportable(label, f"{req.type} (GPG simple signing) cannot be exported",
                            "policy-controller and Kyverno verify sigstore signatures only: "
                            "sign with `secpod sign --key` and trust the key with "
                            "`secpod trust set --type sigstoreSigned`")
    if reject:
        return Rule("reject")
    if keysets:
        return Rule("keys", tuple(sorted(set(keysets))))
    return Rule("accept")


def _is_registry(host: str) -> bool:
    return refs._DOMAIN.fullmatch(host) is not None and (
        "." in host or ":" in host or host == "localhost")


def classify(scope: str) -> tuple[str, str] | None:
    """``(kind, value)`` of a docker scope; None for a scope no image ever matches on
    the host (not fully qualified: scopes are compared with normalised names).
    Raises Refused for a ``repo:tag`` scope."""
    if scope == "":
        return "all", ""
    if scope.startswith("*."):
        domain = scope[2:]
        return ("wildcard", domain) if _is_registry(f"x.{domain}") and ":" not in domain \
            else None
    if "/" not in scope:
        return ("host", scope) if _is_registry(scope) and scope != _HUB_PC else None
    host, _, rest = scope.partition("/")
    repo, at, digest = rest.partition("@")
    path, colon, tag = repo.partition(":")
    if not _is_registry(host) or host == _HUB_PC or (at and not refs._DIGEST.fullmatch(digest)) \
            or not all(refs._COMPONENT.fullmatch(c) for c in path.split("/")) \
            or (colon and (at or not refs._TAG.fullmatch(tag))):
        return None
    if host == _HUB and "/" not in path and (at or colon):
        return None  # the host's names are docker.io/library/NAME, never docker.io/NAME
    if colon:
        raise Refused(f"scope {scope}: a tag scope cannot be exported",
                      hint="policy-controller and Kyverno resolve tags to digests before they "
                           "check an image: use the repository, or repository@digest")
    return ("digest", scope) if at else ("path", scope)


def scopes_of(policy: pol.Policy, notes: list[str]) -> list[Scope]:
    """The policy's docker scopes, the default first (as ``all``)."""
    docker = dict(policy.transports.get("docker", {}))
    for transport in sorted(t for t in policy.transports if t != "docker"):
        notes.append(f"transport {transport}: not exported (a cluster pulls docker "
                     "references only)")
    out: list[Scope] = []
    if "" in docker:
        notes.append('the docker transport\'s "" scope applies to every image: the '
                     "default requirement is not used")
        out.append(Scope('docker ""', "all", "", rule_of('docker ""', docker.pop(""), notes)))
    else:
        out.append(Scope("default", "all", "", rule_of("default", policy.default, notes)))
    for label in sorted(docker):
        kv = classify(label)
        if kv is None:
            notes.append(f"scope {label}: skipped, it matches no image on the host either "
                         "(scopes are fully qualified: docker.io/library/busybox)")
            continue
        out.append(Scope(label, kv[0], kv[1], rule_of(label, docker[label], notes)))
    return out


def _host_of(scope: Scope) -> str:
    """The registry host (without port) a host, path or digest scope lies on."""
    host = scope.value if scope.kind == "host" else scope.value.split("/", 1)[0]
    return host.rsplit(":", 1)[0] if not host.startswith("[") else host


def contains(outer: Scope, inner: Scope) -> bool:
    """Whether every image ``inner`` matches on the host is matched by ``outer`` too."""
    if outer is inner or inner.kind == "all":  # a policy has one scope of kind all
        return False
    if outer.kind == "all":
        return True
    if outer.kind == "wildcard":
        tail = "." + outer.value
        if inner.kind == "wildcard":
            return inner.value.endswith(tail)
        return _host_of(inner).endswith(tail)
    if inner.kind == "wildcard":
        return False
    if outer.kind == "host":
        if inner.kind == "host":
            return False  # scopes are distinct: another host
        return inner.value.split("/", 1)[0] == outer.value
    if outer.kind == "path":
        if inner.kind == "host":
            return False
        repo = inner.value.split("@", 1)[0]
        return (repo == outer.value and inner.kind == "digest") or \
            repo.startswith(outer.value + "/")
    return False  # a digest scope holds one image, which no other digest scope names


# --- the cluster's side -------------------------------------------------------------------


def pc_globs(scope: Scope) -> list[str]:
    """policy-controller globs matching exactly the images ``scope`` matches on the host."""
    if scope.kind == "all":
        return ["**"]
    if scope.kind == "wildcard":
        if scope.value == _HUB:
            raise Refused(f"scope {scope.label}: cannot be exported to policy-controller",
                          hint="policy-controller names Docker Hub index.docker.io, which "
                               "*.docker.io would match; the host's *.docker.io does not "
                               "match Docker Hub images")
        globs = [f"*.{scope.value}/**", f"*.{scope.value}:*/**"]
    elif scope.kind == "host":
        globs = [f"{_HUB_PC if scope.value == _HUB else scope.value}/**"]
    else:
        host, rest = scope.value.split("/", 1)
        repo = f"{_HUB_PC if host == _HUB else host}/{rest}"
        if scope.kind == "digest":
            globs = [repo]
        elif host == _HUB and "/" not in rest:
            # docker.io/NAME is a namespace only: the host names NAME docker.io/library/NAME
            globs = [f"{repo}/**"]
        else:
            globs = [f"{repo}/**", f"{repo}:*", f"{repo}@*"]
    for g in globs:
        if not PC_GLOB.fullmatch(g):
            raise Refused(f"scope {scope.label}: {g!r} is not a glob policy-controller accepts",
                          hint="policy-controller's globs are made of letters, digits and "
                               "-_:/*.@ only")
    return globs


def kyverno_refs(scope: Scope) -> list[str]:
    """Kyverno imageReferences matching exactly the images ``scope`` matches on the host
    (Kyverno's defaults: defaultRegistry docker.io, registry mutation on)."""
    if scope.kind == "all":
        return ["*"]
    if scope.kind == "wildcard":
        raise Refused(f"scope {scope.label}: cannot be exported to Kyverno",
                      hint="Kyverno's * also matches '/', so *.DOMAIN/* would match images "
                           "of other registries; name each registry, or use --format "
                           "policy-controller")
    if scope.kind == "host":
        hosts = [scope.value, _HUB_PC] if scope.value == _HUB else [scope.value]
        return [f"{h}/*" for h in hosts]
    host, rest = scope.value.split("/", 1)
    path, _, digest = rest.partition("@")
    hosts = [host, _HUB_PC] if host == _HUB else [host]
    paths = [path]
    if host == _HUB and path == "library":
        raise Refused(f"scope {scope.label}: cannot be exported to Kyverno",
                      hint="Kyverno sees docker.io/busybox for docker.io/library/busybox, and "
                           "its * also matches '/': name the repositories instead")
    if host == _HUB and path.startswith("library/") and path.count("/") == 1:
        paths.append(path.removeprefix("library/"))  # busybox is docker.io/busybox there
    out: list[str] = []
    single = host == _HUB and "/" not in path  # a namespace only (see pc_globs)
    for h in hosts:
        for p in paths if not single else ():
            if digest:
                out.append(f"{h}/{p}@{digest}")
            else:
                out += [f"{h}/{p}:*", f"{h}/{p}@*"]
        if not digest:
            out.append(f"{h}/{path}/*")
    return out


def _name(scope: Scope, n: int, taken: set[str]) -> str:
    digest = hashlib.sha256(f"{scope.label}\0{n}".encode()).hexdigest()[:8]
    base = names.dns_label(scope.label or "default", limit=40)
    return names.unique(f"secpod-{base}-{digest}", taken)


def _conflicts(scopes: list[Scope], binding: Callable[[Scope], bool]) -> None:
    for inner in scopes:
        for outer in scopes:
            if outer is inner or not contains(outer, inner) or not binding(outer):
                continue
            if inner.rule.kind == "reject" or inner.rule == outer.rule:
                continue
            raise Refused(
                f"scope {inner.label} ({inner.rule.describe()}) lies inside scope "
                f"{outer.label} ({outer.rule.describe()}): policy-controller applies every "
                "policy whose glob matches, so its images would need both; the host asks "
                f"{inner.label}'s alone",
                hint="give both scopes the same requirement, or use --format kyverno")


def policy_controller(scopes: list[Scope], notes: list[str]) -> list[dict[str, Any]]:
    """ClusterImagePolicy documents for ``scopes``. Raises Refused (see module doc)."""
    default = scopes[0]

    def binding(s: Scope) -> bool:
        # Whether s's policies add a condition for the images of scopes inside it: a
        # static pass adds none, and the default's accept and reject are no policy at
        # all (they are the controller's no-match-policy).
        return s.rule.kind == "keys" or (s.rule.kind == "reject" and s.kind != "all")

    _conflicts(scopes, binding)
    docs: list[dict[str, Any]] = []
    taken: set[str] = set()
    for s in scopes:
        if s.kind == "all" and s.rule.kind != "keys":
            continue
        globs = [{"glob": g} for g in pc_globs(s)]
        if s.kind == "digest":
            notes.append(f"scope {s.label}: policy-controller resolves a Pod's tags to "
                         "digests first, so this scope applies to the image however the Pod "
                         "names it; the host applies it when the image is named by digest")
        if s.rule.kind in ("accept", "reject"):
            action = "pass" if s.rule.kind == "accept" else "fail"
            sets: list[list[dict[str, Any]]] = [[{"name": s.rule.kind, "static": {
                "action": action, "message": f"secpod trust policy: {s.rule.kind} {s.label}"}}]]
        else:
            sets = [[{"name": f"key-{i}", "key": {"data": pem}} for i, pem in enumerate(ks, 1)]
                    for ks in s.rule.keysets]
        for n, authorities in enumerate(sets, 1):
            docs.append({
                "apiVersion": PC_API, "kind": "ClusterImagePolicy",
                "metadata": {"name": _name(s, n, taken),
                             "annotations": {SCOPE_ANNOTATION: s.label}},
                "spec": {"images": globs, "authorities": authorities, "mode": "enforce"}})
    if not docs:
        raise Refused("the trust policy names no scope to export to policy-controller: its "
                      f"default ({default.rule.describe()}) is the controller's "
                      "no-match-policy, not a policy",
                      hint="set no-match-policy: deny (reject) or allow (accept) in the "
                           "config-policy-controller ConfigMap, and label the namespaces "
                           f"{INCLUDE_LABEL}=true")
    notes.append(f"policy-controller checks only namespaces labelled {INCLUDE_LABEL}=true: "
                 "label each namespace that must be held to this policy")
    if default.rule.kind == "reject":
        notes.append(f"{default.label} is reject: images matching none of these policies are "
                     f"rejected only in namespaces labelled {INCLUDE_LABEL}=true, with "
                     "no-match-policy: deny (its default) in the config-policy-controller "
                     "ConfigMap; elsewhere policy-controller admits every image")
    elif default.rule.kind == "accept":
        notes.append(f"{default.label} is insecureAcceptAnything: set no-match-policy: allow "
                     "in the config-policy-controller ConfigMap, or images matching none of "
                     f"these policies are rejected in namespaces labelled {INCLUDE_LABEL}=true "
                     "(stricter than the host)")
    return docs


def kyverno(scopes: list[Scope], notes: list[str]) -> list[dict[str, Any]]:
    """One Kyverno ClusterPolicy for ``scopes``. Raises Refused (see module doc)."""
    for s in scopes:
        if s.rule.kind == "reject":
            raise Refused(f"scope {s.label}: reject cannot be exported to Kyverno",
                          hint="Kyverno's verifyImages admits every image no rule names; use "
                               "--format policy-controller, whose no-match-policy: deny and "
                               "static fail policies reject")
    rules: list[dict[str, Any]] = []
    taken: set[str] = set()
    for s in scopes:
        if s.rule.kind != "keys":
            continue
        skip: list[str] = []
        for inner in scopes:
            if contains(s, inner):
                skip += [r for r in kyverno_refs(inner) if r not in skip]
        entry: dict[str, Any] = {"imageReferences": kyverno_refs(s)}
        if skip:
            entry["skipImageReferences"] = skip
        entry.update({
            "type": "Cosign", "failureAction": "Enforce", "required": True,
            "verifyDigest": True, "mutateDigest": True,
            "attestors": [{"count": 1, "entries": [
                {"keys": {"publicKeys": pem, "rekor": {"ignoreTlog": True},
                          "ctlog": {"ignoreSCT": True}}} for pem in ks]}
                for ks in s.rule.keysets]})
        rules.append({"name": names.unique(names.dns_label(
            "default" if s.kind == "all" else s.label, limit=50), taken),
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}, "verifyImages": [entry]})
    if not rules:
        raise Refused("the trust policy asks for no signature anywhere: there is nothing to "
                      "export to Kyverno", hint="Kyverno admits every image no rule names")
    notes.append("Kyverno admits images no rule names: the default (and every scope without "
                 "a rule) is insecureAcceptAnything there")
    notes.append("the references assume Kyverno's defaults: defaultRegistry docker.io and "
                 "enableDefaultRegistryMutation true")
    return [{"apiVersion": KYVERNO_API, "kind": "ClusterPolicy",
             "metadata": {"name": "secpod-trust-policy"},
             "spec": {"background": False, "rules": rules}}]


def export(policy: pol.Policy, fmt: str) -> Exported:
    """The trust policy as documents for ``fmt`` (one of FORMATS). Raises UsageError for
    an unknown format, Refused for what the format cannot state exactly, KeyFormatError /
    VerificationError for a key that cannot be read."""
    from secpod.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint="use policy-controller or kyverno")
    notes: list[str] = []
    scopes = scopes_of(policy, notes)
    docs = policy_controller(scopes, notes) if fmt == "policy-controller" \
        else kyverno(scopes, notes)
    return Exported(tuple(docs), tuple(notes))
