"""Registry credentials: --creds, containers-auth.json files, WWW-Authenticate challenges."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from secpod.errors import MalformedInput, NotFound, UsageError
from secpod.images.registry import _auth
from secpod.images.registry._auth import Challenge, parse_challenges


def _auth_json(path: Path, auths: dict[str, object]) -> Path:
    path.write_text(json.dumps({"auths": auths}))
    return path


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("header", "expected"), [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:library/busybox:pull"',
     [Challenge("bearer", {"realm": "https://auth.docker.io/token",
                           "service": "registry.docker.io",
                           "scope": "repository:library/busybox:pull"})]),
    ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
    ('Bearer realm="a", service=b , Basic realm="c"',
     [Challenge("bearer", {"realm": "a", "service": "b"}), Challenge("basic", {"realm": "c"})]),
    ('BASIC realm="say \\"hi\\""', [Challenge("basic", {"realm": 'say "hi"'})]),
    ('Bearer realm="https://r/token",error="insufficient_scope"',
     [Challenge("bearer", {"realm": "https://r/token", "error": "insufficient_scope"})]),
    ("", []),
    ("\"garbage", []),
])
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_parse_creds() -> None:
    c = _auth.parse_creds("alice:pa:ss")
    assert (c.username, c.password, c.source) == ("alice", "pa:ss", "--creds")
    assert c.basic() == "Basic " + _b64("alice:pa:ss")
    assert "pa:ss" not in repr(c)
    for bad in ("alice", ":secret", "alice:"):
        with pytest.raises(UsageError, match="USER:PASSWORD"):
            _auth.parse_creds(bad)


def test_read_authfile_and_most_specific_key_wins(tmp_path: Path) -> None:
    path = _auth_json(tmp_path / "auth.json", {
        "reg.example.com:5000": {"auth": _b64("host:1")},
        "reg.example.com:5000/team": {"auth": _b64("team:2")},
        "reg.example.com:5000/team/app": {"auth": _b64("app:3")},
        "https://index.docker.io/v1/": {"auth": _b64("hub:4")},
        "helper.example.com": {"identitytoken": "xyz"},
    })
    entries = _auth.read_authfile(path)
    assert set(entries) == {"reg.example.com:5000", "reg.example.com:5000/team",
                            "reg.example.com:5000/team/app", "docker.io"}
    look = _auth.lookup
    assert look(entries, "reg.example.com:5000", "team/app").username == "app"  # type: ignore[union-attr]
    assert look(entries, "reg.example.com:5000", "team/other").username == "team"  # type: ignore[union-attr]
    assert look(entries, "reg.example.com:5000", "solo").username == "host"  # type: ignore[union-attr]
    assert look(entries, "docker.io", "library/busybox").username == "hub"  # type: ignore[union-attr]
    assert look(entries, "helper.example.com", "x") is None
    assert entries["docker.io"].source == str(path)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ('{"auths": []}', '"auths" is not an object'),
    ('{"auths": {"h": "x"}}', "is not an object"),
    ('{"auths": {"h": {"auth": 7}}}', "auths.h.auth is not a string"),
    ('{"auths": {"h": {"auth": "!!!"}}}', "is not base64 of USER:PASSWORD"),
    ('{"auths": {"h": {"auth": "' + base64.b64encode(b"nocolon").decode() + '"}}}',
     "is not base64 of USER:PASSWORD"),
])
def test_malformed_authfiles(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "auth.json"
    path.write_text(content)
    with pytest.raises(MalformedInput, match=message):
        _auth.read_authfile(path)


def test_missing_authfile(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        _auth.find_credentials("h", "r", creds=None, authfile=tmp_path / "nope.json")


def test_default_files_in_podmans_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _auth.default_authfiles() == [tmp_path / "run" / "containers" / "auth.json",
                                         tmp_path / "config" / "containers" / "auth.json",
                                         tmp_path / "home" / ".docker" / "config.json"]
    assert _auth.find_credentials("h:1", "r", creds=None, authfile=None) is None
    (tmp_path / "config" / "containers").mkdir(parents=True)
    _auth_json(tmp_path / "config" / "containers" / "auth.json", {"h:1": {"auth": _b64("c:1")}})
    found = _auth.find_credentials("h:1", "r", creds=None, authfile=None)
    assert found is not None and found.username == "c"
    (tmp_path / "run" / "containers").mkdir(parents=True)
    _auth_json(tmp_path / "run" / "containers" / "auth.json", {"h:1": {"auth": _b64("r:1")}})
    found = _auth.find_credentials("h:1", "r", creds=None, authfile=None)
    assert found is not None and found.username == "r"
    explicit = _auth.find_credentials("h:1", "r", creds="x:y", authfile=None)
    assert explicit is not None and explicit.username == "x"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "env.json"))
    assert _auth.default_authfiles() == [tmp_path / "env.json"]
