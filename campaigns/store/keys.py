"""Deterministic short ids and idempotency keys.

Every key is derived from what it names (campaign, stage, position), never from time or a
random source, so a crash-and-rerun derives the same key and the marketplace deduplicates.
"""

from __future__ import annotations

import hashlib
import hmac


def short_id(*parts: object, prefix: str = "", length: int = 12) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return prefix + digest[:length]


def batch_key(campaign: str, stage: str) -> str:
    return f"{campaign}/{stage}/batch"


def page_key(campaign: str, stage: str, index: int) -> str:
    return f"{campaign}/{stage}/page/{index}"


def ledger_key(kind: str, provider: str, assignment_id: str) -> str:
    return f"{kind}:{provider}:{assignment_id}"


def pseudonym(worker_id: str, secret: str) -> str:
    """Keyed hash of a worker id for exports: stable within a campaign, not reversible."""
    return "w" + hmac.new(secret.encode(), worker_id.encode(), hashlib.sha256).hexdigest()[:12]
