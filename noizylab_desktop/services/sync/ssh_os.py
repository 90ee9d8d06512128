"""What OS a plain SSH server runs, so names are stored there as it can hold them (see ``names.py``)."""

from __future__ import annotations

import logging
import re

import asyncssh

logger = logging.getLogger(__name__)

# Windows' OpenSSH shows its drives in SFTP paths ("/C:/Users/me"); no other server does.
_DRIVE = re.compile(r"^/?[A-Za-z]:(/|$)")


async def probe_os(conn: asyncssh.SSHClientConnection, sftp: asyncssh.SFTPClient, root: str) -> str:
    """``windows`` for drive-letter paths, ``darwin`` where ``uname -s`` says Darwin, ``linux`` otherwise."""
    try:
        home = str(await sftp.realpath("."))
    except (asyncssh.SFTPError, OSError):
        home = ""
    if _DRIVE.match(home) or _DRIVE.match(root):
        return "windows"
    try:
        result = await conn.run("uname -s", check=False, timeout=10)
    except (TimeoutError, asyncssh.Error, OSError) as exc:
        logger.info("sync: could not ask the SSH server its OS (%s); taking it as Linux", exc)
        return "linux"
    return "darwin" if str(result.stdout or "").strip() == "Darwin" else "linux"
