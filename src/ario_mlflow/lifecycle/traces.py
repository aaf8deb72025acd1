"""MLflow traces: the one active here, and searching them the same way on MLflow 2 and 3."""

from __future__ import annotations

import inspect
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
