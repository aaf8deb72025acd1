"""Fault injection for the local gateway: what should go wrong, per route family.

A test (or the demo) breaks one part of the service while the rest keeps working: fail
uploads with 503 while reads succeed, black-hole GraphQL, serve tampered bytes from
``/raw``. Faults are plain data (:class:`FaultSpec` per family) held by a thread-safe
:class:`FaultPlan` that the server consults once per request.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, TypeAlias

#: Route families faults apply to. ``status`` is Turbo's ``/tx/{id}/status``.
FAMILIES = ("upload", "status", "read", "graphql", "verify")
#: Pseudo-family meaning "every family".
ALL = "all"
_MAX_LATENCY = 3600.0


@dataclass(frozen=True)
class FaultSpec:
    """What goes wrong for one route family.

    ``fail_next`` failures are served first (counting down), then each request fails with
    probability ``fail_rate``; failures answer ``status`` (with ``Retry-After`` when
    ``retry_after`` is set, and 1 s by default for 429). ``latency`` seconds are added
    before any answer; ``blackhole`` accepts the request and never answers until the
    fault is lifted, the client goes away or the server stops; ``tamper`` (read family
    only) flips one byte of served data while keeping the original headers.

    Hostile answers, for the clients' defences: ``trickle`` sends a successful read one
    byte every ``trickle`` seconds; ``pad_bytes`` appends that many zero bytes to it (a huge
    body, streamed); ``redirect`` answers every request of the family with a 302 to that
    URL. For uploads, ``drop`` answers a bare 202 and stores nothing, and
    ``forge_receipt`` answers 200 with a receipt whose signature is garbage and stores
    nothing: both are an upload service that lies.
    """

    fail_rate: float = 0.0
    fail_next: int = 0
    status: int = 503
    retry_after: float | None = None
    latency: float = 0.0
    blackhole: bool = False
    tamper: bool = False
    trickle: float = 0.0
    pad_bytes: int = 0
    redirect: str | None = None
    drop: bool = False
    forge_receipt: bool = False

    def __post_init__(self) -> None:
        _check_number("fail_rate", self.fail_rate, 0.0, 1.0)
        if not _is_int(self.fail_next) or self.fail_next < 0:
            raise ValueError(f"fail_next must be a whole number >= 0, not {self.fail_next!r}")
        if not _is_int(self.status) or not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), not {self.status!r}")
        if self.retry_after is not None:
            _check_number("retry_after", self.retry_after, 0.0, _MAX_LATENCY)
        _check_number("latency", self.latency, 0.0, _MAX_LATENCY)
        _check_number("trickle", self.trickle, 0.0, 60.0)
        if not _is_int(self.pad_bytes) or not 0 <= self.pad_bytes <= 1 << 31:
            raise ValueError(f"pad_bytes must be a whole number >= 0, not {self.pad_bytes!r}")
        if self.redirect is not None and not (
            isinstance(self.redirect, str)
            and self.redirect.startswith(("http://", "https://", "/"))
        ):
            raise ValueError(f"redirect must be a URL or an absolute path, not {self.redirect!r}")
        for name in ("blackhole", "tamper", "drop", "forge_receipt"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultSpec:
        """Build from JSON-like data; ``ValueError`` names an unknown key or bad value."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault option(s): {', '.join(unknown)}")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    @property
    def active(self) -> bool:
        """True when this spec changes anything."""
        return self != FaultSpec(status=self.status, retry_after=self.retry_after)

    def header_retry_after(self) -> str | None:
        """The ``Retry-After`` header value (whole seconds) for a failure, if any."""
        seconds = self.retry_after
        if seconds is None and self.status == 429:
            seconds = 1.0
        return None if seconds is None else str(math.ceil(seconds))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_number(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value!r}")


FaultsLike: TypeAlias = "Mapping[str, FaultSpec | Mapping[str, Any]] | None"


def parse_faults(faults: FaultsLike) -> dict[str, FaultSpec]:
    """Normalise ``{family: FaultSpec | dict}`` (``"all"`` expands to every family).

    A family named later overrides ``"all"``. ``ValueError`` for an unknown family or a
    bad option.
    """
    if faults is None:
        return {}
    if not isinstance(faults, Mapping):
        raise ValueError("faults must be an object mapping route families to options")
    result: dict[str, FaultSpec] = {}
    ordered = sorted(faults.items(), key=lambda kv: kv[0] != ALL)
    for family, value in ordered:
        if family != ALL and family not in FAMILIES:
            raise ValueError(
                f"unknown route family {family!r} (expected one of: {', '.join((*FAMILIES, ALL))})"
            )
        if isinstance(value, FaultSpec):
            spec = value
        elif isinstance(value, Mapping):
            spec = FaultSpec.from_mapping(value)
        else:
            raise ValueError(f"faults for {family!r} must be an object")
        for name in FAMILIES if family == ALL else (family,):
            result[name] = spec
    return result


@dataclass(frozen=True)
class Decision:
    """What to do with one request, decided atomically."""

    latency: float = 0.0
    blackhole: bool = False
    fail_status: int | None = None
    retry_after: str | None = None
    tamper: bool = False
    trickle: float = 0.0
    pad_bytes: int = 0
    redirect: str | None = None
    drop: bool = False
    forge_receipt: bool = False


class FaultPlan:
    """The current faults of a running gateway; safe to read and change from any thread."""

    def __init__(self, faults: FaultsLike = None, *, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._specs = parse_faults(faults)
        self._random = random.Random(seed)

    def replace(self, faults: FaultsLike) -> None:
        """Swap in a new set of faults (``None`` or ``{}`` clears them all)."""
        specs = parse_faults(faults)
        with self._lock:
            self._specs = specs

    def spec(self, family: str) -> FaultSpec:
        """The spec currently applied to ``family``."""
        with self._lock:
            return self._specs.get(family, FaultSpec())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """JSON-ready view of the active faults."""
        with self._lock:
            return {name: asdict(spec) for name, spec in self._specs.items() if spec.active}

    def decide(self, family: str) -> Decision:
        """Draw the fate of one request of ``family`` (consumes one ``fail_next``)."""
        with self._lock:
            spec = self._specs.get(family)
            if spec is None or not spec.active:
                return Decision()
            fail = False
            if spec.fail_next > 0:
                fail = True
                self._specs[family] = replace(spec, fail_next=spec.fail_next - 1)
            elif spec.fail_rate > 0.0:
                fail = self._random.random() < spec.fail_rate
            return Decision(
                latency=spec.latency,
                blackhole=spec.blackhole,
                fail_status=spec.status if fail else None,
                retry_after=spec.header_retry_after() if fail else None,
                tamper=spec.tamper,
                trickle=spec.trickle,
                pad_bytes=spec.pad_bytes,
                redirect=spec.redirect,
                drop=spec.drop,
                forge_receipt=spec.forge_receipt,
            )

    def blackholed(self, family: str) -> bool:
        """True while ``family`` is still black-holed."""
        with self._lock:
            spec = self._specs.get(family)
            return spec is not None and spec.blackhole
