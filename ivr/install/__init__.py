"""Putting the hotline on a production host, and taking it off: install/uninstall, backup/restore.

Everything works on a `Host` (layout.py): the paths of one installation under a root directory,
"/" for the real host, a scratch directory in tests (`--root`).
"""
