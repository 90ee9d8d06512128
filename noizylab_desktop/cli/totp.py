"""``noizylab totp setup|status|disable``: the TOTP step-up that sensitive actions ask for (``core/totp.py``).

These work on the keychain and the state folder directly, with or without a running node: the node reads the same
state on every sensitive call, so turning TOTP on or off applies to the very next one.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.client import add_totp_flag
from noizylab_desktop.cli.output import add_json_flag, print_json, timestamp
from noizylab_desktop.core.config import Paths, Settings

if TYPE_CHECKING:
    from noizylab_desktop.core.totp import Totp

PROTECTED = (
    "granting control, display or tasks (`noizylab allow`), pairing and unpairing, "
    "and tunnels or the HTTP API beyond loopback"
)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the TOTP commands."""
    totp = sub.add_parser("totp", help="ask for an authenticator code before sensitive actions")
    actions = totp.add_subparsers(dest="totp_command", metavar="ACTION", required=True)
    setup = actions.add_parser("setup", help="turn TOTP on: shows a QR code and recovery codes, then asks for a code")
    setup.add_argument("--code", metavar="CODE", help="the app's current code (asked for when left out)")
    add_json_flag(setup, "print the secret, its otpauth:// address and the recovery codes as JSON (no QR code)")
    setup.set_defaults(handler=_setup)
    status = actions.add_parser("status", help="whether TOTP is on, and until when the last code holds")
    add_json_flag(status)
    status.set_defaults(handler=_status)
    disable = actions.add_parser("disable", help="turn TOTP off (takes a code, or a recovery code)")
    add_totp_flag(disable)
    disable.set_defaults(handler=_disable)


def _totp(paths: Paths, settings: Settings) -> Totp:
    from noizylab_desktop.core.secrets import KeyringStore
    from noizylab_desktop.core.totp import Totp

    return Totp(KeyringStore(settings.keychain_id), paths.state_dir)


def _ask(prompt: str) -> str:
    """One line from the person (the prompt on stderr, so ``--json`` output stays clean); empty at end of input."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def _qr(uri: str) -> str:
    import io

    import segno

    text = io.StringIO()
    segno.make(uri, error="m").terminal(out=text, compact=True)
    return text.getvalue()


def _setup(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.core.errors import StepUpError

    totp = _totp(paths, settings)
    enrolment = totp.enrol(settings.name)
    if args.json:
        row = {"secret": enrolment.secret, "uri": enrolment.uri, "recovery_codes": list(enrolment.recovery_codes)}
        print_json(row, one_line=True, flush=True)
    else:
        print("Scan this with an authenticator app (Aegis, Google Authenticator, 1Password, ...):\n")
        print(_qr(enrolment.uri))
        print(f"or type the secret into it: {enrolment.secret}\n")
        print("Recovery codes: each stands in for a code once, if the phone is lost. Keep them somewhere safe:")
        for code in enrolment.recovery_codes:
            print(f"    {code}")
        print(flush=True)
    code = args.code or _ask("Code the app shows now: ")
    if not code:
        raise StepUpError("no code was given: TOTP stays off; run `noizylab totp setup` again")
    totp.confirm(enrolment, code)
    message = f"TOTP is on: {PROTECTED} now ask for a code"
    print(message, file=sys.stderr if args.json else sys.stdout)
    return 0


def _status(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    status = _totp(paths, settings).status()
    if args.json:
        print_json(
            {
                "enabled": status.enabled,
                "enabled_at": status.enabled_at,
                "stepped_up_until": status.stepped_up_until,
                "wrong_tries": status.wrong_tries,
                "recovery_codes_left": status.recovery_codes_left,
            }
        )
    elif not status.enabled:
        print("TOTP is off: turn it on with `noizylab totp setup`")
    else:
        held = (
            f"a code holds until {timestamp(status.stepped_up_until, seconds=True)}"
            if status.stepped_up_until
            else "the next sensitive action asks for a code"
        )
        print(f"TOTP is on since {timestamp(status.enabled_at)}: {held}")
        print(f"{status.recovery_codes_left} recovery codes left; {status.wrong_tries} wrong tries in 5 minutes")
    return 0


def _disable(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    code = args.totp
    if not code and sys.stdin.isatty():
        code = _ask("TOTP code or recovery code: ")
    _totp(paths, settings).disable(code)
    print("TOTP is off: sensitive actions no longer ask for a code")
    return 0
