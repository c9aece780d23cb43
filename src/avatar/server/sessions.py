"""The server's open sessions: creation from an upload, limits, and closing idle ones.

Every bound a user could otherwise push past lives here: the number of sessions
(``LiveConfig.max_sessions``), the server's resident memory (``max_memory_mb``), the
photo's bytes and size, and ``idle_timeout_seconds`` without input. Within a session,
LiveSession bounds the queued speech and the kept utterance, so one session's memory is
bounded too (a 512-px photo, at most ``max_queued_seconds`` of audio waiting and
``max_utterance_seconds`` kept for the download).
"""

from __future__ import annotations

import io
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass, field

from avatar.config import LIVE, VIDEO, LiveConfig
from avatar.errors import AvatarError
from avatar.generators.base import EMOTIONS, Controls
from avatar.live.session import LiveSession


class Busy(AvatarError):
    """The server cannot take another session now (HTTP 503)."""


class NotFound(AvatarError):
    """No such session (HTTP 404)."""


class TooLarge(AvatarError):
    """An upload or a message over its limit (HTTP 413)."""


@dataclass
class SessionOptions:
    """What a client chooses when it opens a session."""

    motion: str = "rules"
    seed: int = 0
    emotion: str | None = None
    valence: float | None = None
    arousal: float | None = None
    head_motion: float = 1.0
    gaze: tuple[float, float] = (0.0, 0.0)  # degrees (x, y)
    head_distance: float = 1.0

    def controls(self) -> Controls:
        from avatar.api import make_controls

        if self.emotion is not None and self.emotion not in EMOTIONS:
            raise AvatarError(f"unknown emotion {self.emotion!r}", "emotion", f"use one of: {', '.join(EMOTIONS)}")
        return make_controls(self.emotion, self.valence, self.arousal, self.head_motion,
                             (math.radians(self.gaze[0]), math.radians(self.gaze[1])),
                             self.head_distance)


@dataclass
class ServerSession:
    id: str
    live: LiveSession
    options: SessionOptions
    streaming: bool = False  # a client is receiving its frames (one at a time)
    close_reason: str = ""  # told to the client when the server closes the session
    created: float = field(default_factory=time.monotonic)


def resident_mb() -> float | None:
    """This process's resident memory in MB (Linux /proc), None where unknown."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class SessionManager:
    """Opens, finds and closes :class:`ServerSession` objects; thread-safe."""

    def __init__(self, config: LiveConfig = LIVE, fps: float = VIDEO.fps,
                 generators: dict[str, dict] | None = None, default_image=None):
        self.config = config
        self.fps = fps
        # motion name -> constructor options; learned generators need a checkpoint
        self.generators = generators or {"rules": {}}
        self.default_image = default_image  # path or array of the bundled portrait
        self._sessions: dict[str, ServerSession] = {}
        self._shared: dict[str, object] = {}  # one generator instance per motion name
        self._lock = threading.Lock()
        self._default_portrait = None

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, photo: bytes | None, options: SessionOptions) -> ServerSession:
        """A new session on ``photo`` (image file bytes) or, if None, the bundled portrait."""
        if options.motion not in self.generators:
            raise AvatarError(f"motion generator {options.motion!r} is not served", "motion",
                              f"this server offers: {', '.join(self.generators)}")
        controls = options.controls()  # an unknown emotion fails here, before any work
        self._check_capacity()
        portrait = self._portrait(photo)
        live = LiveSession(portrait, controls, seed=options.seed, method=options.motion, fps=self.fps,
                           config=self.config, generator=self._generator(options.motion))
        with self._lock:
            if len(self._sessions) >= self.config.max_sessions:  # raced with another upload
                live.close()
                raise self._busy()
            session = ServerSession(secrets.token_urlsafe(12), live, options)
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> ServerSession:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise NotFound("no such session (it may have been closed)", session_id,
                           "open a new session with POST /api/sessions")
        return session

    def close(self, session_id: str, reason: str = "") -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.close_reason = session.close_reason or reason
            session.live.close()

    def close_all(self) -> None:
        for session_id in list(self._sessions):
            self.close(session_id)

    def idle(self) -> list[str]:
        """Sessions without input for ``idle_timeout_seconds``, or never streamed within
        ``connect_timeout_seconds`` (an opened slot nobody uses must not keep others out)."""
        now = time.monotonic()
        c = self.config
        with self._lock:
            return [s.id for s in self._sessions.values()
                    if now - s.live.last_activity > c.idle_timeout_seconds
                    or (not s.streaming and now - s.created > c.connect_timeout_seconds)]

    # -- internals ----------------------------------------------------------------------
    def _busy(self) -> Busy:
        return Busy(f"the server is busy ({self.config.max_sessions} sessions are open)", "server",
                    "try again in a minute")

    def _check_capacity(self) -> None:
        if len(self._sessions) >= self.config.max_sessions:
            raise self._busy()
        memory = resident_mb()
        if memory is not None and memory > self.config.max_memory_mb:
            raise Busy(f"the server is out of memory for new sessions ({memory:.0f} MB in use)", "server",
                       "try again when a session has closed")

    def _portrait(self, photo: bytes | None):
        from avatar.image import decode_image
        from avatar.pipeline import load_portrait

        if photo is None:
            with self._lock:
                if self._default_portrait is None:
                    self._default_portrait = load_portrait(self.default_image, self.config.frame_size)
                return self._default_portrait
        if len(photo) > self.config.max_upload_bytes:
            raise TooLarge(f"the photo is {len(photo) / 1e6:.1f} MB", "photo",
                           f"upload at most {self.config.max_upload_bytes / 1e6:g} MB")
        rgb = decode_image(io.BytesIO(photo), "photo", max_side=self.config.max_image_side)
        return load_portrait(rgb, self.config.frame_size, where="photo")

    def _generator(self, motion: str):
        from avatar.generators.registry import get_generator

        with self._lock:
            if motion not in self._shared:
                self._shared[motion] = get_generator(motion, **self.generators[motion])
            return self._shared[motion]
