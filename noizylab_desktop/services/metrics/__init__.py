"""Metrics: system and grid figures, Prometheus ``/metrics``, a JSON API, the cluster view, an hour of history."""
