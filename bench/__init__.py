"""Benchmarks: each prints its figures beside an anchor run in the same process (see README.md)."""
