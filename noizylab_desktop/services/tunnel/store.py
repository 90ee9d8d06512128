"""What tunnels remember across restarts, in one JSON file of the state folder, written atomically.

- the tunnels this node forwards: peer, remote port, local port, bind address, and whether the local port was asked
  for (``fixed``) or chosen;
- the fallback local port chosen for a (peer, remote port) whose own number was taken, so it stays the same;
- the serving side's rules: which ports each peer may open here (besides its ``tunnel`` permission).

Peers are kept by node ID (the key's SHA-256, hex), as the permissions are; unpairing forgets all three.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from noizylab_desktop.core.config import atomic_write

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class TunnelRecord:
    """One tunnel this node forwards."""

    peer: str  # fingerprint, hex
    port: int
    local_port: int
    bind: str = LOOPBACK
    fixed: bool = False


def migrate_ids(path: Path, ids: dict[bytes, bytes]) -> None:
    """Re-key the tunnels, fallbacks and rules of peers whose old IDs (certificate hashes) are in ``ids``."""
    if not ids or not path.exists():
        return
    hexes = {old.hex(): new.hex() for old, new in ids.items()}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return  # a damaged file is ignored on load anyway
    for kind in ("tunnels", "fallbacks", "rules"):
        for item in data.get(kind, []):
            if isinstance(item, dict) and item.get("peer") in hexes:
                item["peer"] = hexes[item["peer"]]
    atomic_write(path, json.dumps(data, indent=1).encode())


class TunnelStore:
    """Tunnels, fallbacks and rules; saved on every change (they change at a person's pace)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.tunnels: list[TunnelRecord] = []
        self.fallbacks: dict[tuple[str, int], int] = {}
        self.rules: set[tuple[str, int]] = set()
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            self.tunnels = [TunnelRecord(**t) for t in data.get("tunnels", [])]
            self.fallbacks = {(f["peer"], int(f["port"])): int(f["local_port"]) for f in data.get("fallbacks", [])}
            self.rules = {(r["peer"], int(r["port"])) for r in data.get("rules", [])}
        except FileNotFoundError:
            pass
        except (ValueError, TypeError, KeyError) as exc:
            # A damaged file loses tunnels, never trust: rules only ever allow, and an empty set allows nothing.
            logger.warning("ignored a damaged %s: %s", self.path, exc)

    def save(self) -> None:
        data = {
            "tunnels": [asdict(t) for t in self.tunnels],
            "fallbacks": [{"peer": p, "port": port, "local_port": lp} for (p, port), lp in self.fallbacks.items()],
            "rules": [{"peer": p, "port": port} for p, port in sorted(self.rules)],
        }
        with self._lock:
            atomic_write(self.path, json.dumps(data, indent=1).encode())

    def put(self, record: TunnelRecord) -> None:
        self.tunnels = [t for t in self.tunnels if (t.peer, t.port) != (record.peer, record.port)] + [record]
        self.save()

    def drop(self, peer: str, port: int) -> None:
        self.tunnels = [t for t in self.tunnels if (t.peer, t.port) != (peer, port)]
        self.save()

    def remember_fallback(self, peer: str, port: int, local_port: int) -> None:
        self.fallbacks[(peer, port)] = local_port
        self.save()

    def allowed(self, peer: str, port: int) -> bool:
        return (peer, port) in self.rules

    def set_rule(self, peer: str, port: int, allowed: bool) -> None:
        if allowed:
            self.rules.add((peer, port))
        else:
            self.rules.discard((peer, port))
        self.save()

    def forget(self, peer: str) -> None:
        """Drop everything about a peer (it was unpaired)."""
        self.tunnels = [t for t in self.tunnels if t.peer != peer]
        self.fallbacks = {k: v for k, v in self.fallbacks.items() if k[0] != peer}
        self.rules = {r for r in self.rules if r[0] != peer}
        self.save()
