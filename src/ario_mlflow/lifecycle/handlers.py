"""Installs the MLflow side's write-back handlers in this process (explicitly: nothing is
installed by importing a module).

Called by the record pipeline before it journals anything, by the companion process at
start (it is named on its command line, :data:`INSTALLER`), and by ``ar-io-mlflow sync``.
"""

from __future__ import annotations

from ario_mlflow.outbox import handlers

#: ``module:function`` of :func:`install`, for processes started by name.
INSTALLER = "ario_mlflow.lifecycle.handlers:install"


def install() -> None:
    """Make this process able to perform every write-back kind the MLflow side journals
    (tags, witnesses, decision windows and traces, registry tasks). Idempotent."""
    from ario_mlflow.lifecycle import registry, writebacks

    writebacks.install_handlers()
    handlers.install(registry.TASK_KIND, registry.run_registry_task)
