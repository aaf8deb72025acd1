"""MLflow traces: the one active here, searching them the same way on MLflow 2 and 3, and
(MLflow 3) creating one later under an id chosen when the decision was made."""

from __future__ import annotations

import functools
import inspect
import json
import os
import random
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any


def search_traces(
    client: Any,
    experiment_ids: list[str],
    filter_string: str,
    *,
    max_results: int = 100,
    page_token: str | None = None,
) -> Any:
    """``client.search_traces`` with ``locations=`` where MLflow has it (3.x), else
    ``experiment_ids=`` (2.x; deprecated in 3.x)."""
    parameters = inspect.signature(client.search_traces).parameters
    where = "locations" if "locations" in parameters else "experiment_ids"
    return client.search_traces(
        **{where: experiment_ids},
        filter_string=filter_string,
        max_results=max_results,
        page_token=page_token,
    )


def all_experiment_ids(client: Any) -> list[str]:
    """Every experiment id of the tracking store (traces may live in any of them)."""
    return [str(e.experiment_id) for e in client.search_experiments()]


def active_trace_id() -> str | None:
    """The id of the MLflow trace whose span is active here, if any.

    MLflow 3 has ``mlflow.get_active_trace_id``; MLflow 2 only the active span, whose
    ``request_id`` is the trace's id.
    """
    import mlflow

    try:
        getter = getattr(mlflow, "get_active_trace_id", None)
        if getter is not None:
            trace_id = getter()
        else:
            span = mlflow.get_current_active_span()
            trace_id = getattr(span, "request_id", None) if span is not None else None
    except Exception:  # tracing is optional context, never a reason to fail
        return None
    return str(trace_id) if trace_id else None


# --- traces named before they exist (MLflow 3) --------------------------------------------

#: MLflow 3 names a trace ``tr-`` + its root span's OpenTelemetry trace id (32 hex digits).
TRACE_ID_PREFIX = "tr-"
_NO_TRACE = "0" * 32  # the one value OpenTelemetry reserves as "no trace id"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: The span (and trace) name of a served decision, as the reference names it.
DECISION_SPAN = "VerifiedModel.predict"


def new_trace_id() -> str:
    """A fresh id, in MLflow 3's format, for a trace that is created later.

    MLflow 3 makes a trace id on the client from 128 random bits (the root span's
    OpenTelemetry trace id) and its tracking store records the id it is given, so a
    decision can be signed with the id of its trace at predict time for the price of
    ``os.urandom``, while the trace itself is written off the hot path (:func:`create_trace`).
    """
    digits = os.urandom(16).hex()
    while digits == _NO_TRACE:
        digits = os.urandom(16).hex()
    return TRACE_ID_PREFIX + digits


@functools.cache
def preset_trace_ids() -> bool:
    """Whether this MLflow can create a trace under an id chosen beforehand.

    MLflow 3 can: its trace API (``StartTraceV3``) stores the ``TraceInfo`` the client
    sends, id included, and the trace's spans are stored beside it. MLflow 2 cannot: its
    tracking store makes the id up when the trace starts, so the id is only known after a
    round trip to the store, which ``predict`` does not make.
    """
    try:
        import mlflow

        if str(mlflow.__version__).split(".", 1)[0] in ("0", "1", "2"):
            return False
        from mlflow import entities
        from mlflow.tracing.client import TracingClient
        from opentelemetry.sdk import trace
    except Exception:
        return False
    needed = (
        (entities, ("LiveSpan", "Span", "TraceData", "TraceInfo", "TraceLocation", "TraceState")),
        (TracingClient, ("start_trace", "get_trace_info", "_upload_trace_data")),
        (trace, ("TracerProvider",)),
    )
    return all(callable(getattr(owner, name, None)) for owner, names in needed for name in names)


class _HandedIn(threading.local):
    """The trace id this thread hands to :func:`_root_span`'s id generator."""

    trace_id: int | None = None


_handed_in = _HandedIn()
_tracer: list[Any] = []
_tracer_lock = threading.Lock()


def _preset_tracer() -> Any:
    """A tracer of our own whose root spans take the trace id handed in by this thread:
    no processors (nothing is exported by it), always sampled. An ``IdGenerator`` is
    OpenTelemetry's way of choosing ids; MLflow's tracer draws its own at random."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    class PresetIds(IdGenerator):
        """The handed-in trace id; random span ids."""

        def __init__(self) -> None:
            self._random = random.Random()

        def generate_trace_id(self) -> int:
            if _handed_in.trace_id is None:
                raise RuntimeError("no trace id was handed in for this span")
            return _handed_in.trace_id

        def generate_span_id(self) -> int:
            span_id = 0
            while not span_id:
                span_id = self._random.getrandbits(64)
            return span_id

    with _tracer_lock:
        if not _tracer:
            provider = TracerProvider(
                sampler=ALWAYS_ON, id_generator=PresetIds(), shutdown_on_exit=False
            )
            _tracer.append(provider.get_tracer("ario_mlflow"))
        return _tracer[0]


def _root_span(name: str, trace_id: str, start_ns: int) -> Any:
    """A recording OpenTelemetry root span whose trace id is ``trace_id``'s."""
    from opentelemetry.context import Context

    tracer = _preset_tracer()
    _handed_in.trace_id = int(trace_id[len(TRACE_ID_PREFIX) :], 16)
    try:
        span = tracer.start_span(name, context=Context(), start_time=start_ns)
    finally:
        _handed_in.trace_id = None
    if not span.is_recording():  # OTEL_SDK_DISABLED: a span that cannot hold the data
        raise RuntimeError(f"OpenTelemetry made no recording span for trace {trace_id}")
    return span


def decision_time_ns(signed_at: str | None, latency_ms: Any) -> tuple[int, int]:
    """When a decision's model call started and how long it took (ns), from the signed
    time (just after the call) and the latency; now and 0 when they do not parse."""
    try:
        duration = max(int(float(latency_ms) * 1_000_000), 0)
        ended = datetime.fromisoformat(str(signed_at).replace("Z", "+00:00"))
        if ended.tzinfo is None:
            raise ValueError(signed_at)
        ended_ns = (ended - _EPOCH) // timedelta(microseconds=1) * 1000
    except (TypeError, ValueError, OverflowError):
        return time.time_ns(), 0
    return ended_ns - duration, duration


def _experiment_or_default(experiment_id: str | None) -> str:
    """``experiment_id``, else the experiment MLflow would trace into here."""
    if experiment_id:
        return str(experiment_id)
    try:
        from mlflow.tracking.fluent import _get_experiment_id

        return str(_get_experiment_id() or "0")
    except Exception:
        return "0"


def create_trace(
    tracking_uri: str | None,
    trace_id: str,
    *,
    experiment_id: str | None,
    tags: Mapping[str, str],
    start_ns: int,
    duration_ns: int,
    inputs: Any = None,
    outputs: Any = None,
) -> None:
    """Store a finished one-span trace under ``trace_id`` (one from :func:`new_trace_id`)
    the way MLflow 3's exporter stores a trace: its ``TraceInfo`` through the trace API,
    its span data beside it. Safe to repeat: a retry after a partial write completes it.
    """
    from mlflow.entities import LiveSpan, Span, TraceData, TraceInfo, TraceLocation, TraceState
    from mlflow.tracing.client import TracingClient

    otel_span = _root_span(DECISION_SPAN, trace_id, start_ns)
    span = LiveSpan(otel_span, trace_id)
    if inputs is not None:
        span.set_inputs(inputs)
    if outputs is not None:
        span.set_outputs(outputs)
    span.set_status("OK")
    otel_span.end(end_time=start_ns + duration_ns)
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id(_experiment_or_default(experiment_id)),
        request_time=start_ns // 1_000_000,
        execution_duration=duration_ns // 1_000_000,
        state=TraceState.OK,
        request_preview=_preview(inputs),
        response_preview=_preview(outputs),
        trace_metadata=_trace_metadata(),
        tags={"mlflow.traceName": DECISION_SPAN, **tags},
    )
    client = TracingClient(tracking_uri)
    try:
        stored = client.start_trace(info)
    except Exception:
        stored = _stored_info(client, trace_id)  # an earlier attempt got this far
        if stored is None:
            raise
    client._upload_trace_data(stored, TraceData(spans=[Span(otel_span)]))


def _stored_info(client: Any, trace_id: str) -> Any:
    """The stored ``TraceInfo`` of ``trace_id``, or None (a retry's way to resume)."""
    try:
        return client.get_trace_info(trace_id)
    except Exception:
        return None


def _preview(value: Any) -> str | None:
    """What MLflow's trace list shows as request/response (raw I/O traces only)."""
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), default=str)[:1000]


def _trace_metadata() -> dict[str, str]:
    """The schema version MLflow 3 writes on every trace (the UI reads spans by it)."""
    try:
        from mlflow.tracing.constant import TRACE_SCHEMA_VERSION, TRACE_SCHEMA_VERSION_KEY
    except ImportError:
        return {}
    return {TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION)}
