"""The MLflow side: runs, datasets, the registry and serving, each event recorded through
one pipeline (:mod:`ario_mlflow.lifecycle.recorder`) and witnessed in MLflow."""
