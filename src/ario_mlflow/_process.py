"""Is the process behind a lease or a spool file still there?"""

from __future__ import annotations

import os
import socket


def local_process_gone(host: str, pid_text: str) -> bool:
    """True only when ``host:pid`` names a process of *this* host that no longer exists.

    Another host's process, an unparsable pid, or one we may not signal counts as alive:
    only its own host can tell.
    """
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
