"""The restart policy's decisions: what it covers, Docker's backoff, the flag's forms."""

from __future__ import annotations

import pytest

from secpod.errors import UsageError
from secpod.sandbox import restart
from secpod.spec.flags import parse_log_opts, parse_restart


def test_what_each_policy_covers() -> None:
    assert not restart.covers("no", 1, 0)
    assert restart.covers("always", 0, 99) and restart.covers("unless-stopped", 0, 0)
    assert restart.covers("on-failure", 1, 1000) and not restart.covers("on-failure", 0, 0)
    assert restart.covers("on-failure", None, 0)  # an unknown status is a failure
    assert restart.covers("on-failure:3", 2, 2) and not restart.covers("on-failure:3", 2, 3)
    assert not restart.covers("on-failure:0", 1, 0)


def test_what_starts_at_boot() -> None:
    """Docker's daemon at its start: always, whatever stopped it; unless-stopped unless
    stop or kill did; nothing else."""
    assert restart.starts_at_boot("always", "stop") and restart.starts_at_boot("always", None)
    assert restart.starts_at_boot("unless-stopped", None)
    assert not restart.starts_at_boot("unless-stopped", "kill")
    for policy in ("no", "on-failure", "on-failure:3"):
        assert not restart.starts_at_boot(policy, None)


def test_dockers_backoff() -> None:
    delays = [0.0]
    for _ in range(12):
        delays.append(restart.next_delay(delays[-1], 0.5))
    assert delays[1:6] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert delays[-1] == restart.MAX_DELAY
    assert restart.next_delay(12.8, 10.0) == 0.1  # a run of 10 s starts it again


@pytest.mark.parametrize(("text", "want"), [
    ("no", "no"), ("always", "always"), ("unless-stopped", "unless-stopped"),
    ("on-failure", "on-failure"), ("on-failure:3", "on-failure:3"),
    ("on-failure:007", "on-failure:7"),
])
def test_restart_forms(text: str, want: str) -> None:
    assert parse_restart(text) == want


@pytest.mark.parametrize(("text", "words"), [
    ("sometimes", "invalid --restart"), ("on-failure:", "only on-failure takes a count"),
    ("on-failure:-1", "only on-failure takes a count"), ("always:2", "only on-failure"),
])
def test_bad_restart_forms(text: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        parse_restart(text)
    with pytest.raises(UsageError, match="conflict"):
        parse_restart("always", auto_remove=True)
    assert parse_restart("no", auto_remove=True) == "no"


def test_log_opts() -> None:
    assert parse_log_opts([]) is None
    assert parse_log_opts(["max-size=1m"]) == 2 << 20
    assert parse_log_opts(["max-size=1m,max-file=2"]) == 2 << 20
    with pytest.raises(UsageError, match="at least"):
        parse_log_opts(["max-size=1k"])
    with pytest.raises(UsageError, match="exactly two"):
        parse_log_opts(["max-file=3"])
