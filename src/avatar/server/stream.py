"""A session's frames on the wall clock: one frame every 1/fps, dropped evenly when late.

Both transports (the WebSocket and WebRTC) consume a :class:`FramePump`. It never
queues frames: a frame that is already more than one frame period late when it is due
is produced without its image (its audio and events still go out), so an overloaded
machine drops pictures evenly instead of stalling or letting sound and picture drift.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import AsyncIterator

import cv2
import numpy as np

from avatar.audio.io import to_pcm16
from avatar.live.protocol import FLAG_DROPPED, FLAG_SPEAKING, WireFrame, status
from avatar.live.session import LiveFrame, LiveSession
from avatar.server.sessions import ServerSession

def session_fields(session: ServerSession) -> dict:
    """What a client needs to play a session (the POST reply and the ``session`` message)."""
    live = session.live
    h, w = live.portrait.image.shape[:2]
    return {"width": w, "height": h, "fps": live.fps, "audio_rate": live.config.audio_rate,
            "motion": session.options.motion}


def event_messages(frame: LiveFrame) -> list[str]:
    """The frame's playback events as ``event`` messages (sent just before the frame)."""
    return [status("event", event=kind, utterance=uid, frame=frame.index, **({"message": text} if text else {}))
            for kind, uid, text in frame.events]


def jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def to_wire(frame: LiveFrame, quality: int) -> WireFrame:
    flags = (FLAG_SPEAKING if frame.speaking else 0) | (FLAG_DROPPED if frame.image is None else 0)
    image = jpeg(frame.image, quality) if frame.image is not None else b""
    return WireFrame(frame.index, frame.utterance or 0, flags, to_pcm16(frame.audio), image)


class FramePump:
    """Yields ``(LiveFrame, late)`` at the session's fps; rendering runs in ``executor``."""

    def __init__(self, live: LiveSession, executor: Executor | None = None):
        self.live = live
        self.executor = executor

    async def frames(self) -> AsyncIterator[LiveFrame]:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.live.fps
        start = loop.time()
        n = 0
        while not self.live.closed:
            due = start + n * period
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            render = loop.time() - due <= period  # more than a frame late: drop this image
            frame = await loop.run_in_executor(self.executor, self.live.next_frame, render)
            yield frame
            n += 1
