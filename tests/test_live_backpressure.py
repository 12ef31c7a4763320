"""Backpressure of /v1/stream, on both backends: a connection's queue is bounded, and a
client that lets it fill is dropped (closed with 4408, to come back with its last id)
instead of growing the API process's memory."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.app import create_app
from api.live import frame
from api.settings import Settings
from tests.support import Api


@pytest.fixture
def small_queue_client(settings: Settings):
    with TestClient(create_app(settings.model_copy(update={"stream_queue_max": 4})), raise_server_exceptions=False) as http:
        yield http


def test_a_client_that_falls_behind_is_dropped(small_queue_client: TestClient) -> None:
    api = Api(small_queue_client)
    ana = api.sign_up("ana")
    hub = small_queue_client.app.state.live
    with small_queue_client.websocket_connect(f"/v1/stream?token={ana.token}") as ws:
        assert ws.receive_json()["type"] == "ready"
        assert ws.receive_json()["type"] == "unread"
        (conn,) = hub.connections[int(ana.id)]

        def burst() -> int:  # in the event loop, so the writer cannot drain in between
            for n in range(50):
                hub.push(int(ana.id), frame("notification", n, notification={}))
            return conn.queue.qsize()  # measured here: once the loop runs on, the writer drains

        assert small_queue_client.portal.call(burst) == 4  # never more than the bound
        assert conn.dropped.is_set()
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
        assert closed.value.code == 4408
    assert int(ana.id) not in hub.connections  # forgotten once closed


def test_a_client_that_keeps_up_is_not_dropped(small_queue_client: TestClient) -> None:
    api = Api(small_queue_client)
    ana = api.sign_up("ana")
    hub = small_queue_client.app.state.live
    with small_queue_client.websocket_connect(f"/v1/stream?token={ana.token}") as ws:
        assert ws.receive_json()["type"] == "ready"
        assert ws.receive_json()["type"] == "unread"
        for n in range(20):  # one at a time: the queue never holds more than one
            small_queue_client.portal.call(hub.push, int(ana.id), frame("notification", n, notification={}))
            assert ws.receive_json()["id"] == str(n)
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
