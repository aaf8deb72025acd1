"""The local gateway: Turbo upload, ar.io reads, GraphQL and a Verify stand-in on loopback.

For development, CI, tests and the demo. It verifies every data item it accepts, signs
Turbo-shaped receipts with its own RSA wallet, persists to SQLite under a data dir, and
can inject faults per route family. Clients use it over real HTTP exactly as they use
Turbo and ar.io; nothing in the product special-cases it.

``LocalGateway(data_dir).start()`` runs it in-process; ``LocalGateway.spawn(data_dir)``
in a subprocess; ``ar-io-mlflow gateway`` from the command line.
"""

from __future__ import annotations

from ario_mlflow.localgw.faults import FAMILIES, FaultSpec
from ario_mlflow.localgw.local_gateway import LocalGateway
from ario_mlflow.localgw.process import GatewayProcess

__all__ = ["FAMILIES", "FaultSpec", "GatewayProcess", "LocalGateway"]
