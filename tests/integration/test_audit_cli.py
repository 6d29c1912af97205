"""The audit log end to end, as an unprivileged user running the real `secpod`.

Records come from real commands (``image import``) and from ``secpod.audit.record``
called in the user's own processes, the way every area calls it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests.conftest import User

PY = str(Path(sys.executable))


def record(user: User, *calls: str) -> None:
    """Run ``secpod.audit.record(...)`` calls as ``user`` (each a Python argument list)."""
    code = "from secpod.audit import record\n" + "\n".join(f"record({c})" for c in calls)
    user.sh([PY, "-c", code], check=True)


def audit_dir(user: User) -> Path:
    return user.home / "data" / "secpod" / "audit"


def log_lines(user: User) -> list[bytes]:
    return (audit_dir(user) / "log.jsonl").read_bytes().splitlines(keepends=True)


def test_records_verify_and_prove_offline(user: User, busybox: str) -> None:
    record(user,
           "'container.create', 'ok', container_id='c1', container_name='web', "
           "image_ref='docker.io/library/busybox:latest', profile='strict'",
           "'container.exit', 'ok', container_id='c1', exit_status=3, checkpoint=True",
           "'container.run.refused', 'refused', reason='trust: rejected'")
    r = user.run("audit", "log", "--json", check=True)
    recs = json.loads(r.stdout)
    assert [x["action"] for x in recs] == ["image.import", "container.create", "container.exit",
                                           "container.run.refused"]
    assert {x["user"] for x in recs} == {user.name} and {x["uid"] for x in recs} == {user.uid}
    assert [x["seq"] for x in recs] == [0, 1, 2, 3]

    r = user.run("audit", "log", "--action", "container.*", "--container", "web")
    assert r.returncode == 0 and "container.create" in r.stdout and "image.import" not in r.stdout

    r = user.run("audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "intact" in r.stdout and "covered by a verified checkpoint: 3" in r.stdout

    vkey = user.run("audit", "key", check=True).stdout.strip()
    assert len(vkey.split("+", 2)) == 3
    assert vkey.split("+")[0].endswith(f"/secpod/audit/{user.name}")
    proof = user.file("proof.json", user.run("audit", "prove", "1", check=True).stdout)
    r = user.run("audit", "verify-proof", str(proof), "--key", vkey, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["record"]["action"] == "container.create"

    # Record 3 is after the last checkpoint: prove refuses until one is signed.
    r = user.run("audit", "prove", "3")
    assert r.returncode == 1 and "not covered by the checkpoint" in r.stderr
    user.run("audit", "checkpoint", check=True)
    assert user.run("audit", "prove", "3").returncode == 0

    # A proof does not verify against another log's key.
    other = "other/log+" + vkey.split("+", 1)[1]
    r = user.run("audit", "verify-proof", str(proof), "--key", other)
    assert r.returncode == 1 and "error" in r.stderr


def test_a_kept_checkpoint_proves_the_log_only_grew_and_catches_a_rewrite(
        user: User, busybox: str) -> None:
    """An auditor keeps a checkpoint; later the user proves the log still extends it."""
    record(user, *[f"'image.tag', 'ok', image_ref='x:{i}'" for i in range(4)],
           "'image.tag', 'ok', image_ref='x:4', checkpoint=True")
    kept = user.file("kept.note", (audit_dir(user) / "checkpoint").read_text())
    record(user, *[f"'image.tag', 'ok', image_ref='y:{i}'" for i in range(7)])
    user.run("audit", "checkpoint", check=True)
    vkey = user.run("audit", "key", check=True).stdout.strip()

    out = user.home / "consistency.json"
    r = user.run("audit", "prove", "--since", str(kept), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "extends" in r.stderr and r.stdout == ""
    proof = json.loads(out.read_text())
    assert proof["format"] == "secpod-audit-consistency/1"
    assert proof["old_size"] == 6 and proof["tree_size"] == 13  # with the image import
    r = user.run("audit", "verify-proof", str(out), "--key", vkey, "--checkpoint", str(kept),
                 "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert (got["ok"], got["old_size"], got["tree_size"], got["key"]) == (True, 6, 13, vkey)
    assert got["old_time"] <= got["time"]
    r = user.run("audit", "verify-proof", str(out), "--key", vkey)
    assert r.returncode == 0 and "nothing in it was changed or removed" in r.stdout

    # A tampered proof fails (exit 1), and so does one checked against another log's key.
    forged = dict(proof, path=list(reversed(proof["path"])))
    bad = user.file("forged.json", json.dumps(forged))
    r = user.run("audit", "verify-proof", str(bad), "--key", vkey)
    assert r.returncode == 1 and "changed or removed" in r.stderr
    other = "other/log+" + vkey.split("+", 1)[1]
    assert user.run("audit", "verify-proof", str(out), "--key", other).returncode == 1

    # Usage: SEQ and --since together, or neither, is one clear error.
    for argv in (["audit", "prove"], ["audit", "prove", "1", "--since", str(kept)]):
        r = user.run(*argv)
        assert r.returncode != 0 and "give a record's SEQ" in r.stderr

    # The user rewrites a record the kept checkpoint covers and signs a new checkpoint
    # over the rewritten log: the kept checkpoint exposes it.
    lines = log_lines(user)
    lines[2] = lines[2].replace(b'"outcome":"ok"', b'"outcome":"refused"')
    (audit_dir(user) / "log.jsonl").write_bytes(b"".join(lines))
    user.run("audit", "checkpoint", check=True)  # the user's own key signs the forgery
    r = user.run("audit", "prove", "--since", str(kept))
    assert r.returncode == 1, r.stdout
    assert "no longer matches the checkpoint you kept (size 6)" in r.stderr


def test_verify_names_a_record_changed_by_hand(user: User, busybox: str) -> None:
    record(user, *[f"'image.tag', 'ok', image_ref='x:{i}'" for i in range(6)])
    lines = log_lines(user)
    lines[2] = lines[2].replace(b'"outcome":"ok"', b'"outcome":"refused"')
    path = audit_dir(user) / "log.jsonl"
    path.write_bytes(b"".join(lines))
    r = user.run("audit", "verify", "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert not out["intact"]
    assert out["problems"][0]["kind"] == "modified" and out["problems"][0]["seq"] == 2
    r = user.run("audit", "verify")
    assert r.returncode == 1 and "record 2 was modified" in r.stdout


def test_a_kept_checkpoint_catches_a_log_cut_short(user: User, busybox: str) -> None:
    record(user, *[f"'image.tag', 'ok', image_ref='x:{i}'" for i in range(4)])
    note = user.run("audit", "checkpoint", check=True).stdout
    kept = user.file("kept.note", note)
    d = audit_dir(user)
    (d / "log.jsonl").write_bytes(b"".join(log_lines(user)[:2]))
    for f in ("checkpoints.jsonl", "checkpoint", "state.json"):
        (d / f).unlink()
    r = user.run("audit", "verify", "--checkpoint", str(kept))
    assert r.returncode == 1
    assert "truncated back past a checkpoint" in r.stdout and str(kept) in r.stdout


def test_a_torn_write_is_reported_then_recovered_and_recorded(user: User, busybox: str) -> None:
    # What a writer killed in the middle of write(2) leaves behind: a line without its end.
    with open(audit_dir(user) / "log.jsonl", "ab") as f:
        f.write(b'{"seq":1,"prev":"0123')
    r = user.run("audit", "verify")
    assert r.returncode == 1
    assert "torn" in r.stdout and "record 1" in r.stdout
    record(user, "'image.tag', 'ok', image_ref='after:crash'")
    r = user.run("audit", "verify")
    assert r.returncode == 0, r.stdout
    recs = json.loads(user.run("audit", "log", "--json", check=True).stdout)
    assert [x["action"] for x in recs] == ["image.import", "audit.recover", "image.tag"]
    assert "torn line" in recs[1]["reason"]


def test_a_missing_key_is_reported(user: User, busybox: str) -> None:
    d = audit_dir(user)
    (d / "key").unlink()
    (d / "key.vkey").unlink()
    r = user.run("audit", "verify")
    assert r.returncode == 1 and "verifier key is missing" in r.stdout


def test_eight_concurrent_writers_lose_nothing(user: User) -> None:
    code = ("import sys\nfrom secpod.audit import record\nw = sys.argv[1]\n"
            "for i in range(50):\n"
            "    record('image.tag', 'ok', image_ref=f'w{w}:{i}', details={'w': w, 'i': i})\n")
    procs = [subprocess.Popen(user.command([PY, "-c", code, str(w)]), cwd=str(user.home))
             for w in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    r = user.run("audit", "verify", "--json")
    assert r.returncode == 0, r.stdout
    assert json.loads(r.stdout)["records"] == 400
    recs = [json.loads(x) for x in log_lines(user)]
    for w in range(8):
        assert [x["details"]["i"] for x in recs if x["details"]["w"] == str(w)] == list(range(50))
    assert len({x["prev"] for x in recs}) == 400


def test_the_log_is_private(user: User, busybox: str) -> None:
    d = audit_dir(user)
    assert d.stat().st_mode & 0o777 == 0o700
    assert (d / "log.jsonl").stat().st_mode & 0o777 == 0o600
    assert (d / "key").stat().st_mode & 0o777 == 0o600
    assert (d / "log.jsonl").stat().st_uid == user.uid


# --- the HTML report in a real browser ---------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (as Chromium writes them) into rows of pixel bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            assert body[8] == 8 and body[9] in (2, 6)
            channels = 3 if body[9] == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, channels, rows


def test_the_html_report_displays_in_chromium(user: User, user2: User, busybox: str) -> None:
    cis = ("confinement={'cis_findings': [{'id': '5.10', 'severity': 'medium', 'title': "
           "'Memory limited'}], 'unenforced': ['pids limit']}")
    record(user,
           f"'container.create', 'ok', container_id='a1', container_name='web', "
           f"image_ref='docker.io/library/busybox:latest', profile='strict', {cis}, "
           "trust={'accepted': True, 'requirements': ['insecureAcceptAnything'], 'reasons': []}",
           "'container.start', 'ok', container_id='a1', image_ref='docker.io/library/busybox:"
           "latest', profile='strict'",
           "'container.exit', 'ok', container_id='a1', exit_status=0, image_ref='docker.io/"
           "library/busybox:latest', profile='strict'",
           "'container.run.refused', 'refused', reason='trust: rejected evil:latest', "
           "image_ref='evil:latest'")
    out = user.home / "report.html"
    r = user.run("audit", "report", "--format", "html", "--output", str(out))
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    # One self-contained file: nothing fetched from anywhere, nothing run.
    assert "<script" not in html
    assert "http://" not in html and "https://" not in html
    out.chmod(0o644)
    shot = user.home / "shot.png"
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
               "--window-size=1000,700", f"--user-data-dir={user.home / 'chromium'}"]
    r = user.sh([*browser, f"--screenshot={shot}", f"file://{out}"], timeout=120)
    assert shot.exists(), r.stderr
    width, channels, rows = _png_pixels(shot.read_bytes())
    colours = {row[i:i + 3] for row in rows[::7] for i in range(0, width * channels, 7 * channels)}
    assert len(colours) > 20  # a page with a header, cards and a timeline, not a blank one
    dom = user.sh([*browser, "--dump-dom", f"file://{out}"], timeout=120).stdout
    assert user.name in dom and "Timeline" in dom and "trust: rejected evil:latest" in dom
    assert "5.10" in dom and "pids limit" in dom
    assert user2.name not in dom
    assert os.path.getsize(shot) > 10_000


def test_report_formats(user: User, busybox: str) -> None:
    record(user, "'container.run.refused', 'refused', reason='policy: below the floor', "
                 "image_ref='busybox:latest', profile='default'")
    text = user.run("audit", "report", check=True).stdout
    assert "below the floor" in text and user.name in text
    data = json.loads(user.run("audit", "report", "--format", "json", check=True).stdout)
    assert data["totals"]["refusals"] == 1 and data["users"][0]["user"] == user.name
    csv_text = user.run("audit", "report", "--format", "csv", check=True).stdout
    assert csv_text.splitlines()[0].startswith("user,uid,image,profile,containers")
    assert f"{user.name},{user.uid},busybox:latest,default,0" in csv_text
    r = user.run("audit", "report", "--since", "yesterday-ish")
    assert r.returncode == 2 and "is not a time" in r.stderr
    empty = json.loads(user.run("audit", "report", "--format", "json", "--since", "2999-01-01",
                                check=True).stdout)
    assert empty["totals"]["records"] == 0


@pytest.mark.parametrize("args", [["verify"], ["log"], ["report"]])
def test_no_log_yet_is_a_clear_error(user: User, args: list[str]) -> None:
    r = user.run("audit", *args)
    assert r.returncode == 1 and "there is no audit log" in r.stderr


def test_readers_refuse_a_fifo_and_a_link_to_a_device(user: User) -> None:
    """An administrator reads users' folders: a FIFO or a link to /dev/zero as the log or
    its key must not hang the reader nor fill memory (one clear error instead)."""
    for name, make in (("fifo", lambda p: os.mkfifo(p)),
                       ("zero", lambda p: p.symlink_to("/dev/zero"))):
        d = user.home / f"hostile-{name}"
        d.mkdir()
        make(d / "log.jsonl")
        subprocess.run(["chown", "-hR", f"{user.uid}:{user.gid}", str(d)], check=True)
        for cmd in (["audit", "verify", "--dir", str(d)], ["audit", "log", "--dir", str(d)],
                    ["audit", "report", "--dir", str(d)]):
            r = user.run(*cmd, timeout=30)
            assert r.returncode == 1, (cmd, r.stdout, r.stderr)
            assert "not a regular file" in r.stderr, (cmd, r.stderr)
    # the key and checkpoint beside a real log, as FIFOs
    record(user, "'image.pull', 'ok', image_ref='a'")
    real = audit_dir(user)
    (real / "checkpoint").unlink(missing_ok=True)
    os.mkfifo(real / "checkpoint")
    r = user.run("audit", "verify", timeout=30)
    assert r.returncode == 1 and "not a regular file" in r.stderr, r.stderr


def test_control_characters_in_records_are_escaped_in_text(user: User) -> None:
    """A crafted record cannot erase the line above it or retitle the terminal."""
    evil = "x\x1b[1A\x1b[2K\x1b]0;pwned\x07\r\u202e"
    record(user, f"'image.pull', 'refused', image_ref={evil!r}, reason={evil!r}")
    out = user.run("audit", "log", check=True).stdout
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out
    assert "x\\x1b[1A\\x1b[2K\\x1b]0;pwned\\x07\\x0d\\u202e" in out
    # JSON keeps the record as it is (escaped by the encoder)
    recs = json.loads(user.run("audit", "log", "--json", check=True).stdout)
    assert recs[-1]["reason"] == evil
    report = user.run("audit", "report", "--format", "text", check=True).stdout
    assert "\x1b" not in report
