"""Optional OpenTelemetry capture: the current trace and span ids, if there are any."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ario_mlflow.config import load_settings

#: ``[getters]`` once known for good: ``get_current`` of every runtime context a span can
#: live in, or ``None`` when unsure.
_known: list[list[Callable[[], Any]] | None] = []


def _resolve_span_contexts() -> list[Callable[[], Any]] | None:
    try:
        from opentelemetry import context
    except ImportError:
        return []  # no OpenTelemetry: MLflow tracing cannot be active either
    getters: list[Callable[[], Any]] = [context.get_current]
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return getters
    try:
        from mlflow.tracing import provider
    except Exception:
        return getters
    own = getattr(provider, "mlflow_runtime_context", None)
    if own is not None and callable(getattr(own, "get_current", None)):
        getters.append(own.get_current)  # MLflow 3 keeps its spans in a context of its own
    elif not getattr(mlflow, "__version__", "2").startswith("2."):
        return None  # a newer MLflow may keep spans elsewhere: never skip the lookups
    return getters


def _span_contexts() -> list[Callable[[], Any]] | None:
    getters = _resolve_span_contexts()
    if "mlflow" in sys.modules or getters == []:  # else provisional: MLflow adds one later
        _known.append(getters)
    return getters


def no_span_can_be_active() -> bool:
    """True when every context a span could live in is empty (no trace, no baggage).

    A cheap pre-check for the predict hot path, where the MLflow and OpenTelemetry span
    lookups cost ~100 µs with cold caches and almost always find nothing. ``False``
    whenever unsure, so that callers then do the full lookups.
    """
    getters = _known[0] if _known else _span_contexts()
    if getters is None:
        return False
    try:
        for get in getters:
            if get():
                return False
    except Exception:
        return False
    return True


def capture_otel_context(enabled: bool = True, *, configured: bool | None = None) -> dict[str, str]:
    """``{"otel_trace_id", "otel_span_id"}`` of the current valid span, else ``{}``.

    Off when ``enabled`` is false, when ``ARIO_MLFLOW_CAPTURE_OTEL`` is false/0/no/off
    (``configured``, when the caller read it already), or when ``opentelemetry`` is not
    installed.
    """
    if configured is None:
        configured = load_settings().capture_otel
    if not enabled or not configured:
        return {}
    try:
        from opentelemetry import trace
    except ImportError:
        return {}
    context: Any = trace.get_current_span().get_span_context()
    if not getattr(context, "is_valid", False):
        return {}
    return {
        "otel_trace_id": format(context.trace_id, "032x"),
        "otel_span_id": format(context.span_id, "016x"),
    }
