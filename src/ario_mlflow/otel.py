"""Optional OpenTelemetry capture: the current trace and span ids, if there are any."""

from __future__ import annotations

from typing import Any

from ario_mlflow.config import load_settings


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
