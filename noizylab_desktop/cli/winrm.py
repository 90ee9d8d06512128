"""``noizylab winrm login|logout|run|bootstrap``: Windows peers without the app, over WinRM (HTTPS, NTLM)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.output import progress, warning, write_raw
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.errors import ConfigError, WinRMError

if TYPE_CHECKING:
    from noizylab_desktop.core.secrets import KeyringStore
    from noizylab_desktop.services.winrm import WinRMTarget


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the WinRM commands."""
    parser = sub.add_parser("winrm", help="run commands on a Windows computer without the app, over WinRM")
    actions = parser.add_subparsers(dest="winrm_command", metavar="ACTION", required=True)

    login = actions.add_parser("login", help="keep a Windows login for HOST in the keychain (asks for the password)")
    login.add_argument("host")
    login.add_argument("--user", required=True, help="the Windows account, e.g. alice or OMEN\\alice")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.set_defaults(handler=_login)

    logout = actions.add_parser("logout", help="forget the stored Windows login for HOST")
    logout.add_argument("host")
    logout.add_argument("--user", help="the account (default: the one stored for HOST)")
    logout.set_defaults(handler=_logout)

    run = actions.add_parser("run", help="run a command on HOST and show its output: winrm run HOST -- CMD ...")
    _target_options(run)
    # Everything after HOST: options, then ``--``, then the command (argparse alone cannot mix the two after HOST).
    run.add_argument("rest", nargs=argparse.REMAINDER, metavar="[OPTIONS] -- CMD", help="the command after `--`")
    run.set_defaults(handler=_run)

    boot = actions.add_parser("bootstrap", help="start the installed NOIZYLAB app on the Windows computer HOST")
    _target_options(boot)
    boot.set_defaults(handler=_bootstrap)


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", help="the Windows computer's name or address")
    _options(parser)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="the Windows account (default: the one stored by `winrm login`)")
    parser.add_argument("--port", type=int, default=5986, help="the WinRM HTTPS port (default 5986)")
    parser.add_argument(
        "--auth", choices=("ntlm", "basic"), default="ntlm", help="ntlm (default) or basic (still only over HTTPS)"
    )
    parser.add_argument("--ca-file", help="trust the host's certificate from this PEM file (e.g. its self-signed one)")
    parser.add_argument(
        "--insecure-skip-verify",
        action="store_true",
        help="do not check the host's certificate (trusted networks only)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer (default 30)")


def _store(settings: Settings) -> KeyringStore:
    from noizylab_desktop.core.secrets import KeyringStore

    return KeyringStore(settings.keychain_id)


def _login(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.services.winrm import save_login

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {args.user}@{args.host}: ")
    if not password:
        raise WinRMError("no password given: nothing was stored")
    save_login(_store(settings), args.host, args.user, password)
    print(f"stored the WinRM login for {args.user}@{args.host} in the keychain")
    return 0


def _logout(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.services.winrm import forget_login, load_login

    store = _store(settings)
    user = args.user or load_login(store, args.host, None)[0]
    forget_login(store, args.host, user)
    print(f"forgot the WinRM login for {user}@{args.host}")
    return 0


def _target(args: argparse.Namespace, settings: Settings) -> tuple[WinRMTarget, str]:
    from noizylab_desktop.services.winrm import WinRMTarget, load_login

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be from 1 to 65535, not {args.port}")
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be above 0 seconds, not {args.timeout:g}")
    if args.ca_file and args.insecure_skip_verify:
        raise ConfigError("--ca-file and --insecure-skip-verify contradict each other: choose one")
    user, password = load_login(_store(settings), args.host, args.user)
    if args.insecure_skip_verify:
        warning(f"not checking the certificate of {args.host}")
    target = WinRMTarget(
        host=args.host,
        user=user,
        port=args.port,
        auth=args.auth,
        verify=not args.insecure_skip_verify,
        ca_file=args.ca_file,
        timeout_s=args.timeout,
    )
    return target, password


def _run(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.services.winrm import run

    argv = _split_rest(args)
    target, password = _target(args, settings)
    result = run(target, password, argv, on_output=write_raw)
    return result.exit_code


def _split_rest(args: argparse.Namespace) -> list[str]:
    """Apply the options given after HOST to ``args`` and return the command after ``--``."""
    rest = list(args.rest)
    if "--" in rest:
        cut = rest.index("--")
        options, command = rest[:cut], rest[cut + 1 :]
    elif rest and rest[0].startswith("-"):
        options, command = rest, []  # options only: the missing command is reported below
    else:
        options, command = [], rest
    if options:
        parser = argparse.ArgumentParser(prog=f"noizylab winrm run {args.host}", add_help=False)
        _options(parser)
        parser.set_defaults(**{k: v for k, v in vars(args).items() if k != "rest"})
        parsed, unknown = parser.parse_known_args(options, namespace=argparse.Namespace(**vars(args)))
        if unknown:
            raise ConfigError(f"unknown option {unknown[0]!r} for `noizylab winrm run`: see `noizylab winrm run -h`")
        vars(args).update(vars(parsed))
    return command


def _bootstrap(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.services.winrm import bootstrap

    target, password = _target(args, settings)
    progress(f"starting NOIZYLAB on {args.host} ...")
    result = bootstrap(target, password, on_output=write_raw)
    if result.exit_code == 0:
        progress(f"NOIZYLAB runs on {args.host}: pair it with `noizylab pair invite` there")
    return result.exit_code
