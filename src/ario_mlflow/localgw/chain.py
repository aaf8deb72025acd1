"""The local gateway's stand-in for the chain: when an item counts as final, and where.

Nothing is mined locally, so block data is synthetic but consistent: an item is
"confirmed" as soon as it is accepted (as Turbo reports it) and "finalized" a configured
number of seconds later, at height ``BASE_HEIGHT + seq`` in a block whose id is derived
from that height. Heights grow with acceptance order, so ``HEIGHT_*`` sorting equals
acceptance order. Bundle ids are derived from the item id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.localgw.store import StoredItem

#: Synthetic height of the block before the first accepted item.
BASE_HEIGHT = 1_500_000
#: Blocks between acceptance and the receipt's deadline (Turbo promises ~200).
DEADLINE_BLOCKS = 200


def _derived_id(label: str, value: str) -> str:
    return b64url_encode(hashlib.sha256(f"ario-mlflow-localgw/{label}/{value}".encode()).digest())


@dataclass(frozen=True)
class SyntheticChain:
    """Finality timing and block metadata for stored items."""

    finalize_after: float = 2.0

    def is_final(self, item: StoredItem, now: float) -> bool:
        """True once ``finalize_after`` seconds have passed since acceptance."""
        return now >= item.received_at + self.finalize_after

    def finalized_cutoff(self, now: float) -> float:
        """Items received at or before this instant are final."""
        return now - self.finalize_after

    @staticmethod
    def height(seq: int) -> int:
        """Block height an item finalizes at."""
        return BASE_HEIGHT + seq

    @staticmethod
    def block_id(height: int) -> str:
        """Deterministic id of the synthetic block at ``height``."""
        return _derived_id("block", str(height))

    @staticmethod
    def bundle_id(item_id: str) -> str:
        """Deterministic id of the (synthetic) bundle carrying ``item_id``."""
        return _derived_id("bundle", item_id)

    @staticmethod
    def deadline_height(seq: int) -> int:
        """Receipt ``deadlineHeight`` for the ``seq``-th accepted item."""
        return BASE_HEIGHT + seq + DEADLINE_BLOCKS

    @staticmethod
    def seq_range(min_height: int | None, max_height: int | None) -> tuple[int | None, int | None]:
        """Translate a block-height range into an acceptance-sequence range."""
        low = None if min_height is None else min_height - BASE_HEIGHT
        high = None if max_height is None else max_height - BASE_HEIGHT
        return low, high

    def block(self, item: StoredItem, now: float) -> dict[str, Any] | None:
        """GraphQL ``block`` of a final item, ``None`` while pending."""
        if not self.is_final(item, now):
            return None
        height = self.height(item.seq)
        return {
            "id": self.block_id(height),
            "height": height,
            "timestamp": int(item.received_at + self.finalize_after),
            "previous": self.block_id(height - 1),
        }

    def status(self, item: StoredItem, now: float) -> dict[str, Any]:
        """Turbo's ``/tx/{id}/status`` answer for a held item."""
        final = self.is_final(item, now)
        return {
            "status": "FINALIZED" if final else "CONFIRMED",
            "bundleId": self.bundle_id(item.id),
            "info": "permanent" if final else "new",
            "winc": "0",
        }
