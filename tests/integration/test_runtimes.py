"""crun and runc behind one interface, as the unprivileged user against the real binaries:
the interface itself on a hand-made bundle, `--runtime`, secpod.toml, the
administrator's `[runtimes] allowed`, what runc would fail on, and `doctor`."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import User
from tests.integration.conftest import audit_records, write_policy

pytestmark = [pytest.mark.crun, pytest.mark.userns]

# Drives one runtime through the OCIRuntime interface and prints what it saw.
_INTERFACE = r"""
import json, sys, time
from pathlib import Path
from secpod.errors import RuntimeFailed
from secpod.runtime import open_runtime

name, bundle = sys.argv[1], Path(sys.argv[2])
rt = open_runtime(name)
seen = {"features": rt.features().name}
cid = "iface-" + name
rt.create(cid, bundle, pid_file=bundle / "pid", log=bundle / "runtime.log")
seen["created"] = rt.state(cid)["status"]
seen["pid_file"] = int((bundle / "pid").read_text()) == rt.state(cid)["pid"]
seen["listed"] = cid in rt.all_states() and rt.knows(cid)
rt.start(cid)
seen["started"] = rt.state(cid)["status"]
rt.kill(cid, "KILL")
for _ in range(200):
    if rt.state(cid)["status"] == "stopped":
        break
    time.sleep(0.05)
seen["killed"] = rt.state(cid)["status"]
rt.delete(cid)
seen["deleted"] = [rt.state(cid), rt.knows(cid), cid in rt.all_states()]
rt.delete(cid)  # forgetting a container twice is no error
try:
    rt.start(cid)
except RuntimeFailed as e:
    seen["start_unknown"] = e.message
(bundle / "config.json").write_text("{")
try:
    rt.create(cid, bundle, pid_file=bundle / "pid", log=bundle / "runtime.log")
except RuntimeFailed as e:
    seen["bad_bundle"] = e.message
seen["left"] = rt.knows(cid)
print(json.dumps(seen))
"""


def _bundle(user: User) -> Path:
    """A bundle made by hand (not by secpod): static busybox, sleeping as container root."""
    bundle = user.home / "bundle"
    for folder in ("bin", "dev", "proc"):
        (bundle / "rootfs" / folder).mkdir(parents=True)
    shutil.copy("/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    ids = [{"containerID": 0, "hostID": user.uid, "size": 1}]
    gids = [{"containerID": 0, "hostID": user.gid, "size": 1}]
    config = {
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/busybox", "sleep", "60"], "cwd": "/",
                    "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0},
                    "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "iface",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": t} for t in
                                 ("user", "pid", "mount", "ipc", "uts", "network")],
                  "uidMappings": ids, "gidMappings": gids},
    }
    (bundle / "config.json").write_text(json.dumps(config))
    for path in [bundle, *bundle.rglob("*")]:
        os.chown(path, user.uid, user.gid)
    return bundle


@pytest.mark.parametrize("name", ["crun", "runc"])
def test_the_interface_drives_each_runtime_the_same_way(user: User, name: str) -> None:
    r = user.sh([sys.executable, "-c", _INTERFACE, name, str(_bundle(user))])
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["features"] == name
    assert (seen["created"], seen["pid_file"], seen["listed"]) == ("created", True, True)
    assert (seen["started"], seen["killed"]) == ("running", "stopped")
    assert seen["deleted"] == [None, False, False]
    # failures carry the runtime's own words, and a bundle it could not read leaves nothing
    assert seen["start_unknown"].startswith(f"{name} failed while starting the container: ")
    assert seen["bad_bundle"].startswith(f"{name} failed while creating the container: ")
    assert seen["bad_bundle"] != f"{name} failed while creating the container: no message"
    assert seen["left"] is False



# crun's state read from its files (secpod.runtime.crun) beside `crun state` and `crun
# list` themselves, at each step of a container's life.
_CRUN_FILES = r"""
import json, sys, time
from pathlib import Path
from secpod.runtime import open_runtime
from secpod.runtime._cli import CommandLineRuntime

bundle = Path(sys.argv[1])
rt = open_runtime("crun")
cid = "files-crun"

def both():
    ours, crun = rt.state(cid), CommandLineRuntime.state(rt, cid)
    listed, crun_listed = rt.all_states().get(cid), CommandLineRuntime.all_states(rt).get(cid)
    pick = lambda s: None if s is None else [s["status"], s["pid"], s["bundle"]]
    return [pick(ours), pick(crun), pick(listed), pick(crun_listed)]

seen = {"unknown": both()}
rt.create(cid, bundle, pid_file=bundle / "pid", log=bundle / "runtime.log")
seen["created"] = both()
rt.start(cid)
seen["running"] = both()
rt.kill(cid, "KILL")
for _ in range(200):
    if CommandLineRuntime.state(rt, cid)["status"] == "stopped":
        break
    time.sleep(0.05)
seen["stopped"] = both()
rt.delete(cid)
seen["deleted"] = both()
print(json.dumps(seen))
"""


def test_crun_state_from_its_files_is_what_crun_says(user: User) -> None:
    bundle = _bundle(user)
    r = user.sh([sys.executable, "-c", _CRUN_FILES, str(bundle)])
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    for step, views in seen.items():
        assert views[0] == views[1] == views[2] == views[3], (step, views)
    assert seen["unknown"][0] is None and seen["deleted"][0] is None
    assert [seen[s][0][0] for s in ("created", "running", "stopped")] == [
        "created", "running", "stopped"]
    assert seen["running"][0][1] == int((bundle / "pid").read_text()) and \
        seen["stopped"][0][1] == 0


def test_ps_and_inspect_agree_and_a_process_that_died_is_exited(
        user: User, busybox: str) -> None:
    user.run("create", "--name", "made", busybox, "sleep", "600", check=True)
    user.run("run", "-d", "--name", "up", busybox, "sleep", "600", check=True)
    user.run("run", "--name", "done", busybox, "true", check=True)

    def seen() -> dict[str, tuple[str, str, int]]:
        listed = {r["name"]: r["status"]
                  for r in json.loads(user.run("ps", "-a", "--json", check=True).stdout)}
        shown = json.loads(user.run("inspect", "made", "up", "done", check=True).stdout)
        return {c["Name"]: (listed[c["Name"]], c["State"]["Status"], c["State"]["Pid"])
                for c in shown}

    now = seen()
    assert {name: v[:2] for name, v in now.items()} == {
        "made": ("created", "created"), "up": ("running", "running"),
        "done": ("exited", "exited")}
    assert now["up"][2] > 0 and now["made"][2] == now["done"][2] == 0
    # its process killed from outside (not by secpod): exited, with the signal's status
    user.sh(["kill", "-KILL", str(now["up"][2])], check=True)
    for _ in range(100):
        if seen()["up"][:2] == ("exited", "exited"):
            break
        time.sleep(0.1)
    assert seen()["up"] == ("exited", "exited", 0)
    shown = json.loads(user.run("inspect", "up", check=True).stdout)[0]
    assert (shown["State"]["ExitCode"], shown["State"]["Running"]) == (137, False)
    user.run("rm", "-f", "made", "up", "done", check=True)

def test_runtime_runc_end_to_end(user: User, busybox: str) -> None:
    seen = {}
    for name in ("crun", "runc"):  # the same confinement under both
        r = user.run("run", "--rm", "--runtime", name, busybox, "sh", "-c",
                     "grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status; id -u; hostname")
        assert r.returncode == 0, r.stderr
        seen[name] = r.stdout.splitlines()[:-1]  # the hostname is the container's id
    assert seen["runc"] == seen["crun"] and "Seccomp:\t2" in seen["runc"], seen
    user.run("run", "-d", "--runtime", "runc", "--name", "r", busybox, "sh", "-c",
             "echo up; trap 'exit 3' TERM; while :; do sleep 0.1; done", check=True)
    info = json.loads(user.run("inspect", "r", check=True).stdout)[0]["Secpod"]
    assert (info["runtime"], info["status"]) == ("runc", "running")
    # secpod writes nothing runc ignores (no run.oci.* annotation, no idmapped mount):
    # what is not enforced is the host's doing, as under crun
    crun = user.run("create", "--runtime", "crun", busybox, "true", check=True).stdout.strip()
    other = json.loads(user.run("inspect", crun, check=True).stdout)[0]["Secpod"]
    assert info["unenforced"] == other["unenforced"]
    assert user.run("rm", crun).returncode == 0
    assert user.run("exec", "r", "echo", "inside").stdout == "inside\n"
    assert user.run("stop", "r").returncode == 0
    listed = json.loads(user.run("ps", "-a", "--json", check=True).stdout)
    assert [(c["name"], c["status"], c["exit_code"]) for c in listed] == [("r", "exited", 3)]
    assert user.run("logs", "r").stdout == "up\n"
    assert user.run("rm", "r").returncode == 0
    assert not any((user.home / "data" / "secpod" / "run" / "runc").iterdir())
    made = [a for a in audit_records(user) if a["action"] == "container.create"]
    assert [a["details"]["runtime"] for a in made] == ["crun", "runc", "runc", "crun"]


def test_secpod_toml_gives_the_default_and_the_flag_overrides_it(
        user: User, busybox: str) -> None:
    folder = user.home / "config" / "secpod"
    for path in (folder.parent, folder):
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, user.uid, user.gid)
    user.file("config/secpod/secpod.toml", '[engine]\nruntime = "runc"\n')
    a = user.run("create", busybox, "true", check=True).stdout.strip()
    b = user.run("create", "--runtime", "crun", busybox, "true", check=True).stdout.strip()
    got = {c["Id"]: c["Secpod"]["runtime"] for c in json.loads(user.run("inspect", a, b).stdout)}
    assert got == {a: "runc", b: "crun"}
    # each container keeps its runtime: `ps` and `rm` find both after the default changes
    user.file("config/secpod/secpod.toml", '[engine]\nruntime = "crun"\n')
    assert {c["status"] for c in json.loads(
        user.run("ps", "-a", "--json").stdout)} == {"created"}
    assert user.run("rm", a, b).returncode == 0


def test_a_malformed_secpod_toml_is_an_error_that_names_it(user: User, busybox: str) -> None:
    path = user.file("config/secpod/secpod.toml", '[engine]\nruntime = "kata"\n')
    r = user.run("run", "--rm", busybox, "true")
    assert r.returncode != 0
    assert f"{path}: engine.runtime must be one of crun, runc, not 'kata'" in r.stderr
    assert "docs/configuration.md" in r.stderr
    assert user.run("ps", "-a", "-q").stdout == ""
    refused = [a for a in audit_records(user) if a["outcome"] == "refused"]
    assert refused and "engine.runtime" in str(refused[-1]["reason"])
    d = user.run("doctor")
    assert d.returncode != 0 and "secpod.toml" in d.stdout + d.stderr


def test_the_floor_restricts_the_runtimes(user: User, busybox: str, admin: Path) -> None:
    write_policy('[runtimes]\nallowed = ["crun"]\n')
    r = user.run("run", "--rm", "--runtime", "runc", busybox, "true")
    assert r.returncode != 0
    assert ("refused by the administrator's floor (runtimes.allowed in "
            "/etc/secpod/policy.toml)") in r.stderr
    assert "the OCI runtime runc is not allowed (allowed: crun)" in r.stderr
    assert "--runtime crun" in r.stderr
    refused = [a for a in audit_records(user) if a["outcome"] == "refused"]
    assert refused and "runc is not allowed" in str(refused[-1]["reason"])
    assert user.run("ps", "-a", "-q").stdout == ""
    assert user.run("run", "--rm", "--runtime", "crun", busybox, "true").returncode == 0
    doctor = user.run("doctor").stdout
    assert "refused by the administrator's floor" in doctor, doctor


def test_what_runc_would_fail_on_is_refused_first_with_the_reason(
        user: User, busybox: str, shared: Path) -> None:
    """A seccomp filter with flags (Podman's own profile, plus one): crun applies them,
    runc 1.1.5 fails on any. secpod says so before anything is made, and audits it."""
    base = json.loads((shared / "conformance" / "profiles" /
                       "containers-common-seccomp.json").read_text())
    base["flags"] = ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    path = user.file("flags.json", json.dumps(base))
    r = user.run("run", "--rm", "--runtime", "runc", "--security-opt", f"seccomp={path}",
                 busybox, "true")
    assert r.returncode != 0
    assert "runc cannot run this container as asked: seccomp flags " \
           "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in r.stderr, r.stderr
    assert "use --runtime crun" in r.stderr
    refused = [a for a in audit_records(user) if a["outcome"] == "refused"]
    assert refused and str(refused[-1]["reason"]).startswith("runtime: "), refused[-1]
    assert user.run("ps", "-a", "-q").stdout == ""
    assert user.run("run", "--rm", "--runtime", "crun", "--security-opt", f"seccomp={path}",
                    busybox, "echo", "ok").stdout == "ok\n"


def test_doctor_shows_both_runtimes_and_the_default(user: User) -> None:
    lines = {line.split(":")[0]: line for line in user.run("doctor").stdout.splitlines()}
    assert lines["[ok  ] crun"].endswith("(the default for new containers)"), lines
    assert "runc: /usr/" in lines["[ok  ] runc"], lines
    assert "runc version 1.1" in lines["[ok  ] runc"], lines
    assert "default" not in lines["[ok  ] runc"]
