"""Docker's other `run`/`create` flags against real crun (issue 16): what each does inside
the container and in `inspect`, and the refusals, each with its reason."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records
from tests.integration.registry_server import Registry

pytestmark = [pytest.mark.crun, pytest.mark.userns]

NO_TLS = "--tls-verify=false"
USAGE = 2  # a flag's value secpod cannot take (UsageError), as for every other flag


def _inspect(user: User, name: str) -> dict[str, object]:
    return json.loads(user.run("inspect", name, check=True).stdout)[0]  # type: ignore[no-any-return]


def test_labels_from_flags_and_files(user: User, busybox: str) -> None:
    labels = user.file("labels", "# team\nteam=infra\n\nstage=test\n")
    cid = user.run("create", "--name", "lab", "-l", "stage=prod", "--label", "flag",
                   "--label-file", str(labels), "--label", "team=sec", busybox, "true",
                   check=True).stdout.strip()
    info = _inspect(user, "lab")
    assert info["Config"]["Labels"] == {"team": "sec", "stage": "prod", "flag": ""}  # type: ignore[index]
    assert user.run("ps", "-a", "-q", "--no-trunc", "-f", "label=team=sec").stdout == cid + "\n"
    assert user.run("ps", "-a", "-q", "-f", "label=team=infra").stdout == ""
    bad = user.run("create", "--label", "=x", busybox, "true")
    assert bad.returncode == USAGE and "invalid label '=x' (--label)" in bad.stderr


def test_entrypoint_replaced_and_cleared(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "--entrypoint", "echo", busybox, "from", "echo")
    assert r.stdout == "from echo\n", r.stderr
    r = user.run("run", "--rm", "--entrypoint", "", busybox, "echo", "cleared")
    assert r.stdout == "cleared\n", r.stderr
    user.run("create", "--name", "ep", "--entrypoint", "", busybox, "echo", "x", check=True)
    assert _inspect(user, "ep")["Config"]["Entrypoint"] == []  # type: ignore[index]


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_init_is_catatonit_bound_read_only(user: User, signed_busybox: str,
                                           profile: str) -> None:
    r = user.run("run", "--rm", "--init", "--profile", profile, signed_busybox, "sh", "-c",
                 "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$; "
                 "echo x 2>/dev/null > /run/podman-init || echo read-only; exit 7")
    assert r.returncode == 7, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("/run/podman-init -- sh -c "), lines
    assert lines[1] != "1" and lines[2] == "read-only"  # sh is catatonit's child
    user.run("create", "--name", "in", "--init", signed_busybox, "true", check=True)
    info = _inspect(user, "in")
    assert info["HostConfig"]["Init"] is True and info["Path"] == "true"  # type: ignore[index]


def test_stop_signal_and_stop_timeout(user: User, busybox: str) -> None:
    user.run("run", "-d", "--name", "sig", "--stop-signal", "usr1", busybox, "sh", "-c",
             "trap 'echo got-usr1; exit 0' USR1; echo up; while :; do sleep 0.1; done",
             check=True)
    _wait_log(user, "sig", "up")
    assert _inspect(user, "sig")["Config"]["StopSignal"] == "SIGUSR1"  # type: ignore[index]
    assert user.run("stop", "sig").returncode == 0
    assert user.run("wait", "sig").stdout == "0\n"
    assert "got-usr1" in user.run("logs", "sig").stdout

    user.run("run", "-d", "--name", "deaf", "--stop-timeout", "1", busybox, "sh", "-c",
             "trap '' TERM; echo up; while :; do sleep 0.1; done", check=True)
    _wait_log(user, "deaf", "up")
    assert _inspect(user, "deaf")["Config"]["StopTimeout"] == 1  # type: ignore[index]
    began = time.monotonic()
    assert user.run("stop", "deaf").returncode == 0
    assert time.monotonic() - began < 8  # 1 s, not the default 10
    stops = [r for r in audit_records(user) if r["action"] == "container.stop"]
    assert (stops[-1]["details"]["timeout"], stops[-1]["details"]["killed"]) == (1, True)
    bad = user.run("run", "--stop-signal", "NOPE", busybox, "true")
    assert bad.returncode == USAGE and "--stop-signal: unknown signal 'NOPE'" in bad.stderr


def _wait_log(user: User, name: str, text: str) -> None:
    for _ in range(100):
        if text in user.run("logs", name).stdout:
            return
        time.sleep(0.05)
    pytest.fail(f"{name} never printed {text!r}")


def test_ulimit(user: User, busybox: str) -> None:
    r = user.run("run", "--rm", "--ulimit", "nofile=512:1024", "--ulimit", "core=0",
                 busybox, "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c")
    assert r.stdout == "512\n1024\n0\n", r.stderr
    # strict's nofile is 1024: a hard limit above it is a weakening, said and recorded
    r = user.run("create", "--name", "ul", "--profile", "strict", "--ulimit",
                 "nofile=2048", busybox, "true")
    if r.returncode == 0:
        assert "ulimit: nofile hard limit 2048, above the profile's 1024" in r.stderr
    above = user.run("run", "--ulimit", "nofile=1:99999999999", busybox, "true")
    assert above.returncode == USAGE
    assert "the hard limit is above yours" in above.stderr and "cannot raise it" in above.stderr
    for bad in ("nofile", "nosuch=1", "nofile=2:1", "nofile=x"):
        r = user.run("run", "--ulimit", bad, busybox, "true")
        assert r.returncode == USAGE and "--ulimit" in r.stderr, (bad, r.stderr)


def test_cidfile(user: User, busybox: str) -> None:
    path = user.home / "ids" / "c.id"
    user.sh(["mkdir", str(path.parent)], check=True)
    cid = user.run("run", "-d", "--cidfile", str(path), busybox, "true",
                   check=True).stdout.strip()
    assert path.read_text() == cid
    assert [p.name for p in path.parent.iterdir()] == ["c.id"]  # no temp file left
    again = user.run("create", "--cidfile", str(path), busybox, "true")
    assert again.returncode == 125 and f"the container id file {path} exists" in again.stderr
    assert user.run("ps", "-a", "-q", "--no-trunc").stdout == cid + "\n"  # nothing made
    nodir = user.run("run", "--cidfile", str(user.home / "no" / "c.id"), busybox, "true")
    assert nodir.returncode == USAGE and "does not exist" in nodir.stderr
    fg = user.home / "ids" / "fg.id"
    r = user.run("run", "--cidfile", str(fg), "--name", "fg", busybox, "true")
    assert r.returncode == 0 and fg.read_text() == _inspect(user, "fg")["Id"]


def test_replace(user: User, busybox: str) -> None:
    first = user.run("run", "-d", "--name", "svc", busybox, "sleep", "60",
                     check=True).stdout.strip()
    taken = user.run("create", "--name", "svc", busybox, "true")
    assert taken.returncode == 125
    second = user.run("create", "--replace", "--name", "svc", busybox, "true",
                      check=True).stdout.strip()
    assert second != first
    assert user.run("ps", "-a", "-q", "--no-trunc").stdout == second + "\n"
    r = user.run("create", "--replace", busybox, "true")
    assert r.returncode == USAGE and "--replace needs --name" in r.stderr


@pytest.mark.registry
def test_pull_policies(user: User, busybox: str, registry: Registry) -> None:
    ref = f"{registry.host}/flags/busybox:1"
    user.run("push", busybox, ref, NO_TLS, check=True)
    never = user.run("run", "--rm", "--pull", "never", ref, "true")
    assert never.returncode == 125 and f"no such image: {ref} (--pull never)" in never.stderr
    r = user.run("run", "--rm", NO_TLS, ref, "echo", "pulled")  # missing: the default
    assert r.returncode == 0 and r.stdout == "pulled\n", r.stderr
    pulls = [a for a in audit_records(user) if a["action"] == "image.pull"]
    assert len(pulls) == 1
    user.run("run", "--rm", "--pull", "missing", NO_TLS, ref, "true", check=True)
    user.run("run", "--rm", "--pull", "never", ref, "true", check=True)
    assert len([a for a in audit_records(user) if a["action"] == "image.pull"]) == 1
    user.run("run", "--rm", "--pull", "always", NO_TLS, ref, "true", check=True)
    assert len([a for a in audit_records(user) if a["action"] == "image.pull"]) == 2
    gone = user.run("run", "--rm", "--pull", "always", NO_TLS,
                    f"{registry.host}/flags/none:1", "true")
    assert gone.returncode == 125
    missing = user.run("run", "--rm", NO_TLS, f"{registry.host}/flags/none:1", "true")
    assert missing.returncode == 125
    assert (f"no such image: {registry.host}/flags/none:1 in your store, and pulling it "
            "failed: ") in missing.stderr, missing.stderr
    assert user.run("run", "--pull", "sometimes", busybox, "true").returncode == 2


def test_platform(user: User, busybox: str) -> None:
    import platform

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    user.run("run", "--rm", "--platform", f"linux/{arch}", busybox, "true", check=True)
    other = "arm64" if arch != "arm64" else "amd64"
    r = user.run("run", "--rm", "--platform", f"linux/{other}", busybox, "true")
    assert r.returncode == USAGE
    assert f"this host runs linux/{arch}, and secpod never emulates" in r.stderr
    r = user.run("run", "--rm", "--platform", f"linux/{arch}/v9", busybox, "true")
    assert r.returncode == USAGE and f"in your store is linux/{arch}" in r.stderr
    assert "invalid --platform" in user.run("run", "--platform", "amd64", busybox,
                                            "true").stderr
    refused = [a for a in audit_records(user) if a["action"] == "container.run.refused"]
    assert len(refused) == 2


def test_cpus_memory_swap_recorded_as_not_enforced(user: User, busybox: str) -> None:
    r = user.run("create", "--name", "lim", "-m", "64m", "--memory-swap", "128m",
                 "--cpus", "0.5", busybox, "true")
    assert r.returncode == 0, r.stderr
    info = _inspect(user, "lim")
    host = info["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (  # type: ignore[index]
        64 << 20, 128 << 20, 500_000_000)
    unenforced = " ".join(info["Secpod"]["unenforced"])  # type: ignore[index]
    assert "memory+swap limit 134217728 bytes" in unenforced and "cpus 0.5" in unenforced
    for args, words in ((["--memory-swap", "1g"], "--memory-swap needs -m"),
                        (["-m", "1g", "--memory-swap", "512m"], "is below -m"),
                        (["--cpus", "0"], "--cpus '0'"), (["--cpus", "x"], "--cpus 'x'")):
        r = user.run("create", *args, busybox, "true")
        assert r.returncode == USAGE and words in r.stderr, (args, r.stderr)


def test_refused_flags_say_why(user: User, busybox: str) -> None:
    cases = [
        (["--privileged"], "--privileged is refused: it gives the container every capability"),
        (["--sig-proxy=false"], "--sig-proxy=false is refused"),
        (["-a", "stdout"], "cannot leave one out"),
        (["-a", "stdin", "-a", "stdout", "-a", "stderr"], "-a stdin needs -i"),
        (["-a", "tty"], "-a/--attach 'tty': not a stream"),
        (["-d", "-a", "stdout"], "-a/--attach and -d conflict"),
    ]
    for args, words in cases:
        r = user.run("run", *args, busybox, "true")
        assert r.returncode == USAGE and words in r.stderr, (args, r.stderr)
        assert "hint:" in r.stderr
    assert user.run("ps", "-a", "-q").stdout == ""
    r = user.run("run", "--rm", "-a", "stdout", "-a", "STDERR", "--sig-proxy", busybox,
                 "sh", "-c", "echo out; echo err >&2")
    assert (r.returncode, r.stdout, r.stderr.strip().splitlines()[-1]) == (0, "out\n", "err")
