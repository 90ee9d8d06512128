"""Self-update of an installed build from a signed TUF repository (``noizylab update``; see docs/update.md)."""
