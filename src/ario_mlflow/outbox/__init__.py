"""The durable pipeline: every signed record is journaled before any network call, then
uploaded and written back by workers, the companion process, or ``ar-io-mlflow sync``.

It knows neither MLflow nor HTTP: uploads go through :mod:`ario_mlflow.arweave` clients,
and write-backs through handlers the MLflow side installs explicitly.
"""
