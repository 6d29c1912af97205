"""Check what `secpod trust export` writes as the cluster would: each document against its
CRD's openAPIV3Schema (tests/assets/crds, from the projects themselves) held strictly,
plus what the schema leaves to the projects' admission code (globs, one authority source,
key PEM that parses), and the two projects' image matching, to compare with the host's."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from cryptography.hazmat.primitives.serialization import load_pem_public_key

CRDS = Path(__file__).parent / "assets" / "crds"
SCHEMAS = {("policy.sigstore.dev/v1beta1", "ClusterImagePolicy"):
           "policy-controller-clusterimagepolicy-v1beta1.yaml",
           ("kyverno.io/v1", "ClusterPolicy"): "kyverno-clusterpolicy-v1.yaml"}
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_VALID_GLOB = re.compile(r"^[a-zA-Z0-9-_:\/\*\.@]+$")  # policy-controller's pkg/apis/glob


def _strict(node: Any) -> Any:
    """The schema with unknown fields refused (the API server prunes them silently:
    a field secpod writes that the CRD does not know would be lost)."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@cache
def schema(api_version: str, kind: str) -> dict[str, Any]:
    raw = yaml.safe_load((CRDS / SCHEMAS[(api_version, kind)]).read_text())
    top = copy.deepcopy(raw)
    props = top.setdefault("properties", {})
    # The API server's own part of every object (policy-controller's CRD leaves it out).
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props["metadata"] = {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "annotations": {
            "type": "object", "additionalProperties": {"type": "string"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}
    top["required"] = sorted({*top.get("required", []), "apiVersion", "kind", "metadata"})
    return _strict(top)  # type: ignore[no-any-return]


def _pem_ok(text: str) -> None:
    assert text.startswith("-----BEGIN PUBLIC KEY-----\n"), text
    assert load_pem_public_key(text.encode()) is not None


def check(doc: dict[str, Any]) -> None:
    """Raise (AssertionError / jsonschema.ValidationError) if the cluster would refuse
    ``doc`` or lose part of it."""
    jsonschema.Draft7Validator(schema(doc["apiVersion"], doc["kind"])).validate(doc)
    name = doc["metadata"]["name"]
    assert len(name) <= 253 and _SUBDOMAIN.fullmatch(name), name
    spec = doc["spec"]
    if doc["kind"] == "ClusterImagePolicy":
        assert spec["images"] and spec["authorities"]
        assert spec.get("mode", "enforce") in ("enforce", "warn")
        for image in spec["images"]:
            glob = image["glob"]
            assert _VALID_GLOB.match(glob) and glob not in ("*", "*/*"), glob
            re.compile(pc_regex(glob))
        for a in spec["authorities"]:
            assert sum(k in a for k in ("key", "keyless", "static")) == 1, a
            if "key" in a:
                assert sum(k in a["key"] for k in ("data", "kms", "secretRef")) == 1
                _pem_ok(a["key"]["data"])
            if "static" in a:
                assert a["static"]["action"] in ("pass", "fail")
        return
    rules = spec["rules"]
    assert rules and len({r["name"] for r in rules}) == len(rules)
    for r in rules:
        assert len(r["name"]) <= 63
        for vi in r["verifyImages"]:
            assert vi["imageReferences"] and vi.get("failureAction") == "Enforce"
            # Kyverno's own policy validation (api/kyverno/v1 ImageVerification.Validate)
            assert not vi.get("mutateDigest", True) or vi["failureAction"] == "Enforce"
            for att in vi["attestors"]:
                assert att["entries"] and 1 <= att.get("count", 1) <= len(att["entries"])
                for e in att["entries"]:
                    assert sum(k in e for k in ("keys", "certificates", "keyless",
                                                "attestor")) == 1, e
                    assert e["keys"].get("signatureAlgorithm", "") in (
                        "", "sha224", "sha256", "sha384", "sha512")
                    _pem_ok(e["keys"]["publicKeys"])


def pc_regex(glob: str) -> str:
    """policy-controller's translation of a glob (pkg/apis/glob Compile)."""
    g = glob.replace(".", r"\.").replace("**", "#").replace("*", "[^/]*").replace("#", ".*")
    return f"^{g}$"


def pc_name(image: str) -> str:
    """go-containerregistry's ref.Name() for the image strings the tests use."""
    first, _, rest = image.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        first, rest = "index.docker.io", image
    if first == "docker.io":
        first = "index.docker.io"
    if first == "index.docker.io" and "/" not in rest.split("@")[0].split(":")[0]:
        rest = "library/" + rest
    name = f"{first}/{rest}"
    if "@" in name:
        repo, _, digest = name.partition("@")
        return f"{repo.rsplit(':', 1)[0] if ':' in repo.rsplit('/', 1)[-1] else repo}@{digest}"
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def pc_policies(docs: list[dict[str, Any]], image: str) -> list[dict[str, Any]]:
    """The ClusterImagePolicies that apply to ``image`` (all of them must pass)."""
    name = pc_name(image)
    return [d for d in docs if any(re.match(pc_regex(i["glob"]), name) or
                                   (name != image and re.match(pc_regex(i["glob"]), image))
                                   for i in d["spec"]["images"])]


def kyverno_string(image: str) -> str:
    """Kyverno's ImageInfo.String() (defaultRegistry docker.io, registry mutation on)."""
    first, _, rest = image.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"
                        or first != first.lower()):
        image = "docker.io/" + image
    if "@" in image:
        repo, _, digest = image.partition("@")
        last = repo.rsplit("/", 1)[-1]
        repo = repo.rsplit(":", 1)[0] if ":" in last else repo
        return f"{repo}@{digest}"
    return image if ":" in image.rsplit("/", 1)[-1] else image + ":latest"


def _wildcard(pattern: str, text: str) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, text) is not None


def kyverno_entries(doc: dict[str, Any], image: str) -> list[dict[str, Any]]:
    """The verifyImages entries that check ``image`` (each must pass)."""
    s = kyverno_string(image)
    return [vi for r in doc["spec"]["rules"] for vi in r["verifyImages"]
            if any(_wildcard(p, s) for p in vi["imageReferences"])
            and not any(_wildcard(p, s) for p in vi.get("skipImageReferences", []))]
