"""Registry auth and TLS: a real docker-registry with htpasswd auth over TLS (a throwaway
CA), and one with bearer-token auth against a small token service."""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WORK, User
from tests.integration.registry_server import (
    Registry,
    TLSFiles,
    TokenService,
    htpasswd,
    make_tls,
    start_registry,
)

pytestmark = [pytest.mark.registry]

NO_TLS = "--tls-verify=false"
USER, GOOD, BAD = "alice", "s3cret-pass", "wrong-pass"


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    WORK.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="registry-auth-", dir=WORK))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture(scope="module")
def tls(folder: Path) -> TLSFiles:
    return make_tls(folder / "tls")


@pytest.fixture(scope="module")
def basic_registry(folder: Path, tls: TLSFiles) -> Iterator[Registry]:
    reg = start_registry(folder / "basic", htpasswd_file=htpasswd(folder, USER, GOOD), tls=tls)
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def token_service(folder: Path) -> Iterator[TokenService]:
    service = TokenService(folder / "token", {USER: GOOD})
    yield service
    service.stop()


@pytest.fixture(scope="module")
def token_registry(folder: Path, token_service: TokenService) -> Iterator[Registry]:
    reg = start_registry(folder / "bearer", token=token_service)
    yield reg
    reg.stop()


def pull_errors(user: User) -> list[tuple[str, str]]:
    path = user.home / "data" / "secpod" / "audit" / "log.jsonl"
    recs: list[dict[str, Any]] = [json.loads(x) for x in path.read_text().splitlines()]
    return [(r["outcome"], r.get("reason") or "") for r in recs if r["action"] == "image.pull"]


def authfile(user: User, name: str, host: str, password: str) -> Path:
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    return user.file(name, json.dumps({"auths": {host: {"auth": auth}}}))


def test_basic_auth_over_tls(user: User, busybox: str, basic_registry: Registry) -> None:
    host = basic_registry.host
    ref = f"{host}/auth/busybox:1"

    anonymous = user.run("push", busybox, ref, NO_TLS)
    assert anonymous.returncode == 1
    assert f"{host} requires authentication" in anonymous.stderr
    assert "--creds" in anonymous.stderr and "--authfile" in anonymous.stderr

    wrong = user.run("push", busybox, ref, NO_TLS, "--creds", f"{USER}:{BAD}")
    assert wrong.returncode == 1
    assert f"authentication failed for {host}" in wrong.stderr

    pushed = user.run("push", busybox, ref, NO_TLS, "--creds", f"{USER}:{GOOD}")
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.strip()

    assert user.run("pull", ref, NO_TLS).returncode == 1
    bad_file = authfile(user, "bad-auth.json", host, BAD)
    refused = user.run("pull", ref, NO_TLS, "--authfile", str(bad_file))
    assert refused.returncode == 1 and f"authentication failed for {host}" in refused.stderr
    assert "bad-auth.json" in refused.stderr  # says where the credentials came from

    good_file = authfile(user, "auth.json", host, GOOD)
    by_file = user.run("pull", ref, NO_TLS, "--authfile", str(good_file))
    assert by_file.returncode == 0, by_file.stderr
    assert by_file.stdout.strip() == digest

    # Podman's default location: $XDG_RUNTIME_DIR/containers/auth.json
    default = user.home / "run" / "containers" / "auth.json"
    default.parent.mkdir()
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(default.parent)], check=True)
    default.write_bytes(good_file.read_bytes())
    by_default = user.run("pull", ref, NO_TLS)
    assert by_default.returncode == 0, by_default.stderr

    outcomes = pull_errors(user)
    assert [o for o, _ in outcomes] == ["error", "error", "ok", "ok"]
    assert "requires authentication" in outcomes[0][1]


def test_tls_verification(user: User, busybox: str, basic_registry: Registry,
                          tls: TLSFiles) -> None:
    ref = f"{basic_registry.host}/auth/tls:1"
    creds = ("--creds", f"{USER}:{GOOD}")
    untrusted = user.run("push", busybox, ref, *creds)
    assert untrusted.returncode == 1
    assert f"the TLS certificate of {basic_registry.host} is not trusted" in untrusted.stderr
    assert "--tls-verify=false" in untrusted.stderr

    user.env["SSL_CERT_FILE"] = str(tls.ca)  # trust the throwaway CA: verified TLS
    pushed = user.run("push", busybox, ref, *creds)
    assert pushed.returncode == 0, pushed.stderr
    pulled = user.run("pull", ref, *creds)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout == pushed.stdout


def test_bearer_token_auth(user: User, busybox: str, token_registry: Registry,
                           token_service: TokenService) -> None:
    host = token_registry.host
    ref = f"{host}/team/busybox:1"

    anonymous = user.run("pull", ref, NO_TLS)
    assert anonymous.returncode == 1
    assert f"{host} requires authentication" in anonymous.stderr

    wrong = user.run("push", busybox, ref, NO_TLS, "--creds", f"{USER}:{BAD}")
    assert wrong.returncode == 1
    assert f"authentication failed for {host}" in wrong.stderr

    pushed = user.run("push", busybox, ref, NO_TLS, "--creds", f"{USER}:{GOOD}")
    assert pushed.returncode == 0, pushed.stderr
    pulled = user.run("pull", ref, NO_TLS, "--creds", f"{USER}:{GOOD}")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout == pushed.stdout
    granted = [r for r in token_service.requests if r["ok"] and r["user"] == USER]
    assert "repository:team/busybox:pull,push" in granted[0]["scope"]
    assert "repository:team/busybox:pull" in granted[-1]["scope"]


def test_login_checks_then_keeps_credentials_and_logout_forgets_them(
        user: User, busybox: str, basic_registry: Registry, token_registry: Registry) -> None:
    host, ref = basic_registry.host, f"{basic_registry.host}/login/busybox:1"
    default = user.home / "run" / "containers" / "auth.json"

    wrong = user.run("login", "-u", USER, "--password-stdin", NO_TLS, host, input=BAD + "\n")
    assert wrong.returncode == 1 and f"authentication failed for {host}" in wrong.stderr
    assert not default.exists()  # nothing is written before the registry said yes

    ok = user.run("login", "-u", USER, "--password-stdin", NO_TLS, host, input=GOOD + "\n")
    assert ok.returncode == 0 and "Login Succeeded" in ok.stderr, ok.stderr
    assert default.stat().st_mode & 0o777 == 0o600
    assert default.parent.stat().st_mode & 0o777 == 0o700
    entry = json.loads(default.read_text())["auths"][host]["auth"]
    assert base64.b64decode(entry).decode() == f"{USER}:{GOOD}"
    # pull and push find it: no --creds
    assert user.run("push", busybox, ref, NO_TLS).returncode == 0
    assert user.run("pull", ref, NO_TLS).returncode == 0
    # a bearer-token registry: the token service is asked; the first entry stays
    tok = user.run("login", "-u", USER, "-p", GOOD, NO_TLS, token_registry.host)
    assert tok.returncode == 0, tok.stderr
    assert set(json.loads(default.read_text())["auths"]) == {host, token_registry.host}

    r = user.run("logout", host)
    assert r.returncode == 0 and f"Removed login credentials for {host}" in r.stderr
    assert set(json.loads(default.read_text())["auths"]) == {token_registry.host}
    assert user.run("pull", ref, NO_TLS).returncode == 1
    again = user.run("logout", host)
    assert again.returncode == 1 and f"not logged in to {host}" in again.stderr

    # Docker's file is read, never changed
    docker = user.home / ".docker" / "config.json"
    user.sh(["mkdir", "-p", str(docker.parent)], check=True)
    docker_text = json.dumps({"auths": {"other.example:5000": {"auth": base64.b64encode(
        b"bob:pw").decode()}}})
    user.sh(["sh", "-c", f"cat > {docker}"], input=docker_text, check=True)
    r = user.run("logout", "other.example:5000")
    assert r.returncode == 1 and "which secpod does not change" in r.stderr, r.stderr
    assert "docker logout other.example:5000" in r.stderr
    assert docker.read_text() == docker_text

    # a malformed auth file is refused before the registry is asked, and left alone
    default.write_text("{not json")
    bad = user.run("login", "-u", USER, "-p", GOOD, NO_TLS, host)
    assert bad.returncode == 1 and "is not valid JSON" in bad.stderr
    assert default.read_text() == "{not json"
    assert user.run("logout", "--all").returncode == 1
    path = user.home / "data" / "secpod" / "audit" / "log.jsonl"
    logins = [json.loads(x) for x in path.read_text().splitlines()]
    outcomes = [r["outcome"] for r in logins if r["action"] == "registry.login"]
    assert outcomes == ["refused", "ok", "ok", "error"]
    assert GOOD not in path.read_text() and BAD not in path.read_text()
