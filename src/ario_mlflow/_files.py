"""Small file helpers shared by the code that owns secrets (keys, wallets)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_new_file(path: Path, content: bytes, mode: int = 0o600) -> bool:
    """Atomically create ``path`` with ``content`` unless it already exists.

    The content is written and fsynced under a temporary name, then published with a
    hard link, which fails if the path exists: a file is never overwritten, never seen
    half-written, and of two racing writers exactly one wins. Returns True if we wrote it.
    """
    fd, temp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        try:
            os.link(temp_name, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temp_name)


def ensure_private_dir(directory: Path) -> None:
    """Create ``directory`` (mode 0700) if missing; an existing one is left as it is."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        return
    os.chmod(directory, 0o700)


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and only its owner can read it (mode 0600).

    For files that may hold what must not leak (journals, spools, logs): created 0600,
    and an older file left readable by others is tightened. Returns ``path``.
    """
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path
