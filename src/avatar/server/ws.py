"""``/api/sessions/{id}/stream``: the WebSocket transport of docs/live-protocol.md.

Two tasks per connection: one reads the client's messages into the session, one sends
a frame every 1/fps. Any bad message gets an ``error`` message and the session goes on;
a disconnect (or the server closing an idle session) ends both tasks and frees the
session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from concurrent.futures import Executor

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from avatar.errors import AvatarError
from avatar.live.protocol import (AudioEnd, AudioStart, ControlsMessage, Interrupt, TextMessage,
                                  message_id, pack_frame, parse_client_message, status)
from avatar.server.sessions import ServerSession, SessionManager
from avatar.server.stream import FramePump, event_messages, session_fields, to_wire

router = APIRouter()
log = logging.getLogger("avatar.server")

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # RFC 6455: a message that violates the server's policy


def apply_message(session: ServerSession, message) -> dict | None:
    """Hand one parsed client message to the session; returns a reply to send, if any."""
    live = session.live
    if isinstance(message, TextMessage):
        return {"type": "accepted", "utterance": live.say(message.text), "kind": "text"}
    if isinstance(message, AudioStart):
        return {"type": "accepted", "utterance": live.start_audio(message.sample_rate), "kind": "audio"}
    if isinstance(message, AudioEnd):
        live.end_audio()
        return None
    if isinstance(message, Interrupt):
        live.interrupt()  # the "interrupted" event goes out with the next frame
        return None
    if isinstance(message, ControlsMessage):
        changed = {k: v for k, v in message.model_dump(exclude={"type", "id"}).items() if v is not None}
        if "gaze" in changed:
            changed["gaze"] = tuple(changed["gaze"])
        options = dataclasses.replace(session.options, **changed)
        live.set_controls(options.controls())  # a bad value raises here and changes nothing
        session.options = options
        return {"type": "controls", **changed}
    raise TypeError(f"unhandled message {type(message).__name__}")


def push_pcm(session: ServerSession, data: bytes, limit: int) -> None:
    if len(data) > limit:
        raise AvatarError(f"a binary message of {len(data)} bytes is over the limit of {limit}", "audio",
                          "send audio in chunks of 20-200 ms")
    if len(data) % 2:
        raise AvatarError("binary audio must be 16-bit PCM (an even number of bytes)", "audio",
                          "send int16 little-endian mono samples")
    session.live.push_audio(np.frombuffer(data, "<i2"))


async def _receive(ws: WebSocket, session: ServerSession, limit: int, executor: Executor | None) -> str:
    """Read messages until the client leaves; returns why the loop ended."""
    loop = asyncio.get_running_loop()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return "client disconnected"
        text, request = message.get("text") or "", None
        try:
            if message.get("bytes") is not None:
                await loop.run_in_executor(executor, push_pcm, session, message["bytes"], limit)
                continue
            if len(text) > limit:
                raise AvatarError(f"a message of {len(text)} characters is over the limit", "message",
                                  "send long text in several messages")
            request = parse_client_message(text)
            reply = apply_message(session, request)
        except AvatarError as error:
            await ws.send_text(status("error", message=error.one_line(), fatal=False, id=message_id(text)))
            continue
        if reply is not None:
            await ws.send_text(status(reply.pop("type"), **reply, id=request.id))


async def _send(ws: WebSocket, session: ServerSession, quality: int, executor: Executor | None) -> str:
    loop = asyncio.get_running_loop()
    pump = FramePump(session.live, executor)
    async for frame in pump.frames():
        for message in event_messages(frame):
            await ws.send_text(message)
        wire = await loop.run_in_executor(executor, to_wire, frame, quality)
        await ws.send_bytes(pack_frame(wire))
    return "session closed"


@router.websocket("/api/sessions/{session_id}/stream")
async def stream(ws: WebSocket, session_id: str):
    manager: SessionManager = ws.app.state.sessions
    await ws.accept()
    try:
        session = manager.get(session_id)
    except AvatarError as error:
        await ws.send_text(status("error", message=error.one_line(), fatal=True))
        await ws.close(CLOSE_POLICY)
        return
    if session.streaming:
        await ws.send_text(status("error", message="this session is already streaming to another client",
                                  fatal=True))
        await ws.close(CLOSE_POLICY)
        return
    session.streaming = True
    await ws.send_text(status("session", session=session.id, **session_fields(session)))
    config = manager.config
    tasks = [asyncio.create_task(_receive(ws, session, config.max_message_bytes, ws.app.state.executor)),
             asyncio.create_task(_send(ws, session, config.jpeg_quality, ws.app.state.executor))]
    done: set = set()
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        manager.close(session.id)  # a client that leaves frees everything
    ended = [t.result() if t.exception() is None else repr(t.exception()) for t in done]
    if "client disconnected" in ended:
        return
    log.info("session %s ended: %s", session.id, "; ".join(ended))
    try:
        await ws.send_text(status("closed", reason=session.close_reason or "session closed"))
        await ws.close(CLOSE_NORMAL)
    except (RuntimeError, WebSocketDisconnect):
        pass  # the client is already gone
