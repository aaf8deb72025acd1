"""Run a local gateway in the foreground until SIGINT/SIGTERM (CLI and ``python -m``).

Shared by ``ar-io-mlflow gateway`` and ``python -m ario_mlflow.localgw`` so both
print the same ready line and parse fault options the same way.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

from ario_mlflow.localgw.faults import parse_faults
from ario_mlflow.localgw.local_gateway import LocalGateway

#: Printed (then a URL) on stdout once the gateway accepts connections.
READY_PREFIX = "ar-io-mlflow gateway listening on "

FAULT_OPTION_HELP = (
    "FAMILY:KEY=VALUE[,KEY=VALUE...] with FAMILY one of upload, status, read, graphql, "
    "verify, all and KEY one of fail_rate, fail_next, status, retry_after, latency, "
    "blackhole, tamper (a bare KEY means true). Example: upload:fail_rate=0.5,status=503"
)


def parse_fault_option(text: str) -> dict[str, dict[str, Any]]:
    """``"upload:fail_next=2,status=429"`` -> ``{"upload": {"fail_next": 2, "status": 429}}``."""
    family, separator, rest = text.partition(":")
    if not separator or not family.strip():
        raise ValueError(f"fault {text!r} is not FAMILY:KEY=VALUE[,KEY=VALUE...]")
    options: dict[str, Any] = {}
    for pair in filter(None, (part.strip() for part in rest.split(","))):
        key, has_value, raw = pair.partition("=")
        if not has_value:
            options[key.strip()] = True
            continue
        try:
            options[key.strip()] = json.loads(raw)
        except ValueError:
            options[key.strip()] = raw
    return {family.strip(): options}


def combine_faults(faults_json: str | None, fault_options: Iterable[str]) -> dict[str, Any]:
    """Merge a ``--faults`` JSON object with ``--fault`` options (later ones win)."""
    combined: dict[str, Any] = {}
    if faults_json:
        value = json.loads(faults_json)
        if not isinstance(value, dict):
            raise ValueError("--faults must be a JSON object")
        combined.update(value)
    for option in fault_options:
        combined.update(parse_fault_option(option))
    parse_faults(combined)  # validate now, with a clear message
    return combined


def serve(
    gateway: LocalGateway,
    *,
    announce: Callable[[str], None],
    describe: Callable[[str], None] | None = None,
) -> int:
    """Start ``gateway``, announce its URL, block until SIGINT/SIGTERM, stop cleanly.

    ``announce`` gets the one parseable ready line (stdout); ``describe`` a human summary
    (stderr).
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        gateway.start()
        try:
            announce(f"{READY_PREFIX}{gateway.url}")
            if describe is not None:
                describe(
                    f"data dir {gateway.data_dir} ({gateway.store.count()} items); "
                    f"receipts and attestations signed by {gateway.operator_address}; "
                    f"faults: {gateway.faults or 'none'}"
                )
            while not stop.wait(0.5):
                pass
        finally:
            gateway.stop()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0


def build_gateway(
    *,
    data_dir: str | Path,
    host: str,
    port: int,
    key_bits: int,
    finalize_after: float,
    faults: dict[str, Any],
    fault_seed: int | None,
    allow_remote: bool,
    max_item_bytes: int,
    log: Callable[[str], None] | None,
) -> LocalGateway:
    """A :class:`LocalGateway` from command-line values."""
    return LocalGateway(
        data_dir,
        host,
        port,
        key_bits=key_bits,
        faults=faults,
        finalize_after=finalize_after,
        max_item_bytes=max_item_bytes,
        allow_remote=allow_remote,
        fault_seed=fault_seed,
        log=log,
    )
