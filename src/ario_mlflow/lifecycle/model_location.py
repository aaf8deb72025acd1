"""Where MLflow says a model version is, and whether that is where the signed lineage
says the model is.

A version's ``source``, ``run_id`` and download location are MLflow state: an insider can
edit them. The gates therefore only accept a version whose live location is one of the
places MLflow serves the *anchored* run's *anchored* artifact path from
(:func:`check_version_location`); otherwise the files checked would not be the files
loaded.
"""

from __future__ import annotations

import logging
from typing import Any

from ario_mlflow.errors import IntegrityError
from ario_mlflow.lifecycle.artifacts import parse_runs_uri, run_logged_model

logger = logging.getLogger(__name__)


def source_location(
    client: Any, source: str | None, run_id: str | None = None
) -> tuple[str | None, str | None]:
    """``(run id, artifact path)`` behind a model-version source.

    ``runs:/<run>/<path>`` directly; MLflow 3 ``models:/<model_id>`` through its
    LoggedModel (source run and name); a location inside a run's artifacts
    (``<artifact_uri>/<path>``, which MLflow 2 records for versions registered from
    ``runs:/``) through that run: ``run_id`` if it is that run, else the run named in the
    usual ``…/<run_id>/artifacts/…`` layout. Anything else ``(None, None)``.
    """
    parsed_run, path = parse_runs_uri(source)
    if parsed_run:
        return parsed_run, path
    if not source:
        return None, None
    if source.startswith("models:/"):
        if "/" not in source[len("models:/") :]:
            return _logged_model_source(client, source)
        return None, None
    return _run_artifact_source(client, source, run_id)


def _logged_model_source(client: Any, source: str) -> tuple[str | None, str | None]:
    getter = getattr(client, "get_logged_model", None)
    if getter is None:  # MLflow 2: no LoggedModels
        return None, None
    try:
        model = getter(source[len("models:/") :])
    except Exception as exc:
        logger.debug("could not resolve %s: %s", source, exc)
        return None, None
    return model.source_run_id, model.name


def _run_artifact_source(
    client: Any, source: str, run_id: str | None
) -> tuple[str | None, str | None]:
    parts = source.rstrip("/").split("/")
    named = [parts[i - 1] for i, part in enumerate(parts) if part == "artifacts" and i > 0]
    for candidate in dict.fromkeys([run_id, *named] if run_id else named):
        try:
            root = str(client.get_run(candidate).info.artifact_uri).rstrip("/")
        except Exception as exc:  # not a run (or not readable): not this one
            logger.debug("%s is not the run behind %s: %s", candidate, source, exc)
            continue
        if source.startswith(root + "/"):
            return candidate, source[len(root) + 1 :].strip("/") or None
    return None, None


def version_run_id(client: Any, mv: Any) -> str | None:
    """The run a model version came from: its ``run_id``, else the run its ``source``
    names (``create_model_version(name, "runs:/<run>/model")`` leaves ``run_id`` empty)."""
    if getattr(mv, "run_id", None):
        return str(mv.run_id)
    run_id, _ = source_location(client, getattr(mv, "source", None))
    return run_id


def _norm(uri: str | None) -> str:
    return str(uri or "").rstrip("/")


def anchored_locations(client: Any, run_id: str, artifact_path: str) -> set[str]:
    """Every URI under which MLflow serves ``runs:/<run_id>/<artifact_path>``."""
    path = artifact_path.strip("/")
    places = {f"runs:/{run_id}/{path}"}
    run = client.get_run(run_id)
    places.add(f"{_norm(run.info.artifact_uri)}/{path}")
    model = run_logged_model(client, run, path) if "/" not in path else None
    if model is not None:  # the one MLflow serves runs:/<run>/<path> from
        places.add(f"models:/{model.model_id}")
        places.add(str(model.artifact_location))
    return {_norm(place) for place in places}


def check_version_location(client: Any, mv: Any, run_id: str, artifact_path: str) -> None:
    """Refuse a version whose live ``source``, ``run_id`` or download location is not
    where MLflow serves the anchored run's anchored artifact path."""
    where = f"{mv.name}/{mv.version}"
    if getattr(mv, "run_id", None) and str(mv.run_id) != run_id:
        raise IntegrityError(
            f"model version {where} names run {mv.run_id}, but its signed lineage is run {run_id}"
        )
    legit = anchored_locations(client, run_id, artifact_path)
    anchored = f"runs:/{run_id}/{artifact_path}"
    if _norm(mv.source) not in legit:
        raise IntegrityError(
            f"model version {where} has source {mv.source!r}, which is not where MLflow "
            f"serves the anchored model {anchored}; the version was redirected"
        )
    download = _norm(client.get_model_version_download_uri(mv.name, str(mv.version)))
    if download not in legit:
        raise IntegrityError(
            f"model version {where} is stored at {download!r}, which is not the anchored "
            f"model {anchored}"
        )


def check_runs_uri(model_uri: str, run_id: str, artifact_path: str) -> None:
    """A ``runs:/`` URI must name the anchored artifact path of the anchored run."""
    named_run, path = parse_runs_uri(model_uri)
    if named_run != run_id or (path or "").strip("/") != artifact_path:
        raise IntegrityError(
            f"{model_uri} is not the anchored model runs:/{run_id}/{artifact_path}"
        )
