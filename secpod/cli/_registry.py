"""``secpod pull`` and ``secpod push``: parse, call secpod.images.registry, print.

The image digest goes to stdout (or JSON with ``--json``); progress to stderr.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from secpod.cli._flags import bool_flag

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    from secpod.images.registry import RegistryOptions


def _connection_options(p: argparse.ArgumentParser) -> None:
    bool_flag(p, "--tls-verify", dest="tls_verify", default=True,
              help="verify TLS (the default); --tls-verify=false also allows plain HTTP")
    p.add_argument("--creds", metavar="USER:PASS", help="credentials for the registry")
    p.add_argument("--authfile", type=Path, metavar="FILE",
                   help="containers-auth.json file (default: "
                        "$XDG_RUNTIME_DIR/containers/auth.json, as Podman)")


def _add_pull(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "pull", help="pull an image and its signatures from a registry",
        description="Pull REF (HOST[:PORT]/NAME[:TAG][@DIGEST]) into your store, with its "
                    "cosign signatures (the .sig tag and OCI 1.1 referrers), so run and "
                    "verify work offline. Prints the image's manifest digest.")
    p.add_argument("ref", metavar="REF")
    _connection_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_pull)


def _add_push(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "push", help="push an image and its signatures to a registry",
        description="Push IMAGE (a name or digest in your store) to REF "
                    "(HOST[:PORT]/NAME[:TAG]), and its sigstore signatures as the "
                    "sha256-<hex>.sig tag. --sign-by signs for REF first; the key's "
                    "passphrase comes from SECPOD_PASSWORD or COSIGN_PASSWORD, else a prompt.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--sign-by", type=Path, metavar="NAME.key",
                   help="sign the image as REF with this cosign private key, then push")
    _connection_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_push)


def _add_login(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "login", help="check credentials against a registry, then keep them",
        description="Ask REGISTRY's /v2/ with the credentials and, only if it accepts "
                    "them, store them in the auth file Podman and Skopeo share "
                    "($XDG_RUNTIME_DIR/containers/auth.json, mode 0600), where pull and "
                    "push find them. ~/.docker/config.json is read, never written.")
    p.add_argument("registry", metavar="REGISTRY", help="HOST[:PORT]")
    p.add_argument("-u", "--username", metavar="USER")
    p.add_argument("-p", "--password", metavar="PASSWORD",
                   help="visible to other users in the process list: prefer "
                        "--password-stdin or the prompt")
    bool_flag(p, "--password-stdin", dest="password_stdin",
              help="read the password from standard input")
    bool_flag(p, "--tls-verify", dest="tls_verify", default=True,
              help="verify TLS (the default); --tls-verify=false also allows plain HTTP")
    p.add_argument("--authfile", type=Path, metavar="FILE",
                   help="the auth file to write (default: $XDG_RUNTIME_DIR/containers/"
                        "auth.json)")
    p.set_defaults(func=_login)


def _login(args: argparse.Namespace) -> int:
    import getpass
    import sys

    from secpod.errors import UsageError
    from secpod.images.registry.login import login

    if args.password_stdin and args.password is not None:
        raise UsageError("--password and --password-stdin conflict")
    user = args.username
    if user is None:
        if not sys.stdin.isatty() or args.password_stdin:
            raise UsageError("login needs -u USER here", hint="secpod login -u USER REGISTRY")
        user = input("Username: ")
    password = args.password
    if args.password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif password is None:
        if not sys.stdin.isatty():
            raise UsageError("login needs a password: standard input is not a terminal",
                             hint="use --password-stdin")
        password = getpass.getpass("Password: ")
    path = login(args.registry, user, password, authfile=args.authfile,
                 tls_verify=args.tls_verify)
    print(f"Login Succeeded (credentials in {path})", file=sys.stderr)
    return 0


def _add_logout(sub: _Subparsers) -> None:
    p = sub.add_parser("logout", help="forget the credentials kept for a registry")
    p.add_argument("registry", metavar="REGISTRY", nargs="?", help="HOST[:PORT]")
    bool_flag(p, "-a", "--all", dest="all", help="every registry in the auth file")
    p.add_argument("--authfile", type=Path, metavar="FILE",
                   help="the auth file to edit (default: $XDG_RUNTIME_DIR/containers/"
                        "auth.json)")
    p.set_defaults(func=_logout)


def _logout(args: argparse.Namespace) -> int:
    import sys

    from secpod.images.registry.login import logout

    for key in logout(args.registry, authfile=args.authfile, all_registries=args.all):
        print(f"Removed login credentials for {key}", file=sys.stderr)
    return 0


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "pull": _add_pull,
    "push": _add_push,
    "login": _add_login,
    "logout": _add_logout,
}


def _options(args: argparse.Namespace) -> RegistryOptions:
    from secpod.images.registry import RegistryOptions

    return RegistryOptions(tls_verify=args.tls_verify, creds=args.creds, authfile=args.authfile)


def _pull(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_json, status
    from secpod.images.registry import pull

    result = pull(args.ref, _options(args), progress=status)
    if args.json:
        emit_json(result.as_dict())
    else:
        print(result.digest)
    return 0


def _push(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_json, status
    from secpod.images.registry import push

    result = push(args.image, args.ref, _options(args), sign_by=args.sign_by, progress=status)
    if args.json:
        emit_json(result.as_dict())
    else:
        print(result.digest)
    return 0
