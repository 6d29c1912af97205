"""Required attestations: parsing ``requireAttestations``, exact predicate matching, the
predicate files ``attest`` reads, and the trust decision that judges them (one change per
failure case)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from secpod.errors import TrustPolicyError, UsageError
from secpod.images.reference import parse
from secpod.signing import attestations, imagebundles, trust
from secpod.signing.policy import parse_policy

MANIFEST = b'{"schemaVersion":2,"config":{}}'
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
REPO = "127.0.0.1:5000/app"
REF = parse(REPO + ":1")
SLSA1 = "https://slsa.dev/provenance/v1"
BUILDER = "https://ci.example/builder"
PROVENANCE = {"buildDefinition": {"buildType": "https://example.com/build/v1"},
              "runDetails": {"builder": {"id": BUILDER, "version": {"ci": "3"}}}}


# --- matching ----------------------------------------------------------------------------

def test_every_match_must_hold_exactly() -> None:
    m = attestations.mismatch
    assert m(PROVENANCE, (("runDetails.builder.id", BUILDER),)) is None
    assert m(PROVENANCE, (("runDetails.builder.id", BUILDER),
                          ("runDetails.builder.version.ci", "3"))) is None
    assert m(PROVENANCE, ()) is None
    assert m(PROVENANCE, (("runDetails.builder.id", BUILDER + "/"),)) == (
        f"its predicate's runDetails.builder.id is {BUILDER!r} "
        f"(required: {BUILDER + '/'!r})")
    # case and whitespace count: equality is exact
    assert m(PROVENANCE, (("runDetails.builder.id", BUILDER.upper()),)) is not None
    assert m(PROVENANCE, (("runDetails.builder.id", BUILDER + " "),)) is not None


def test_a_missing_or_non_string_value_is_a_mismatch() -> None:
    m = attestations.mismatch
    assert m(PROVENANCE, (("runDetails.builder.name", "x"),)) == (
        "its predicate has no runDetails.builder.name (required: runDetails.builder.name='x')")
    assert m(PROVENANCE, (("runDetails.nothing.id", "x"),)) == (
        "its predicate has no runDetails.nothing (required: runDetails.nothing.id='x')")
    # a path through a string, an object or a number never matches a string
    assert "has no runDetails.builder.id.more" in (
        m(PROVENANCE, (("runDetails.builder.id.more", "x"),)) or "")
    assert m(PROVENANCE, (("runDetails.builder", "x"),)) == (
        "its predicate's runDetails.builder is an object (required: 'x')")
    assert "is a number" in (m({"n": 3}, (("n", "3"),)) or "")
    assert "is a boolean" in (m({"n": True}, (("n", "true"),)) or "")
    assert "is null" in (m({"n": None}, (("n", "null"),)) or "")
    # no array indexes
    assert "has no list.0" in (m({"list": ["a"]}, (("list.0", "a"),)) or "")
    assert "has no a" in (m(None, (("a", "x"),)) or "")
    assert "has no a" in (m(["a"], (("a", "x"),)) or "")


def test_the_first_failing_match_is_reported_and_a_long_value_is_cut() -> None:
    long = "x" * 1000
    why = attestations.mismatch({"a": "1", "b": long}, (("a", "1"), ("b", "y")))
    assert why is not None and why.startswith("its predicate's b is 'xxx")
    assert "..." in why and len(why) < 300


_NAMES = st.text(st.characters(blacklist_characters=".", blacklist_categories=("Cs",)),
                 min_size=1, max_size=6)
_TREES = st.recursive(st.text(max_size=8) | st.integers() | st.booleans() | st.none(),
                      lambda inner: st.dictionaries(_NAMES, inner, max_size=4), max_leaves=12)


def _leaves(tree: object, prefix: str = "") -> list[tuple[str, object]]:
    if not isinstance(tree, dict):
        return [(prefix, tree)] if prefix else []
    return [leaf for k, v in tree.items()
            for leaf in _leaves(v, f"{prefix}.{k}" if prefix else k)]


@settings(max_examples=200, deadline=None)
@given(tree=_TREES, other=st.text(max_size=8))
def test_a_match_holds_exactly_when_the_string_is_there(tree: object, other: str) -> None:
    for path, value in _leaves(tree):
        if isinstance(value, str):
            assert attestations.mismatch(tree, ((path, value),)) is None
            if other != value:
                assert attestations.mismatch(tree, ((path, other),)) is not None
        else:  # a number, boolean or null never equals a string
            assert attestations.mismatch(tree, ((path, str(value)),)) is not None
        # one level further down a leaf there is nothing
        assert attestations.mismatch(tree, ((path + ".x", other),)) is not None


def test_requirement_entries_parse_strictly() -> None:
    parse_req = attestations.parse_requirement
    r = parse_req({"type": "slsaprovenance1", "predicate": {"runDetails.builder.id": BUILDER}},
                  "$.r")
    assert (r.name, r.predicate_type, r.matches) == (
        "slsaprovenance1", SLSA1, (("runDetails.builder.id", BUILDER),))
    assert r.describe() == f"slsaprovenance1 with runDetails.builder.id={BUILDER!r}"
    bare = parse_req({"type": "https://example.com/p/v1"}, "$.r")
    assert (bare.predicate_type, bare.matches, bare.describe()) == (
        "https://example.com/p/v1", (), "https://example.com/p/v1")
    bad: list[tuple[object, str]] = [
        ({"type": "slsaprovenance1", "builder": BUILDER}, "$.r.builder: unknown field"),
        ({"predicate": {}}, "$.r.type: missing required field"),
        ({"type": "sbom"}, "$.r.type: unknown attestation type 'sbom'"),
        ({"type": ""}, "$.r.type: must not be empty"),
        ({"type": 1}, "$.r.type: expected a string"),
        ({"type": "spdx", "predicate": []}, "$.r.predicate: expected a JSON object"),
        ({"type": "spdx", "predicate": {"a": 1}}, "$.r.predicate['a']: expected a string"),
        ({"type": "spdx", "predicate": {"a..b": "x"}}, "dot-separated field names"),
        ({"type": "spdx", "predicate": {"": "x"}}, "dot-separated field names"),
        ({"type": "spdx", "predicate": {"a" * 300: "x"}}, "1 to 256 characters"),
        ({"type": "spdx", "predicate": {"a": "x" * 5000}}, "longer than 4096"),
        ({"type": "spdx", "predicate": {f"k{i}": "x" for i in range(33)}}, "more than 32"),
        ("slsaprovenance1", "$.r: expected a JSON object"),
    ]
    for value, words in bad:
        with pytest.raises(ValueError) as e:
            parse_req(value, "$.r")
        assert words in str(e.value), (value, str(e.value))


def test_predicate_match_flags() -> None:
    assert attestations.parse_match("a.b=x=y") == ("a.b", "x=y")
    assert attestations.parse_match("a=") == ("a", "")
    for text in ("a", "=x", "a..b=x", ".a=x"):
        with pytest.raises(UsageError, match="invalid --predicate-match"):
            attestations.parse_match(text)


def test_predicate_files_are_one_bounded_json_object(tmp_path: Path) -> None:
    good = tmp_path / "p.json"
    good.write_text(json.dumps(PROVENANCE))
    assert attestations.read_predicate(good) == PROVENANCE
    cases = {
        "not json": (b"{builder", "is not valid JSON"),
        "array": (b"[]", "expected a JSON object"),
        "duplicate": (b'{"a":1,"a":2}', "duplicate field 'a'"),
        "nan": (b'{"a":NaN}', "is not valid JSON"),
        "latin1": (b'{"a":"\xe9"}', "is not UTF-8"),
        "large": (b'{"a":"' + b"x" * attestations.MAX_PREDICATE + b'"}',
                  f"larger than {attestations.MAX_PREDICATE} bytes"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UsageError) as e:
            attestations.read_predicate(path)
        assert words in e.value.message, (name, e.value.message)
        assert e.value.exit_code == 2
    with pytest.raises(UsageError, match="cannot read the predicate"):
        attestations.read_predicate(tmp_path / "absent")


# --- the settings and the decision -------------------------------------------------------

def _policy(home: Path, key: ec.EllipticCurvePrivateKey, settings: object | None,
            requirement: str = "sigstoreSigned") -> Path:
    pub = home / "key.pub"
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    req = ({"type": "sigstoreSigned", "keyPath": str(pub)} if requirement == "sigstoreSigned"
           else {"type": requirement})
    path = home / "policy.json"
    path.write_text(json.dumps({"default": [{"type": "reject"}],
                                "transports": {"docker": {REPO: [req]}}}))
    side = home / "policy.bundles.json"
    if settings is None:
        side.unlink(missing_ok=True)
    else:
        side.write_text(json.dumps(settings) if not isinstance(settings, str) else settings)
    return path


def _decide(path: Path, bundles: list[bytes], **kw: object) -> trust.TrustDecision:
    return trust.decide(REF, MANIFEST, [], bundles=bundles,
                        policy=parse_policy(path.read_bytes(), source=str(path)),
                        policy_path=path, **kw)  # type: ignore[arg-type]


def _requiring(*entries: object) -> dict[str, object]:
    return {"scopes": {REPO: {"acceptDigestOnly": True, "allowNoLog": True,
                              "requireAttestations": list(entries)}}}


NEED = {"type": "slsaprovenance1", "predicate": {"runDetails.builder.id": BUILDER}}


def test_a_required_attestation_by_the_key_with_the_builder_is_accepted(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sig = imagebundles.make_bundle(key, DIGEST, REPO)
    att = imagebundles.make_bundle(key, DIGEST, REPO, predicate_type=SLSA1,
                                   predicate=PROVENANCE)
    d = _decide(_policy(home, key, _requiring(NEED)), [sig, att])
    assert d.accepted, d.reasons
    assert d.required_attestations == (f"slsaprovenance1 with runDetails.builder.id={BUILDER!r}",)
    assert d.as_dict()["required_attestations"] == list(d.required_attestations)
    assert d.reasons[1].startswith("requireAttestations slsaprovenance1 with ")
    assert f"attestation {SLSA1} {imagebundles.bundle_name(att)} by key" in d.reasons[1]
    # the evidence: the signature, then the attestation search (the signature bundle is
    # no attestation), each with its verdict
    kinds = [(e["digest"], e["verdict"], e.get("predicate_type")) for e in d.evidence]
    assert kinds == [(imagebundles.bundle_name(sig), "accepted",
                      "https://sigstore.dev/cosign/sign/v1"),
                     (imagebundles.bundle_name(sig), "rejected", SLSA1),
                     (imagebundles.bundle_name(att), "accepted", SLSA1)]
    assert d.evidence[2]["predicate"] == {"runDetails.builder.id": BUILDER}


def test_the_wrong_builder_is_refused_quoting_the_predicate(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sig = imagebundles.make_bundle(key, DIGEST, REPO)
    evil = {"runDetails": {"builder": {"id": "https://evil.example/builder"}}}
    att = imagebundles.make_bundle(key, DIGEST, REPO, predicate_type=SLSA1, predicate=evil)
    d = _decide(_policy(home, key, _requiring(NEED)), [sig, att])
    assert not d.accepted
    assert d.reasons[0].startswith("sigstoreSigned: bundle")  # the signature itself is fine
    assert "requireAttestations slsaprovenance1 with" in d.reasons[1]
    assert "rejected" in d.reasons[1]
    assert ("its predicate's runDetails.builder.id is 'https://evil.example/builder' "
            f"(required: {BUILDER!r})") in d.reasons[1]


def test_missing_and_foreign_attestations_are_refused(home: Path) -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    sig = imagebundles.make_bundle(key, DIGEST, REPO)
    path = _policy(home, key, _requiring(NEED))
    missing = _decide(path, [sig])
    assert not missing.accepted and "rejected" in missing.reasons[1]
    assert "not an attestation of that type" in missing.reasons[1]
    foreign = imagebundles.make_bundle(other, DIGEST, REPO, predicate_type=SLSA1,
                                       predicate=PROVENANCE)
    d = _decide(path, [sig, foreign])
    assert not d.accepted and "does not verify" in d.reasons[1], d.reasons
    # an image with no bundles at all, signed the simple way
    from secpod.signing import sign_sigstore

    plain = trust.decide(REF, MANIFEST, [sign_sigstore(key, REPO + ":1", DIGEST)], bundles=[],
                         policy=parse_policy(path.read_bytes(), source=str(path)),
                         policy_path=path)
    assert plain.reasons[0].startswith("sigstoreSigned: signature for")
    assert not plain.accepted
    assert f"an attestation of type {SLSA1} was required, but the image has no Sigstore " \
           "bundle" in plain.reasons[1]


def test_every_required_attestation_must_be_met(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    att = imagebundles.make_bundle(key, DIGEST, REPO, predicate_type=SLSA1,
                                   predicate=PROVENANCE)
    sig = imagebundles.make_bundle(key, DIGEST, REPO)
    d = _decide(_policy(home, key, _requiring(NEED, {"type": "spdxjson"})), [sig, att])
    assert not d.accepted
    assert "accepted" in d.reasons[1] and "rejected" in d.reasons[2]
    assert d.reasons[2].startswith("requireAttestations spdxjson (scope")


def test_a_scope_without_sigstore_signed_cannot_meet_a_requirement(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    att = imagebundles.make_bundle(key, DIGEST, REPO, predicate_type=SLSA1,
                                   predicate=PROVENANCE)
    d = _decide(_policy(home, key, _requiring(NEED), requirement="insecureAcceptAnything"),
                [att])
    assert not d.accepted
    assert "name no sigstoreSigned key or identity" in d.reasons[1]


def test_other_scopes_and_verify_attestation_type_do_not_apply_it(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sig = imagebundles.make_bundle(key, DIGEST, REPO)
    elsewhere = {"scopes": {REPO: {"acceptDigestOnly": True, "allowNoLog": True},
                            "127.0.0.1:5000/other": {"acceptDigestOnly": True,
                                                     "requireAttestations": [NEED]}}}
    d = _decide(_policy(home, key, elsewhere), [sig])
    assert d.accepted and d.required_attestations == ()
    att = imagebundles.make_bundle(key, DIGEST, REPO, predicate_type=SLSA1,
                                   predicate=PROVENANCE)
    path = _policy(home, key, _requiring(NEED))
    asked = _decide(path, [sig, att], attestation=SLSA1,
                    predicate_match=(("runDetails.builder.id", BUILDER),))
    assert asked.accepted and asked.required_attestations == ()
    wrong = _decide(path, [sig, att], attestation=SLSA1,
                    predicate_match=(("runDetails.builder.id", "https://x"),))
    assert not wrong.accepted and "its predicate's runDetails.builder.id is" in wrong.reasons[0]


def test_unusable_requirements_are_exit_2_naming_the_field(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sig = imagebundles.make_bundle(key, DIGEST, REPO)
    p = f'$.scopes["{REPO}"]'
    bad: list[tuple[object, str]] = [
        (_requiring({"type": "slsaprovenance1", "builder": BUILDER}),
         f"{p}.requireAttestations[0].builder: unknown field"),
        (_requiring(), f"{p}.requireAttestations: must not be empty"),
        ({"scopes": {REPO: {"requireAttestations": [NEED]}}},
         f'{p}.requireAttestations: needs "acceptDigestOnly": true'),
        ({"scopes": {REPO: {"acceptDigestOnly": True, "requireAttestation": [NEED]}}},
         f"{p}.requireAttestation: unknown field"),
    ]
    for doc, words in bad:
        path = _policy(home, key, doc)
        for bundles in ([sig], []):  # read even for an image without bundles
            with pytest.raises(TrustPolicyError) as e:
                _decide(path, bundles)
            assert e.value.exit_code == 2 and words in e.value.message, e.value.message


def test_the_settings_are_read_for_an_image_without_bundles(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    from secpod.signing import sign_sigstore

    simple = [sign_sigstore(key, REPO + ":1", DIGEST)]
    path = _policy(home, key, None)
    d = trust.decide(REF, MANIFEST, simple, bundles=[],
                     policy=parse_policy(path.read_bytes(), source=str(path)), policy_path=path)
    assert d.accepted, d.reasons
    # a key spelt with a JSON escape is the same key
    escaped = json.dumps(_requiring(NEED)).replace("requireAttestations",
                                                   "require\\u0041ttestations")
    path = _policy(home, key, escaped)
    d = trust.decide(REF, MANIFEST, simple, bundles=[],
                     policy=parse_policy(path.read_bytes(), source=str(path)), policy_path=path)
    assert not d.accepted and d.required_attestations
