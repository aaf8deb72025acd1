"""Optional OpenTelemetry capture: the current trace and span ids, if there are any."""

from __future__ import annotations

from typing import Any

from ario_mlflow.config import load_settings


def current_span_context() -> Any:
    """The OpenTelemetry context of the current span if there is a valid one, else ``None``.

    (MLflow 3 keeps its own spans out of the global context: this says nothing about an
    active MLflow trace.)
    """
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    context: Any = trace.get_current_span().get_span_context()
    return context if getattr(context, "is_valid", False) else None


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
    context = current_span_context()
    if context is None:
        return {}
    return {
        "otel_trace_id": format(context.trace_id, "032x"),
        "otel_span_id": format(context.span_id, "016x"),
    }
