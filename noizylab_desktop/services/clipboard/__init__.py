"""Clipboard sync: a copy on one node appears on each paired peer that both sides switched on.

``content`` normalises and hashes clips, ``markers`` spots password-manager content, ``backend`` is the
``ClipboardBackend`` protocol with its headless implementations (``x11``, ``fallback``), ``settings`` parses the
``[clipboard]`` table, ``outbox`` holds the latest clip for each peer, and ``feature`` ties them to the node.
"""
