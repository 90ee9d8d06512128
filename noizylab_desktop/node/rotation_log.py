"""This node's own key rotations: every statement it signed, which peers have not taken them yet, and the one
rotation under way (``state/rotations.json``; the keys themselves stay in the keychain).

A rotation is written here before any peer hears of it, with the new key in the keychain as ``*-next``; it is
committed (the new key becomes the node's, the new anchor replaces ``node-cert.pem``) once the peers online were
told. A crash in between is finished by the next start (``finish_pending``), so the node never runs with a key its
peers were told about only in part. A key rotated away from stays in the keychain (``tls-key-<ID prefix>``) while a
peer still pins it: an offline peer is told on reconnect over a channel that shows the key it pins.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noizylab_desktop._proto import noizylab_keys_pb2 as kpb
from noizylab_desktop.core.config import Paths, atomic_write
from noizylab_desktop.core.identity import SSH_KEY, TLS_KEY
from noizylab_desktop.core.secrets import Vault

logger = logging.getLogger(__name__)

NEXT = {"identity": f"{TLS_KEY}-next", "ssh": f"{SSH_KEY}-next"}


def retired_key_name(fp: bytes) -> str:
    """The keychain entry of a key this node rotated away from."""
    return f"{TLS_KEY}-{fp.hex()[:16]}"


@dataclass
class Link:
    """One statement this node signed, and the anchor of the key that signed it (PEM)."""

    generation: int
    signed: kpb.SignedRotation
    signer_fp: bytes
    signer_anchor: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "signed": base64.b64encode(self.signed.SerializeToString()).decode(),
            "signer_fp": self.signer_fp.hex(),
            "signer_anchor": self.signer_anchor.decode(),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Link:
        signed = kpb.SignedRotation()
        signed.ParseFromString(base64.b64decode(data["signed"]))
        return Link(int(data["generation"]), signed, bytes.fromhex(data["signer_fp"]), data["signer_anchor"].encode())


@dataclass
class RotationLog:
    """``state/rotations.json``: read whole, written whole (atomically) at each change."""

    path: Path
    links: list[Link] = field(default_factory=list)
    behind: dict[bytes, int] = field(default_factory=dict)  # peer ID -> the generation it holds
    pending: dict[str, str] = field(default_factory=dict)  # {"kind": ..., "anchor": PEM} while one is under way

    @property
    def generation(self) -> int:
        return self.links[-1].generation if self.links else 0

    @staticmethod
    def load(paths: Paths) -> RotationLog:
        path = paths.state_dir / "rotations.json"
        if not path.exists():
            return RotationLog(path)
        data = json.loads(path.read_text())
        return RotationLog(
            path,
            [Link.from_json(item) for item in data.get("links", [])],
            {bytes.fromhex(fp): int(gen) for fp, gen in data.get("behind", {}).items()},
            dict(data.get("pending", {})),
        )

    def save(self) -> None:
        data = {
            "links": [link.as_json() for link in self.links],
            "behind": {fp.hex(): gen for fp, gen in self.behind.items()},
            "pending": self.pending,
        }
        atomic_write(self.path, json.dumps(data, indent=1).encode())

    def owed(self, peer: bytes) -> list[Link]:
        """The statements the peer ``peer`` has not taken yet, oldest first (none when it is up to date)."""
        held = self.behind.get(peer)
        return [] if held is None else [link for link in self.links if link.generation > held]

    def caught_up(self, peer: bytes) -> bool:
        """The peer holds every statement now; True when that is news. Keys no peer pins any more are forgotten
        by ``forget_retired``."""
        if self.behind.pop(peer, None) is None:
            return False
        self.save()
        return True


def finish_pending(paths: Paths, vault: Vault) -> None:
    """Commit a rotation that a crash left half done (blocking: keychain and files)."""
    log = RotationLog.load(paths)
    if log.pending:
        commit(paths, vault, log)


def commit(paths: Paths, vault: Vault, log: RotationLog) -> None:
    """Make the pending rotation's key this node's: the new key into the keychain (and the new anchor into
    ``node-cert.pem``), then the log says it is done. Each step can be repeated."""
    kind = log.pending["kind"]
    new = vault.get(NEXT[kind])
    if new is not None:
        if kind == "identity":
            vault.set(TLS_KEY, new)
            atomic_write(paths.cert_file, log.pending["anchor"].encode(), mode=0o644)
        else:
            vault.set(SSH_KEY, new)
        vault.delete(NEXT[kind])
    log.pending = {}
    log.save()
    logger.info("key rotation (%s, generation %d) committed", kind, log.generation)


def forget_retired(vault: Vault, log: RotationLog, current_fp: bytes) -> None:
    """Delete the retired keys that no peer still pins (blocking: keychain)."""
    needed = {link.signer_fp for held in log.behind.values() for link in log.links if link.generation == held + 1}
    for fp in {link.signer_fp for link in log.links} - needed - {current_fp}:
        vault.delete(retired_key_name(fp))
