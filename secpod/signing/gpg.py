"""GPG "simple signing" through the real ``gpg`` binary.

Verification imports the policy's keys into a throwaway GNUPGHOME made for
that one check (nothing from the user's keyring is trusted), runs ``gpg
--decrypt`` with a status file, and accepts only one good, unexpired,
unrevoked signature whose primary key fingerprint is among the imported ones.
The signed plaintext is then checked by the pure payload rules.

Signing uses the user's own GNUPGHOME (``--gpg-key FPR``) and writes what
containers/image writes: a binary (non-armored) OpenPGP signed message of the
payload.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from secpod._record import record
from secpod.errors import SignatureRejected, SigningError, VerificationError

_TIMEOUT = 60
MAX_PLAINTEXT = 4 * 1024 * 1024
_BASE = ["--batch", "--no-tty", "--no-autostart", "--no-auto-key-retrieve",
         "--no-permission-warning", "--trust-model", "always", "--quiet"]


@record(frozen=True)
class GPGResult:
    """A good signature: the signed plaintext and the signer's primary key fingerprint."""

    plaintext: bytes
    fingerprint: str


def _gpg() -> str:
    exe = shutil.which("gpg")
    if exe is None:
        raise VerificationError("gpg is not installed: GPG signatures cannot be checked",
                                hint="install GnuPG (apt-get install gnupg)")
    return exe


def _status(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [line.split()[1:] for line in text.splitlines()
            if line.startswith("[GNUPG:] ") and len(line.split()) > 1]


def _run(argv: list[str], home: Path) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPG")}
    env["GNUPGHOME"] = str(home)
    env["LC_ALL"] = "C"
    try:
        return subprocess.run(argv, capture_output=True, timeout=_TIMEOUT, env=env,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        raise VerificationError("gpg did not finish in time") from e


def verify(blob: bytes, keyrings: Sequence[bytes]) -> GPGResult:
    """Check ``blob`` against exactly the keys in ``keyrings`` (binary or armored).

    Raises SignatureRejected (bad, expired, revoked, unknown-key, missing or
    multiple signatures; no key imported) or VerificationError (gpg missing or
    failing to run).
    """
    exe = _gpg()
    with tempfile.TemporaryDirectory(prefix="secpod-gpg-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        trusted: set[str] = set()
        for i, ring in enumerate(keyrings):
            ring_file = Path(tmp) / f"keyring-{i}"
            ring_file.write_bytes(ring)
            status = Path(tmp) / f"import-{i}.status"
            _run([exe, "--homedir", str(home), *_BASE, "--status-file", str(status),
                  "--import", str(ring_file)], home)
            for fields in _status(status):
                if fields[0] == "IMPORT_OK" and len(fields) >= 3:
                    trusted.add(fields[2].upper())
        if not trusted:
            raise SignatureRejected("no public keys imported from the policy's keys",
                                    hint="check that the policy's keyPath is a GPG public key")
        sig_file = Path(tmp) / "signature"
        sig_file.write_bytes(blob)
        out = Path(tmp) / "plaintext"
        status = Path(tmp) / "verify.status"
        proc = _run([exe, "--homedir", str(home), *_BASE, "--status-file", str(status),
                     "--output", str(out), "--decrypt", str(sig_file)], home)
        lines = _status(status)
        _judge(lines, proc)
        valid = [f for f in lines if f[0] == "VALIDSIG"]
        primary = valid[0][-1].upper() if valid and len(valid[0]) >= 11 else (
            valid[0][1].upper() if valid else "")
        if primary not in trusted:
            raise SignatureRejected(f"signature by key {primary} is not accepted")
        try:
            if out.stat().st_size > MAX_PLAINTEXT:
                raise SignatureRejected("the signed payload is too large")
            plaintext = out.read_bytes()
        except FileNotFoundError as e:
            raise SignatureRejected("the signature carries no signed data") from e
        return GPGResult(plaintext=plaintext, fingerprint=primary)


def _judge(lines: list[list[str]], proc: subprocess.CompletedProcess[bytes]) -> None:
    kinds = [f[0] for f in lines]
    if "ENC_TO" in kinds or "BEGIN_DECRYPTION" in kinds or "DECRYPTION_FAILED" in kinds:
        raise SignatureRejected("the GPG message is encrypted, not signed")
    if "NODATA" in kinds and "NEWSIG" not in kinds:
        raise SignatureRejected("not an OpenPGP message (garbage or truncated signature)")
    count = kinds.count("NEWSIG")
    if count != 1:
        detail = _stderr(proc)
        raise SignatureRejected(f"unexpected GPG signature count {count}"
                                + (f" ({detail})" if detail and count == 0 else ""))
    for f in lines:
        if f[0] == "ERRSIG":
            missing = any(g[0] == "NO_PUBKEY" for g in lines)
            raise SignatureRejected(
                f"signature by unknown key {f[1]}" if missing
                else f"the GPG signature cannot be checked (key {f[1]})")
        if f[0] == "BADSIG":
            raise SignatureRejected("the GPG signature is invalid (BADSIG): the signed data "
                                    "was changed or the signature is corrupt")
        if f[0] == "EXPSIG":
            raise SignatureRejected("the GPG signature has expired")
        if f[0] == "EXPKEYSIG":
            raise SignatureRejected(f"the signing key {f[1]} has expired")
        if f[0] == "REVKEYSIG":
            raise SignatureRejected(f"the signing key {f[1]} has been revoked")
    if "GOODSIG" not in kinds or "VALIDSIG" not in kinds or proc.returncode != 0:
        raise SignatureRejected("the GPG signature is not valid: " + (_stderr(proc) or
                                                                        "no good signature"))


def _stderr(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
    return "; ".join(ln.removeprefix("gpg: ") for ln in lines[-3:])


def sign(payload: bytes, fingerprint: str, *, gnupghome: str | None = None) -> bytes:
    """Sign ``payload`` with the user's key ``fingerprint``; return the binary OpenPGP message.

    Raises SigningError when gpg fails (unknown key, no secret key, no passphrase).
    """
    exe = _gpg()
    env = dict(os.environ)
    if gnupghome:
        env["GNUPGHOME"] = gnupghome
    argv = [exe, "--batch", "--no-tty", "--yes", "--quiet", "--local-user", fingerprint,
            "--sign", "--output", "-"]
    try:
        proc = subprocess.run(argv, input=payload, capture_output=True, timeout=_TIMEOUT,
                              env=env, check=False)
    except subprocess.TimeoutExpired as e:
        raise SigningError("gpg did not finish signing in time",
                                hint="gpg may be waiting for a passphrase; use gpg-agent") from e
    if proc.returncode != 0 or not proc.stdout:
        detail = _stderr(proc) or f"exit status {proc.returncode}"
        raise SigningError(f"gpg could not sign with key {fingerprint}: {detail}",
                                hint="check `gpg --list-secret-keys` for the key")
    return proc.stdout
