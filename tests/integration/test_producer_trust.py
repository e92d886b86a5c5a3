"""What a producer trusts: the platform allow-list, client ids, pre-validated rows, spool files.

(issue #11, items 2 and 6)
"""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from eventfwd.core.errors import InvalidEvent
from eventfwd.core.schema import ValidEvent
from eventfwd.core.settings import Settings
from producers import EventProducer
from producers import spool as spool_module
from tests.conftest import example_events

pytestmark = pytest.mark.integration


def test_a_platform_outside_the_allow_list_is_refused_naming_the_field(
    settings: Settings, rclient: redis.Redis
) -> None:
    producer = EventProducer(settings=settings.replace(allowed_platforms=frozenset({"acme"})))
    with pytest.raises(InvalidEvent) as err:
        producer.enqueue("junk-1", example_events()[0])
    assert [(e.path, e.rule) for e in err.value.errors] == [("platform_id", "platform_not_allowed")]
    with pytest.raises(InvalidEvent):
        producer.enqueue_many("junk-2", example_events())
    assert rclient.dbsize() == 0
    assert producer.enqueue("acme", example_events()[0])
    assert rclient.smembers("eventfwd:platforms") == {"acme"}


def test_client_ids_ignore_gives_every_event_a_fresh_id_in_its_body_too(
    settings: Settings, rclient: redis.Redis
) -> None:
    producer = EventProducer(settings=settings.replace(client_ids="ignore"))
    event = example_events()[0]
    minted = producer.enqueue("acme", event)
    assert minted != event["id"]
    body = json.loads(rclient.hget(f"eventfwd:ev:{minted}", "body") or "")
    assert body["id"] == minted
    again = producer.enqueue("acme", event)
    assert again != minted  # the same client id does not silence the second event


def test_an_id_namespace_scopes_client_ids_to_one_caller(
    settings: Settings, rclient: redis.Redis
) -> None:
    producer = EventProducer(settings=settings)
    event = example_events()[0]
    mine = producer.enqueue("acme", event, id_namespace="client-1")
    theirs = producer.enqueue("acme", event, id_namespace="client-2")
    assert len({mine, theirs, event["id"]}) == 3
    # Stable: a retry by the same caller is still de-duplicated.
    assert producer.enqueue("acme", event, id_namespace="client-1") == mine
    assert uuid.UUID(mine)
    body = json.loads(rclient.hget(f"eventfwd:ev:{mine}", "body") or "")
    assert body["id"] == mine
    [batch_id] = producer.enqueue_many("acme", [event], id_namespace="client-1")
    assert batch_id == mine


@pytest.mark.parametrize(
    ("event_id", "platform", "body"),
    [
        ("ok-1", "../../admin", '{"id":"ok-1"}'),
        ("bad\nid", "acme", '{"id":"x"}'),
        ("", "acme", '{"id":""}'),
        ("ok-2", "acme", "x" * (70 * 1024)),
        ("ok-3", "acme", "not json"),
    ],
)
def test_enqueue_validated_does_not_trust_what_it_is_handed(
    settings: Settings, rclient: redis.Redis, event_id: str, platform: str, body: str
) -> None:
    producer = EventProducer(settings=settings)
    with pytest.raises(InvalidEvent):
        producer.enqueue_validated(platform, [ValidEvent(event_id, body, 1)])
    assert rclient.dbsize() == 0


def test_a_spool_file_with_an_unsafe_platform_id_is_corrupt_not_drained() -> None:
    good = ("e-1", "acme", '{"id":"e-1"}', 1)
    for row in [("e-1", "../x", '{"id":"e-1"}', 1), ("e\x1b[2J", "acme", "{}", 1)]:
        with pytest.raises(spool_module.SpoolCorrupt):
            spool_module.decode(spool_module.encode([good, row]))
    assert spool_module.decode(spool_module.encode([good])) == [good]
