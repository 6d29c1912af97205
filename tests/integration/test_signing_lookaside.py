"""Lookaside signature stores (registries.d) with real gpg, a real registry and a real
HTTP server: one user signs into a lookaside-staging folder and pushes; another pulls
with a registries.d pointing `lookaside` at that folder (file://) or at an HTTP server
serving it, and `secpod verify` with a signedBy policy decides.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WORK, User
from tests.integration.registry_server import Registry, free_port

pytestmark = [pytest.mark.registry]

NO_TLS = "--tls-verify=false"


@pytest.fixture
def sigdir(user: User) -> Iterator[Path]:
    """A folder outside the homes that ``user`` writes and everyone reads."""
    d = Path(tempfile.mkdtemp(prefix="lookaside-", dir=WORK))
    d.chmod(0o755)
    os.chown(d, user.uid, user.gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def registries_d(user: User, name: str, text: str) -> Path:
    return user.file(f"config/containers/registries.d/{name}", text)


def audit(user: User, action: str) -> list[dict[str, Any]]:
    path = user.home / "data" / "secpod" / "audit" / "log.jsonl"
    return [r for r in (json.loads(line) for line in path.read_text().splitlines())
            if r["action"] == action]


def forget_signatures(user: User) -> None:
    shutil.rmtree(user.home / "data" / "secpod" / "signatures", ignore_errors=True)


@pytest.fixture
def http_server(sigdir: Path) -> Iterator[str]:
    """python3 -m http.server serving ``sigdir`` on loopback; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                             str(port), "--directory", str(sigdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("python3 -m http.server did not start")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_gpg_signature_travels_through_a_lookaside_store(
        gpg_user: tuple[User, str], user2: User, busybox: str, registry: Registry,
        sigdir: Path, http_server: str) -> None:
    user, fpr = gpg_user
    ref = f"{registry.host}/lk/busybox:1"
    registries_d(user, "staging.yaml",
                 f"docker:\n  {registry.host}/lk:\n    lookaside-staging: file://{sigdir}\n")

    # 1. sign into the staging store (and the user's own store), then push
    signed = user.run("sign", busybox, "--gpg-key", fpr, "--identity", ref, "--json")
    assert signed.returncode == 0, signed.stderr
    staged = Path(json.loads(signed.stdout)["lookaside"])
    digest = json.loads(signed.stdout)["digest"]
    assert staged == sigdir / "lk" / f"busybox@sha256={digest[7:]}" / "signature-1"
    assert f"lookaside store: {staged}" in signed.stderr
    assert audit(user, "image.sign")[-1]["details"]["lookaside"] == str(staged)
    pushed = user.run("push", busybox, ref, NO_TLS)
    assert pushed.returncode == 0, pushed.stderr
    assert audit(user, "image.push")[-1]["details"]["lookaside_staged"] == [str(staged)]
    assert sorted(p.name for p in staged.parent.iterdir()) == ["signature-1"]

    # 2. the second user trusts the signer's GPG key for the namespace, nothing else
    user.sh(["gpg", "--batch", "--export", "--output", str(user.home / "signer.gpg"), fpr],
            check=True)
    key = user2.file("signer.gpg", (user.home / "signer.gpg").read_bytes())
    user2.run("trust", "set", "--type", "signedBy", "--pubkeysfile", str(key),
              f"{registry.host}/lk", check=True)
    user2.run("trust", "set", "--type", "reject", "default", check=True)

    # 3. file:// lookaside
    conf = registries_d(user2, "lookaside.yaml",
                        f"docker:\n  {registry.host}/lk:\n    lookaside: file://{sigdir}\n")
    pulled = user2.run("pull", ref, NO_TLS, "--json")
    assert pulled.returncode == 0, pulled.stderr
    info = json.loads(pulled.stdout)
    assert info["digest"] == digest and info["signatures"] == 1
    assert info["signature_sources"] == [f"lookaside file://{sigdir}"]
    verified = user2.run("verify", ref, "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["accepted"] is True

    # 4. http:// lookaside: the same folder served by a real HTTP server
    forget_signatures(user2)
    assert user2.run("verify", ref).returncode == 1
    conf.write_text(f"docker:\n  {registry.host}/lk:\n    lookaside: {http_server}\n")
    pulled = user2.run("pull", ref, NO_TLS, "--json")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["signature_sources"] == [f"lookaside {http_server}"]
    assert user2.run("verify", ref).returncode == 0
    rec = audit(user2, "image.pull")[-1]
    assert rec["outcome"] == "ok"
    assert rec["details"]["lookaside"] == {"url": http_server, "scope": f"{registry.host}/lk",
                                           "config": str(conf), "signatures": 1}

    # 5. an unreachable lookaside warns; the pull succeeds; verify then rejects
    forget_signatures(user2)
    dead = f"http://127.0.0.1:{free_port()}"
    conf.write_text(f"docker:\n  {registry.host}/lk:\n    lookaside: {dead}\n")
    pulled = user2.run("pull", ref, NO_TLS)
    assert pulled.returncode == 0, pulled.stderr
    assert f"warning: lookaside store {dead}" in pulled.stderr
    rec = audit(user2, "image.pull")[-1]
    assert rec["outcome"] == "ok" and dead in rec["details"]["lookaside"]["warning"]
    rejected = user2.run("verify", ref)
    assert rejected.returncode == 1


def test_malformed_registries_d_is_refused_naming_the_file(user: User, busybox: str,
                                                           registry: Registry) -> None:
    ref = f"{registry.host}/lkbad/busybox:1"
    user.run("push", busybox, ref, NO_TLS, check=True)
    bad = registries_d(user, "bad.yaml",
                       "docker:\n  example.com:\n    lookaside: file:///x\n    sigstor: x\n")
    pulled = user.run("pull", ref, NO_TLS)
    assert pulled.returncode == 1
    assert f"invalid registries.d file {bad}" in pulled.stderr
    assert "unknown key 'sigstor'" in pulled.stderr
    assert audit(user, "image.pull")[-1]["outcome"] == "error"

    bad.write_text("docker:\n  example.com:\n    lookaside: file:///x\n")
    other = registries_d(user, "other.yaml", "docker:\n  example.com:\n    sigstore: file:///y\n")
    pulled = user.run("pull", ref, NO_TLS)
    assert pulled.returncode == 1
    assert "docker scope 'example.com' is also defined in" in pulled.stderr
    assert str(bad) in pulled.stderr and str(other) in pulled.stderr
