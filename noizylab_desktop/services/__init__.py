"""Asyncio services of a node; none of them imports Qt."""
