"""Searching MLflow traces the same way on MLflow 2 and 3."""

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
