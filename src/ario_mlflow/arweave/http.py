"""The HTTP session every read-side client shares: bounded retries, capped Retry-After."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

#: HTTP statuses retried by the session (with backoff, ``Retry-After`` honoured).
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: Longest ``Retry-After`` we obey, in seconds, so a server cannot park the caller.
MAX_RETRY_AFTER = 10.0


class _CappedRetry(Retry):
    """urllib3 ``Retry`` that caps ``Retry-After`` and ignores a malformed one.

    urllib3 raises on an unparsable header (which would escape ``requests``) and obeys
    any delay a server names; we fall back to normal backoff and wait at most
    :data:`MAX_RETRY_AFTER`.
    """

    def parse_retry_after(self, retry_after: str) -> float:
        try:
            seconds = super().parse_retry_after(retry_after)
        except Urllib3Error:
            return 0.0
        return min(seconds, MAX_RETRY_AFTER)


def build_retry_session(max_retries: int, backoff_factor: float) -> requests.Session:
    """A session retrying 429/5xx for GET and POST, as the reference's anchor session.

    Read errors are not retried, so a server that accepts and never answers costs one
    timeout, not one per attempt.
    """
    retry = _CappedRetry(
        total=max_retries,
        read=0,
        backoff_factor=backoff_factor,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=("GET", "POST"),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
