"""The Celery wire contract: the task message `eventfwd/core/lua/celery_message.lua` writes by hand
against what Celery (`app.amqp.as_task_v2`) and kombu's Redis channel (`Producer._prepare`,
`Channel.prepare_message`, `_put`) write for the same task, and read back by kombu and Celery.

It runs at both ends of the Celery and kombu versions pyproject.toml allows (`make range`). The
Lua runs in a real redis-server (the suite's own), as the ledger's scripts run it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import redis
from celery import Celery
from celery.worker.request import Request
from kombu import Queue

from eventfwd.core import task_names

pytestmark = pytest.mark.integration  # a real redis-server

PREFIX = "eventfwd"
QUEUE = "eventfwd"
TASK = task_names.DELIVER
# A wake-up (no ids: no args), one id (its own task id), several ids (the task id is a tag).
ID_LISTS = {"wake-up": [], "one id": ["ev-1"], "several ids": ["ev-1", "ev-2", "ev-3"]}

# Headers Celery writes that the Lua leaves out, and the value Celery writes for a task sent
# outside a worker with no options. A worker reads an absent header as this value.
ABSENT_AS = {
    "shadow": None,
    "eta": None,
    "expires": None,
    "group": None,
    "group_index": None,
    "timelimit": [None, None],
    "parent_id": None,
    "replaced_task_nesting": 0,
    "stamped_headers": None,
    "stamps": {},
}
# Headers only for people (logs, Flower): ours say where the message came from, not the args.
DESCRIPTIVE = {"argsrepr", "origin"}


def lua_push(client: redis.Redis, ids: list[str]) -> None:
    """Run the Lua builder as the ledger's scripts do: it pushes one message onto the queue."""
    folder = resources.files("eventfwd.core") / "lua"
    lib = "\n".join((folder / name).read_text() for name in ("_lib.lua", "celery_message.lua"))
    call = "publish(ARGV[1], ARGV[2], ARGV[3], cjson.decode(ARGV[4]), false)\nreturn 1"
    client.eval(f"{lib}\n{call}", 0, PREFIX, QUEUE, TASK, json.dumps(ids))


def lua_publish(client: redis.Redis, ids: list[str]) -> dict[str, Any]:
    """The message the Lua builder writes for `ids`, taken off the queue."""
    lua_push(client, ids)
    return pop_only_message(client)


def pop_only_message(client: redis.Redis) -> dict[str, Any]:
    raw = client.lrange(QUEUE, 0, -1)
    assert len(raw) == 1, raw
    client.delete(QUEUE)
    message: dict[str, Any] = json.loads(raw[0])
    return message


def app_on(redis_url: str) -> Celery:
    app = Celery("contract", broker=redis_url, set_as_current=False)
    app.conf.update(
        task_queues=[Queue(QUEUE)],
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=False,
    )
    return app


def celery_publish(
    app: Celery, client: redis.Redis, task_id: str, ids: list[str]
) -> dict[str, Any]:
    """The same task as Celery sends it: its protocol-2 message, published by kombu."""
    args = (ids,) if ids else ()
    message = app.amqp.as_task_v2(task_id, TASK, args=args, kwargs={}, ignore_result=True)
    with app.connection_for_write() as connection, app.amqp.Producer(connection) as producer:
        app.amqp.send_task_message(producer, TASK, message, queue=QUEUE)
    return pop_only_message(client)


@pytest.fixture
def app(redis_url: str) -> Iterator[Celery]:
    celery_app = app_on(redis_url)
    yield celery_app
    celery_app.close()


@pytest.mark.parametrize("ids", ID_LISTS.values(), ids=ID_LISTS.keys())
def test_the_lua_message_is_the_one_celery_and_kombu_write(
    app: Celery, rclient: redis.Redis, ids: list[str]
) -> None:
    ours = lua_publish(rclient, ids)
    task_id = ours["headers"]["id"]
    theirs = celery_publish(app, rclient, task_id, ids)

    # the envelope: kombu's Redis transport (prepare_message, then basic_publish's additions)
    assert (
        ours.keys()
        == theirs.keys()
        == {
            "body",
            "content-encoding",
            "content-type",
            "headers",
            "properties",
        }
    )
    assert ours["content-type"] == theirs["content-type"] == "application/json"
    assert ours["content-encoding"] == theirs["content-encoding"] == "utf-8"

    # the body: kombu base64-encodes it and says so; ours is the JSON text itself, which kombu
    # reads as is when `body_encoding` is absent
    theirs_props = dict(theirs["properties"])
    assert theirs_props.pop("body_encoding") == "base64"
    assert "body_encoding" not in ours["properties"]
    their_body = json.loads(base64.b64decode(theirs["body"]))
    assert json.loads(ours["body"]) == their_body
    assert their_body == [
        [ids] if ids else [],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]

    # the properties: the same, but for the delivery tag (any string unique to the message)
    ours_props = dict(ours["properties"])
    our_tag, their_tag = ours_props.pop("delivery_tag"), theirs_props.pop("delivery_tag")
    assert isinstance(our_tag, str) and isinstance(their_tag, str) and our_tag != their_tag
    assert ours_props == theirs_props
    assert ours_props["delivery_info"] == {"exchange": "", "routing_key": QUEUE}
    assert (ours_props["priority"], ours_props["delivery_mode"]) == (0, 2)
    assert ours_props["correlation_id"] == task_id and ours_props["reply_to"] == ""

    # the headers: every one we write is Celery's, with Celery's value unless it is descriptive
    ours_h, theirs_h = ours["headers"], theirs["headers"]
    assert ours_h.keys() <= theirs_h.keys()
    for name in ours_h.keys() - DESCRIPTIVE:
        assert ours_h[name] == theirs_h[name], name
    for name in DESCRIPTIVE:
        assert isinstance(ours_h[name], str) and ours_h[name], name
    left_out = theirs_h.keys() - ours_h.keys()
    assert left_out <= ABSENT_AS.keys(), f"Celery writes new headers: {left_out - ABSENT_AS.keys()}"
    assert {name: theirs_h[name] for name in left_out} == {n: ABSENT_AS[n] for n in left_out}
    assert (ours_h["task"], ours_h["lang"], ours_h["retries"]) == (TASK, "py", 0)
    assert ours_h["root_id"] == task_id and ours_h["ignore_result"] is True
    if len(ids) == 1:
        assert task_id == ids[0]  # one event: its id is the task's, in logs and Flower


@pytest.mark.parametrize("ids", ID_LISTS.values(), ids=ID_LISTS.keys())
def test_kombu_and_celery_read_the_lua_message_as_the_task_with_its_ids(
    app: Celery, rclient: redis.Redis, ids: list[str]
) -> None:
    seen: list[tuple[Any, ...]] = []

    # registered now (not lazily, not shared): where worker.tasks is imported too, its shared
    # `deliver` must not take this app's name for it
    @app.task(name=TASK, ignore_result=True, shared=False, lazy=False)
    def deliver(*args: Any) -> None:
        seen.append(args)

    lua_push(rclient, ids)  # left in the queue, byte for byte as the Lua wrote it
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        message = channel.basic_get(QUEUE, no_ack=False)  # kombu's Redis channel and Message
        assert message is not None
        # task protocol 2: no hybrid or protocol-1 conversion on the worker's side
        assert "task" in message.headers and "args" not in message.payload
        assert message.decode() == json.loads(json.dumps(message.payload))
        request = Request(message, app=app, task=deliver)
        assert request.task_name == TASK
        assert request.id == message.headers["id"] == message.properties["correlation_id"]
        assert list(request.args) == ([ids] if ids else [])
        assert request.kwargs == {}
        if len(ids) == 1:
            assert request.id == ids[0]
        request.execute()  # the task runs in this process, with the args it was sent
        message.ack()  # the delivery tag the Lua made is one kombu's QoS can acknowledge
        assert message.acknowledged
    assert seen == [(ids,) if ids else ()]
    assert rclient.llen(QUEUE) == 0
