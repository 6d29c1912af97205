"""One error base for everything secpod reports to a person.

Every failure a user can act on is an :class:`Error` with a message (what went
wrong) and a hint (what to do next). ``secpod.cli.main`` catches only these,
prints both to stderr and exits with :attr:`Error.exit_code`. Anything else is
a bug and shows a traceback.
"""

from __future__ import annotations


class Error(Exception):
    """Base of every error secpod reports. ``exit_code`` is the CLI's exit status."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(Error):
    """The command line or a request is malformed (exit 2)."""

    exit_code = 2


class NetworkRequestError(UsageError):
    """A network request of ``run``/``create`` is malformed or cannot be had (``-p``,
    ``--network``, ``--dns``, ``--add-host``): exit 125, as Docker's ``run`` exits."""

    exit_code = 125


class MountRequestError(UsageError):
    """A mount of ``run``/``create`` is malformed (``-v``, ``--mount``, ``--tmpfs``): exit
    125, as Docker's ``run`` exits; audited as a refusal at the flags stage."""

    exit_code = 125


class NotFound(Error):
    """A named thing (image, container, key, profile) does not exist."""


class Conflict(Error):
    """A name is taken, or the object is in the wrong state for the request."""


class Refused(Error):
    """A policy refused the action (rootless rule, trust policy, admin floor)."""


class HostError(Error):
    """The host lacks something secpod needs (a tool, a kernel feature, an id range)."""


class MalformedInput(Error):
    """An input file (archive, manifest, policy, profile, log) is malformed or hostile."""


# --- images -----------------------------------------------------------------


class DigestMismatch(MalformedInput):
    """A blob's content does not match the digest or size its descriptor names."""


class HostileArchive(MalformedInput):
    """A layer tries to escape its root, or exceeds the unpack bounds."""


class ContentChanged(Error):
    """A stored image is not what was verified when it entered the store: a blob, the
    unpacked tree or the record of them changed since (or was never recorded)."""


# --- sandbox ----------------------------------------------------------------


class RootRefused(Refused):
    """secpod was started as root, or through a setuid/setgid wrapper."""


class RuntimeFailed(Error):
    """The OCI runtime (crun, runc) or conmon failed; the message carries its own words."""


# --- policies ---------------------------------------------------------------


class ProfileError(MalformedInput):
    """A profile file is malformed, or names an unknown capability or syscall."""


class FloorRefused(Refused):
    """The administrator's floor refuses the requested confinement."""


class AdminPolicyError(MalformedInput):
    """/etc/secpod/policy.toml is malformed, or someone other than root could write it."""


# --- signing ----------------------------------------------------------------


class VerificationError(Error):
    """A signature check could not run (missing key, unreadable policy, I/O)."""


class SignatureRejected(Refused):
    """A signature was checked and is not acceptable under the policy."""


class TrustPolicyError(MalformedInput):
    """A trust policy file (containers-policy.json) is malformed; the message names its path."""


class KeyFormatError(MalformedInput):
    """A key file is not in a format secpod reads, or cannot be decrypted with the passphrase."""


class SigningError(Error):
    """A signature could not be made (gpg failed, the key cannot sign)."""


class RegistriesConfigError(MalformedInput):
    """A registries.d(5) file is malformed or conflicts with another; the message names it."""


class LookasideError(Error):
    """A lookaside signature store (registries.d) could not be read or written."""


# --- registry ---------------------------------------------------------------


class RegistryError(Error):
    """A registry answered with an error; the message names the host, status and code."""


class RegistryUnreachable(RegistryError):
    """No connection to a registry: refused, unknown host, timeout, or a TLS failure."""


class AuthenticationFailed(RegistryError):
    """A registry requires credentials, or refused the ones given."""


# --- audit ------------------------------------------------------------------


class AuditError(Error):
    """The audit log could not be written or is not intact."""


class CheckpointError(AuditError):
    """A checkpoint or verifier key is malformed, or a signature on it does not verify."""


class CollectorError(AuditError):
    """The audit collector cannot be reached, is not root's, or refused a record."""


class Interrupted(BaseException):  # noqa: N818 (a signal, as KeyboardInterrupt is)
    """SIGTERM or SIGHUP while secpod was making something: raised from the signal
    handler so that clean-up runs; the CLI exits 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum
