"""Regenerate tests/assets/audit/good/: a small intact log with a fixed test key.

    python tests/assets/audit/make_good_log.py

23 records, a checkpoint every 5 (sizes 5, 10, 15, 20). The tests copy the
folder and change one thing in the copy per case.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from secpod.audit import _note, _store

HERE = Path(__file__).parent / "good"
SEED = bytes(range(32))  # a test key, never used for anything else
NAME = "test.example/secpod/audit/alice"


def main() -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    HERE.mkdir()
    key = _note.SignerKey(name=NAME, seed=SEED)
    (HERE / "key").write_text(str(key) + "\n")
    (HERE / "key.vkey").write_text(str(key.verifier()) + "\n")
    log = _store.LogDir(HERE, name=NAME, checkpoint_every=5)
    log._dir_checked = True
    actions = ["image.import", "container.create", "container.start", "container.exit",
               "container.rm"]
    for i in range(23):
        action = actions[i % len(actions)]
        log.append({
            "time": f"2024-05-01T10:{i:02d}:00.000000Z", "host": "test.example", "uid": 1000,
            "user": "alice", "action": action, "outcome": "refused" if i == 11 else "ok",
            "reason": "trust: rejected" if i == 11 else None,
            "container": {"id": "c" * 64 if "container" in action else None,
                          "name": "web" if "container" in action else None},
            "image": {"ref": "docker.io/library/busybox:latest",
                      "digest": "sha256:" + "b" * 64},
            "profile": "strict", "profile_hash": None, "confinement": None, "trust": None,
            "exit_status": 0 if action == "container.exit" else None,
        })
    for p in HERE.iterdir():
        p.chmod(0o644)


if __name__ == "__main__":
    main()
