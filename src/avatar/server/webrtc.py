"""``POST /api/sessions/{id}/webrtc``: the WebRTC transport (aiortc), docs/live-protocol.md section 4.

One peer connection per session, streaming like the WebSocket does: one FramePump fills a
video track and an audio track, and the data channel ``control`` carries the client's JSON
messages one way and ``session`` / ``accepted`` / ``error`` / ``event`` / ``closed``
messages the other. The pump starts only once the peer has connected, so no frames are
made for a viewer who is not there; when the peer connection fails or closes, or the
channel closes, the session is closed and freed.
"""

from __future__ import annotations

import asyncio
import logging
from fractions import Fraction
from typing import Literal

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict

from avatar.errors import AvatarError
from avatar.live.protocol import AudioEnd, AudioStart, message_id, parse_client_message, status
from avatar.live.session import LiveFrame
from avatar.server.responses import error_response
from avatar.server.sessions import ServerSession, SessionManager
from avatar.audio.io import to_pcm16
from avatar.server.stream import FramePump, event_messages, session_fields
from avatar.server.ws import apply_message

router = APIRouter()
log = logging.getLogger("avatar.server")

CHANNEL = "control"  # the data channel of the JSON messages
VIDEO_CLOCK = 90_000  # RTP's video clock rate: frame pts are in its ticks
QUEUE_FRAMES = 3  # per track; when the encoder lags the oldest frame goes, so latency stays low
CONNECT_SECONDS = 30.0  # an answered peer that has not connected by then is given up
DRAIN_SECONDS = 0.5  # at most this long for the last channel messages to leave before closing
NO_STREAMED_AUDIO = "send streamed audio over the WebSocket /api/sessions/{}/stream"


class Offer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sdp: str
    type: Literal["offer"]


class _QueueTrack(MediaStreamTrack):
    """Hands the encoder the frames the pump puts in a small bounded queue."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_FRAMES)

    def put(self, frame: av.VideoFrame | av.AudioFrame) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # late encoder: drop the oldest rather than fall behind
        self.queue.put_nowait(frame)

    async def recv(self) -> av.VideoFrame | av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        return await self.queue.get()


class VideoTrack(_QueueTrack):
    kind = "video"


class AudioTrack(_QueueTrack):
    kind = "audio"


def video_frame(image: np.ndarray, index: int, fps: float) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame.pts = round(index * VIDEO_CLOCK / fps)
    frame.time_base = Fraction(1, VIDEO_CLOCK)
    return frame


def audio_frame(audio: np.ndarray, index: int, rate: int) -> av.AudioFrame:
    samples = np.frombuffer(to_pcm16(audio), "<i2").reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = index * samples.shape[1]
    frame.time_base = Fraction(1, rate)
    return frame


def _peers(app: FastAPI) -> dict[str, "_Peer"]:
    """The open peer connections by session id (kept on the app for close_all)."""
    if not hasattr(app.state, "webrtc_peers"):
        app.state.webrtc_peers = {}
    return app.state.webrtc_peers


class _Peer:
    """One session's peer connection: its two tracks, its control channel and its pump."""

    def __init__(self, app: FastAPI, session: ServerSession):
        self.app = app
        self.session = session
        # No STUN or TURN servers: for local or LAN use, host candidates are enough, and
        # aiortc's default (a public STUN server) would need the internet.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video = VideoTrack()
        self.audio = AudioTrack()
        self.channel = None
        self.connected = asyncio.Event()
        self.pump: asyncio.Task | None = None
        self._closing: asyncio.Future | None = None
        self._told = False  # the client was sent "closed"
        self._image: np.ndarray | None = None  # the last picture, repeated when one is dropped
        self.pc.on("connectionstatechange", self._on_state)
        self.pc.on("datachannel", self._on_channel)

    async def answer(self, offer: Offer) -> RTCSessionDescription:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer.sdp, offer.type))
        offered = {t.kind for t in self.pc.getTransceivers()}
        if not {"video", "audio"} <= offered:  # aiortc answers even an empty offer
            raise AvatarError(f"the offer receives {' and '.join(sorted(offered)) or 'no media'}", "sdp",
                              "add a recvonly video and a recvonly audio transceiver before createOffer")
        self.pc.addTrack(self.video)  # fills the offer's video and audio transceivers
        self.pc.addTrack(self.audio)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.pump = asyncio.create_task(self._run())
        return self.pc.localDescription

    async def end(self, reason: str) -> None:
        """The server closes: tell the client why (once), then close."""
        if not self._told and self._closing is None:
            self._told = True
            self._send(status("closed", reason=reason))
            await self._drain()
        await self.close(reason)

    async def close(self, reason: str) -> None:
        """Free the session and the connection; later calls wait for the first one."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(reason))
        await asyncio.shield(self._closing)

    async def discard(self) -> None:
        """Close the connection of a refused offer, leaving the session open."""
        self.pc.remove_all_listeners()  # its "closed" state must not close the session
        await self.pc.close()

    async def _close(self, reason: str) -> None:
        peers = _peers(self.app)
        if peers.get(self.session.id) is self:
            del peers[self.session.id]
        manager: SessionManager = self.app.state.sessions
        manager.close(self.session.id, reason)
        log.info("session %s ended (webrtc): %s", self.session.id, reason)
        if self.pump is not None:
            self.pump.cancel()
        await self.pc.close()

    # -- frames ---------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), CONNECT_SECONDS)
        except asyncio.TimeoutError:
            return await self.close(f"the peer did not connect in {CONNECT_SECONDS:g} s")
        async for frame in FramePump(self.session.live, self.app.state.executor).frames():
            for message in event_messages(frame):
                self._send(message)
            self._feed(frame)
        await self.end(self.session.close_reason or "session closed")  # idle, DELETE or shutdown

    def _feed(self, frame: LiveFrame) -> None:
        live = self.session.live
        if frame.image is not None:
            self._image = frame.image
        if self._image is not None:  # a dropped picture repeats the last one
            self.video.put(video_frame(self._image, frame.index, live.fps))
        self.audio.put(audio_frame(frame.audio, frame.index, live.config.audio_rate))

    # -- control channel ------------------------------------------------------------------
    async def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected.set()
        elif state in ("failed", "closed"):
            await self.close(f"the peer connection {state}")

    def _on_channel(self, channel) -> None:
        if channel.label != CHANNEL:
            return
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", self._on_channel_close)
        self._send(status("session", session=self.session.id, **session_fields(self.session)))

    async def _on_channel_close(self) -> None:
        await self.close("the control channel closed")

    def _on_message(self, message: str | bytes) -> None:
        """One client message; its reply echoes the message's ``id``, as on the WebSocket."""
        text = message if isinstance(message, str) else ""
        try:
            reply = self._apply(message)
        except AvatarError as error:
            reply = {"type": "error", "message": error.one_line(), "fatal": False}
        if reply is not None:
            self._send(status(reply.pop("type"), **reply, id=message_id(text)))

    def _apply(self, message: str | bytes) -> dict | None:
        hint = NO_STREAMED_AUDIO.format(self.session.id)
        if not isinstance(message, str):
            raise AvatarError("binary messages are not taken on the control channel", "message", hint)
        parsed = parse_client_message(message)
        if isinstance(parsed, (AudioStart, AudioEnd)):
            raise AvatarError(f"{parsed.type} is not taken over WebRTC", "message", hint)
        return apply_message(self.session, parsed)

    def _send(self, text: str) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(text)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_SECONDS
        while self.channel is not None and self.channel.bufferedAmount and loop.time() < deadline:
            await asyncio.sleep(0.02)


def _already_streaming():
    response = error_response(AvatarError("this session is already streaming to another client", "session",
                                          "open a new session with POST /api/sessions"))
    response.status_code = 409  # Conflict: the session exists but is taken
    return response


@router.post("/api/sessions/{session_id}/webrtc")
async def webrtc_offer(request: Request, session_id: str, offer: Offer):
    """An SDP offer (recvonly video + audio, a data channel "control") -> the answer."""
    app = request.app
    session = app.state.sessions.get(session_id)  # NotFound -> 404
    if session.streaming:
        return _already_streaming()
    session.streaming = True  # before any await: a second offer or WebSocket is refused
    peer = _Peer(app, session)
    _peers(app)[session_id] = peer
    try:
        answer = await peer.answer(offer)
    except Exception as error:  # aiortc raises several types for an offer it cannot take
        _peers(app).pop(session_id, None)
        await peer.discard()
        session.streaming = False  # the session stays open for another try
        if isinstance(error, AvatarError):
            raise
        raise AvatarError(f"the offer could not be answered ({error})", "sdp",
                          "send the offer of an RTCPeerConnection with video and audio to receive") from None
    return {"sdp": answer.sdp, "type": answer.type}


async def close_all(app: FastAPI) -> None:
    """Close every peer connection (server shutdown)."""
    peers = list(_peers(app).values())
    await asyncio.gather(*(peer.end("the server is shutting down") for peer in peers), return_exceptions=True)
