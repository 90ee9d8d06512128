"""Tunnels: a local TCP port that reaches a port on a paired peer's loopback, over the peer's mTLS gRPC channel.

``store`` keeps the tunnels, the fallback local ports and the serving side's per-(peer, port) rules in the state
folder; ``pump`` moves one connection's bytes between a socket and a gRPC stream; ``forward`` is the forwarding
side (a listener per tunnel, a stream per connection, backoff while the peer is away); ``serve`` is the serving side
(the ``tunnel`` permission, the rule, a connection to 127.0.0.1 only); ``feature`` ties them to the node.
"""
