"""The kernel: identity, trust, transport, pairing, registry, events, permissions; no feature, node/, cli/ or ui/."""
