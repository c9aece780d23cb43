"""A Python client of ``avatar serve``, shaped like agent frameworks' avatar interfaces.

LiveKit's avatar ``VideoGenerator`` pushes audio, flushes at the end of a segment, clears
the buffer on barge-in and iterates over synchronised video and audio frames, with
playback started / finished / interrupted events; Pipecat's video services take TTS
audio frames and push image frames the same way. :class:`LiveClient` offers exactly
those calls over the WebSocket protocol of docs/live-protocol.md::

    with LiveClient("http://127.0.0.1:8000") as avatar:   # the bundled portrait
        avatar.push_audio(pcm16, 16000)                   # as the TTS produces it
        avatar.end_segment()
        for frame in avatar.frames():                      # 25 per second
            show(frame.image); play(frame.audio)
            if "finished" in frame.event_kinds: break

A reader thread receives everything the server sends, so pushes never wait for frames.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from avatar.audio.io import to_pcm16
from avatar.errors import AvatarError
from avatar.live.protocol import WireFrame, unpack_frame

_END = object()  # the stream has ended
MAX_REPLIES = 256  # status messages kept for callers that wait for a reply


@dataclass
class ClientFrame:
    """A frame as the client receives it."""

    index: int
    utterance: int | None  # None while the face idles
    audio: np.ndarray  # (samples,) int16 at LiveClient.audio_rate
    jpeg: bytes  # empty if the server dropped this frame's picture (it was late)
    events: list[dict] = field(default_factory=list)  # {"event": started|finished|interrupted|error, ...}

    @property
    def image(self) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB, decoded on demand; None for a dropped picture."""
        import cv2

        if not self.jpeg:
            return None
        bgr = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    @property
    def event_kinds(self) -> list[str]:
        return [e["event"] for e in self.events]


class LiveClient:
    """One live session on an avatar server: push speech in, iterate frames out."""

    def __init__(self, url: str = "http://127.0.0.1:8000", photo=None, *, motion: str = "rules", seed: int = 0,
                 emotion: str | None = None, valence: float | None = None, arousal: float | None = None,
                 head_motion: float = 1.0, gaze: tuple[float, float] = (0.0, 0.0), head_distance: float = 1.0,
                 timeout: float = 60.0):
        from websockets.sync.client import connect

        self.url = url.rstrip("/")
        fields = {"motion": motion, "seed": seed, "emotion": emotion, "valence": valence, "arousal": arousal,
                  "head_motion": head_motion, "gaze_x": gaze[0], "gaze_y": gaze[1],
                  "head_distance": head_distance}
        self.session = self._post_session({k: v for k, v in fields.items() if v is not None}, photo, timeout)
        self.id: str = self.session["id"]
        self.fps: float = self.session["fps"]
        self.audio_rate: int = self.session["audio_rate"]
        ws_url = "ws" + self.url[len("http"):] + self.session["stream"]
        self._stack = contextlib.ExitStack()
        self._ws = self._stack.enter_context(connect(ws_url, open_timeout=timeout, max_size=None))
        self._ids = itertools.count(1)
        self._frames: queue.Queue = queue.Queue()
        self._replies: queue.Queue = queue.Queue(maxsize=MAX_REPLIES)
        self._errors: list[str] = []
        self._segment_rate: int | None = None  # sample rate of the open audio segment
        self._closed_reason: str | None = None
        self._reader = threading.Thread(target=self._read, name="avatar-live-client", daemon=True)
        self._reader.start()
        hello = self._reply(None, timeout)
        self.width, self.height = hello["width"], hello["height"]

    # -- speech in (LiveKit: push_audio / flush / clear_buffer) ----------------------------
    def say(self, text: str, timeout: float = 10.0) -> int:
        """Speak ``text`` with the server's voice; returns the utterance id."""
        request = self._send({"type": "text", "text": text})
        return self._reply(request, timeout)["utterance"]

    def push_audio(self, samples, sample_rate: int) -> None:
        """Mono speech as it is produced: int16 or float [-1, 1] samples, or int16 bytes."""
        if self._segment_rate != sample_rate:
            if self._segment_rate is not None:
                self.end_segment()
            self._send({"type": "audio_start", "sample_rate": int(sample_rate)})
            self._segment_rate = sample_rate
        if isinstance(samples, (bytes, bytearray)):
            data = bytes(samples)
        else:
            samples = np.asarray(samples)
            data = samples.astype("<i2").tobytes() if samples.dtype == np.int16 else to_pcm16(samples)
        self._ws.send(data)

    def end_segment(self) -> None:
        """The pushed audio segment is complete (LiveKit: ``flush``)."""
        if self._segment_rate is not None:
            self._send({"type": "audio_end"})
            self._segment_rate = None

    def clear_buffer(self) -> None:
        """Barge-in: queued speech is dropped from the next frame and the face returns to idle."""
        self._segment_rate = None
        self._send({"type": "interrupt"})

    def set_controls(self, **controls) -> None:
        """emotion, valence, arousal, head_motion, gaze=(x, y) degrees, head_distance."""
        self._send({"type": "controls", **controls})

    # -- frames out -------------------------------------------------------------------------
    def frames(self, timeout: float = 10.0) -> Iterator[ClientFrame]:
        """Frames in order, as the server sends them (at its fps); ends when the session does."""
        while True:
            try:
                item = self._frames.get(timeout=timeout)
            except queue.Empty:
                raise AvatarError(f"no frame from the server for {timeout:g} s", self.url,
                                  "check that the server is running") from None
            if item is _END:
                self._frames.put(_END)  # later calls end at once too
                return
            yield item

    @property
    def errors(self) -> list[str]:
        """Error messages the server sent (bad messages are answered, not fatal)."""
        return list(self._errors)

    def download_last(self, path) -> Path:
        """The last utterance played to its end, as an mp4 at ``path``."""
        path = Path(path)
        try:
            with urllib.request.urlopen(f"{self.url}/api/sessions/{self.id}/last.mp4") as response:
                path.write_bytes(response.read())
        except urllib.error.HTTPError as error:
            raise _server_error(error) from None
        return path

    def close(self) -> None:
        self._stack.close()
        self._reader.join(timeout=5)

    def __enter__(self) -> "LiveClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------
    def _send(self, message: dict) -> int:
        """Send with a fresh id; returns the id its reply will carry."""
        request = next(self._ids)
        self._ws.send(json.dumps({**message, "id": request}))
        return request

    def _reply(self, request: int | str | None, timeout: float) -> dict:
        """The reply to ``request`` (None: the server's first ``session`` message)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AvatarError(f"no reply from the server in {timeout:g} s", self.url) from None
            if message.get("id") != request:
                continue  # the reply to a message nobody waits for
            if message["type"] == "error":
                raise AvatarError(message["message"], "server")
            return message

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        events: list[dict] = []
        try:
            for message in self._ws:
                if isinstance(message, bytes):
                    self._frames.put(self._frame(unpack_frame(message), events))
                    events = []
                    continue
                data = json.loads(message)
                if data["type"] == "event":
                    events.append(data)
                elif data["type"] == "closed":
                    self._closed_reason = data.get("reason", "")
                else:
                    if data["type"] == "error":
                        self._errors.append(data["message"])
                    self._keep_reply(data)
        except ConnectionClosed:
            pass
        finally:
            self._frames.put(_END)

    def _keep_reply(self, data: dict) -> None:
        """Replies nobody waits for are dropped oldest first, so memory stays bounded."""
        while True:
            try:
                self._replies.put_nowait(data)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._replies.get_nowait()

    @staticmethod
    def _frame(wire: WireFrame, events: list[dict]) -> ClientFrame:
        return ClientFrame(wire.index, wire.utterance or None, np.frombuffer(wire.audio, "<i2"), wire.jpeg, events)

    def _post_session(self, fields: dict, photo, timeout: float) -> dict:
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in fields.items()]
        if photo is not None:
            photo = Path(photo)
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; '
                         f'filename="{photo.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                         + photo.read_bytes() + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"{self.url}/api/sessions", body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise _server_error(error) from None
        except urllib.error.URLError as error:
            raise AvatarError(f"cannot reach the server ({error.reason})", self.url,
                              "start it with `avatar serve`") from None


def _server_error(error: urllib.error.HTTPError) -> AvatarError:
    """The server's one-line JSON error as an AvatarError."""
    try:
        message = json.loads(error.read()).get("error", str(error))
    except ValueError:
        message = str(error)
    return AvatarError(message, "server")


class AsyncLiveClient:
    """:class:`LiveClient` for asyncio agents (LiveKit, Pipecat): the same calls, awaitable,
    and ``async for frame in client``. Sends are quick socket writes; only waiting for a
    frame or a reply goes to a thread, so the event loop never blocks."""

    def __init__(self, client: LiveClient):
        self.sync = client

    @classmethod
    async def connect(cls, *args, **kwargs) -> "AsyncLiveClient":
        import asyncio

        return cls(await asyncio.to_thread(LiveClient, *args, **kwargs))

    async def say(self, text: str) -> int:
        import asyncio

        return await asyncio.to_thread(self.sync.say, text)

    async def push_audio(self, samples, sample_rate: int) -> None:
        self.sync.push_audio(samples, sample_rate)

    async def end_segment(self) -> None:
        self.sync.end_segment()

    async def clear_buffer(self) -> None:
        self.sync.clear_buffer()

    async def set_controls(self, **controls) -> None:
        self.sync.set_controls(**controls)

    async def __aiter__(self):
        import asyncio

        frames = self.sync.frames()
        while (frame := await asyncio.to_thread(next, frames, None)) is not None:
            yield frame

    async def aclose(self) -> None:
        import asyncio

        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> "AsyncLiveClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
