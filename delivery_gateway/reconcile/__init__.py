"""Reconciliation: re-reads from Twilio's REST API the receipts whose state can still change, so a webhook
Twilio never delivered (it does not retry them) leaves no state wrong for long.

Never applies a change itself: whatever it finds goes through the webhook ingest's one apply path (ledger,
cache, pub/sub), and never imports the GraphQL layer.
"""

from __future__ import annotations

from delivery_gateway.reconcile.reconciler import PassResult, Reconciler

__all__ = ["PassResult", "Reconciler"]
