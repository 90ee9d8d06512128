"""The ``noizylab`` command: the grammar and the dispatch. Each command lives in its own module, which adds its
parser with ``register(sub)`` and names the function that runs it with ``set_defaults(handler=...)``.

The core commands come from ``lifecycle`` (node, start, stop, status, logs), ``pairing`` (id, pair, peers, unpair),
``doctor`` and ``demo``; each feature's come from the feature table. A module's top level stays light (argparse and
config): what a command needs (gRPC, the keychain, the node) is imported when it runs, so ``noizylab --help``
stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable

from noizylab_desktop import __version__
from noizylab_desktop.cli import autostart, demo, doctor, keys, lifecycle, output, pairing, totp
from noizylab_desktop.core.config import Paths, Settings, load_settings
from noizylab_desktop.core.errors import NoizyLabError

# gRPC's C core logs handshake failures to stderr at INFO; a person should see only our one-line errors.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

Handler = Callable[[argparse.Namespace, Paths, Settings], int]


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line grammar."""
    from noizylab_desktop.node.features import cli_registrars

    parser = argparse.ArgumentParser(
        prog="noizylab", description="NOIZYLAB Desktop: join your computers into one private grid."
    )
    parser.add_argument("--version", action="version", version=f"noizylab {__version__}")
    parser.add_argument("--home", help="folder for this node's config, state and logs (or NOIZYLAB_HOME)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in (
        lifecycle.register,
        pairing.register,
        totp.register,
        keys.register,
        autostart.register,
        doctor.register,
        demo.register,
        *cli_registrars(),
    ):
        register(sub)
    return parser


def _tray(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    """No command: the tray app."""
    from noizylab_desktop.ui.app import run_tray

    return run_tray(paths, settings)


# What a shell reports for a program that SIGPIPE ended: `git log | head -1` leaves this status, and no message.
CLOSED_PIPE_EXIT = 141


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn our errors into one line on stderr with exit code 1."""
    output.tolerate_unencodable(sys.stdout)
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = vars(args).get("handler", _tray)
        paths = Paths.resolve(args.home)
        paths.ensure()
        settings = load_settings(paths)
        code = handler(args, paths, settings)
        sys.stdout.flush()  # here, where a closed pipe can still be caught, rather than at exit
        return code
    except NoizyLabError as exc:
        output.error(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read our output stopped (`noizylab metrics --json | head -1`): end quietly, as git does. Python
        # would flush stdout once more at exit and complain, so point it at nothing first.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE_EXIT
