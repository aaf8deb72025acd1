"""``python -m ario_mlflow.cli`` runs the command line."""

from ario_mlflow.cli import main

main()
