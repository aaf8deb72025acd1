"""What we write down carries no secrets: URLs without user info or secret-looking query
parameters, and free text (an error quoting a URL) without user info.

Journals, records on chain, reports and logs outlive the process, and some are public
and permanent; everything that writes a URL or an error message there goes through here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameter names that carry a secret (matched anywhere in the name).
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|sig|auth|cred|session", re.IGNORECASE)

#: ``scheme://user:secret@`` inside free text (an error message that quotes a URL).
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")


@lru_cache(maxsize=64)
def public_uri(uri: str) -> str:
    """``uri`` without user info and without secret-looking query parameters."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        kept = [
            (k, v)
            for k, v in parse_qsl(query, keep_blank_values=True)
            if not _SECRET_NAME.search(k)
        ]
        query = urlencode(kept)
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redacted_text(text: str) -> str:
    """``text`` (e.g. an error message kept in the journal) with URL user info removed."""
    return _USERINFO_IN_TEXT.sub(r"\g<scheme>", text)
