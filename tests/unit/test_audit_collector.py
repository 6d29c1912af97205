"""The collector's handling of submissions, and the client's refusals (in-process, as root)."""

from __future__ import annotations

import json
import os
import pwd
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from secpod.audit._collector import Collector, CollectorClient, validate_submission
from secpod.audit._verify import verify_dir
from secpod.errors import CollectorError

pytestmark = [pytest.mark.root]  # sockets owned by root, chown to another uid
ME = pwd.getpwuid(os.getuid()).pw_name


def submission(**kw: object) -> bytes:
    rec: dict[str, object] = {"seq": 4, "time": "2024-01-01T00:00:00.000000Z", "host": "h",
                              "uid": os.getuid(), "user": ME, "action": "container.start",
                              "outcome": "ok", "container": {"id": "c1", "name": "web"}}
    rec.update(kw)
    return json.dumps({"v": 1, "record": rec}).encode()


@pytest.fixture
def collector(tmp_path: Path) -> Collector:
    return Collector(tmp_path / "audit.sock", tmp_path / "host", checkpoint_every=3)


def host_records(c: Collector) -> list[dict[str, object]]:
    return [json.loads(x) for x in c.log.log_file.read_text().splitlines()]


def test_a_record_is_kept_under_the_senders_uid(collector: Collector) -> None:
    answer = collector.handle(submission(), pid=1234, uid=os.getuid())
    assert answer == {"ok": True, "seq": 0}
    rec = host_records(collector)[0]
    assert (rec["uid"], rec["user"], rec["action"]) == (os.getuid(), ME, "container.start")
    assert rec["source"] == {"seq": 4, "time": "2024-01-01T00:00:00.000000Z", "host": "h",
                             "pid": 1234}
    assert verify_dir(collector.log.path).intact


def test_another_uid_is_a_forgery_recorded_under_the_true_uid(collector: Collector) -> None:
    answer = collector.handle(submission(uid=4242, user="mallory"), pid=99, uid=os.getuid())
    assert answer["ok"] is False and "forgery" in str(answer["error"])
    rec = host_records(collector)[0]
    assert (rec["action"], rec["outcome"], rec["uid"]) == ("audit.forgery", "refused",
                                                           os.getuid())
    assert rec["details"] == {"claimed_uid": 4242, "claimed_user": "mallory",  # type: ignore[comparison-overlap]
                              "claimed_action": "container.start", "claimed_outcome": "ok"}
    # The right uid with another user's name is a forgery too.
    assert collector.handle(submission(user="mallory"), pid=99, uid=os.getuid())["ok"] is False


@pytest.mark.parametrize(("payload", "why"), [
    (b"not json", "malformed record"),
    (json.dumps({"v": 2, "record": {}}).encode(), "not a version 1 submission"),
    (submission(action="Rm -rf"), "action must be"),
    (submission(outcome="fine"), "outcome must be"),
    (submission(uid="0"), "uid must be an integer"),
    (submission(container=["x"]), "container must be an object"),
    (submission(reason="x" * 5000), "reason must be a string"),
    (submission(exit_status=True), "exit_status"),
])
def test_malformed_submissions_are_refused_and_recorded(collector: Collector, payload: bytes,
                                                        why: str) -> None:
    answer = collector.handle(payload, pid=1, uid=os.getuid())
    assert answer["ok"] is False and why in str(answer["error"])
    rec = host_records(collector)[0]
    assert rec["action"] == "audit.malformed" and rec["uid"] == os.getuid()


def test_an_over_long_submission_is_refused_and_recorded_as_such(collector: Collector
                                                                  ) -> None:
    from secpod.audit._collector import MAX_LINE

    ours, theirs = socket.socketpair()
    t = threading.Thread(target=collector._serve_connection, args=(theirs,))
    t.start()
    ours.sendall(b"x" * (MAX_LINE + 1))
    answer = json.loads(ours.makefile("rb").readline())
    t.join()
    ours.close()
    assert answer == {"ok": False, "error": "record too long"}
    rec = host_records(collector)[0]
    assert (rec["action"], rec["outcome"], rec["uid"]) == ("audit.malformed", "refused",
                                                           os.getuid())
    assert f"longer than {MAX_LINE} bytes" in str(rec["reason"])
    assert rec["details"]["bytes"] > MAX_LINE  # type: ignore[index]


def test_a_host_log_that_cannot_be_written_is_named_to_the_sender(
        collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    from secpod.errors import AuditError

    def fail(*_a: object, **_k: object) -> None:
        raise AuditError("cannot write the audit log: No space left on device")

    monkeypatch.setattr(collector.log, "append", fail)
    ours, theirs = socket.socketpair()
    t = threading.Thread(target=collector._serve_connection, args=(theirs,))
    t.start()
    ours.sendall(submission() + b"\n")
    answer = json.loads(ours.makefile("rb").readline())
    t.join()
    ours.close()
    assert answer["ok"] is False and "No space left" in answer["error"]


def test_validate_keeps_only_known_fields() -> None:
    body = validate_submission({"action": "image.tag", "outcome": "ok", "uid": 1, "user": "a",
                                "evil": "x", "details": {"k": 1}})
    assert "evil" not in body and body["details"] == {"k": 1}


# --- the client --------------------------------------------------------------------


@pytest.fixture
def silent_server(tmp_path: Path) -> Iterator[Path]:
    """A root-owned socket whose listener accepts and never answers."""
    path = tmp_path / "silent.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(4)
    held: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except TimeoutError:
                continue

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield path
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_a_collector_that_does_not_answer_is_an_error(silent_server: Path) -> None:
    client = CollectorClient(silent_server, timeout=0.3)
    with pytest.raises(CollectorError, match="does not answer"):
        client.submit({"action": "x"})
    client.close()


def test_a_missing_socket_or_a_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="does not exist"):
        CollectorClient(tmp_path / "nothing.sock")
    (tmp_path / "file").write_text("")
    with pytest.raises(CollectorError, match="is not a socket"):
        CollectorClient(tmp_path / "file")


def test_a_socket_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "theirs.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen(1)
    os.chown(path, 65534, 65534)
    with pytest.raises(CollectorError, match="owned by uid 65534, not root"):
        CollectorClient(path)
    s.close()


def test_threads_of_the_collector_share_one_log_safely(collector: Collector) -> None:
    def send(n: int) -> None:
        for i in range(n):
            assert collector.handle(submission(seq=i), pid=1, uid=os.getuid())["ok"]

    threads = [threading.Thread(target=send, args=(20,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r = verify_dir(collector.log.path)
    assert r.intact and r.records == 120


def test_a_client_that_sends_a_byte_at_a_time_is_hung_up_on(
        collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole line must arrive within READ_TIMEOUT: trickling bytes does not hold a
    connection (nor the uid's share of them) open."""
    import time

    from secpod.audit import _collector

    monkeypatch.setattr(_collector, "READ_TIMEOUT", 0.5)
    ours, theirs = socket.socketpair()
    collector._conns[os.getuid()] = 1
    server = threading.Thread(target=collector._serve_connection,
                              args=(theirs, os.getpid(), os.getuid()))
    start = time.monotonic()
    server.start()
    ours.settimeout(5)
    with pytest.raises(OSError):  # EPIPE/ECONNRESET once it has hung up
        for byte in submission():
            ours.send(bytes([byte]))
            time.sleep(0.05)
    server.join(timeout=5)
    assert not server.is_alive() and time.monotonic() - start < 3
    assert os.getuid() not in collector._conns  # its connection no longer counts
