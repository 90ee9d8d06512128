"""Folder sync: shares between paired nodes (or any SSH server), block-level, verified, never losing an edit.

Modules, one job each: ``ignore`` (.nzignore), ``names`` (path safety, reversible name encoding), ``blocks``
(hashing), ``index`` (SQLite), ``planner`` (pure decisions), ``conflicts`` (names, versions folder), ``scanner``
(local folder → entries), ``remote`` (SFTP peers), ``executor`` (applies a plan), ``watcher`` (watchdog with a
quiet window), ``engine`` (one share's loop), ``sftp_server`` (the embedded server), ``feature`` (gRPC + lifecycle).
"""
