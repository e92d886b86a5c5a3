"""Which dead letters are replayed, by beat and by operators (DESIGN.md §5)."""

from __future__ import annotations

from eventfwd.core.connection import text
from eventfwd.core.ledger import Ledger
from eventfwd.core.vocabulary import TRANSIENT_REASONS

PAGE = 500


def replay_transient(ledger: Ledger, *, page: int = PAGE) -> tuple[int, int]:
    """Replay every transient-class dead letter below the replay cap; (replayed, skipped).

    Pages by rank, oldest first: replayed ids leave the set, so the next page starts after the
    ones that stayed (newer dead letters only ever join at the end).
    """
    replayed = skipped = offset = 0
    while True:
        ids = [text(i) for i in ledger.client.zrange(ledger.keys.dead, offset, offset + page - 1)]
        if not ids:
            return replayed, skipped
        r, s = ledger.replay(
            ids,
            max_replays=ledger.settings.max_replays,
            reasons=TRANSIENT_REASONS,
            skip_open_circuits=True,
        )
        replayed += r
        skipped += s
        offset += s
