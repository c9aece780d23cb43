"""The live wire protocol, shared by ``avatar serve`` and :mod:`avatar.live.client`.

docs/live-protocol.md is the description for other languages; this module is the one
implementation. Client -> server: JSON text messages (parsed into the typed messages
below) and binary messages of 16-bit little-endian mono PCM between ``audio_start`` and
``audio_end``. Server -> client: JSON status messages and one binary message per video
frame holding that frame's audio and its JPEG image, so sound and picture cannot drift.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from avatar.errors import AvatarError

# -- server -> client: one binary message per frame ---------------------------------------
FRAME_MAGIC = b"AVF1"
# magic, frame index, utterance (0 = idle), flags, audio bytes, image bytes
FRAME_HEADER = struct.Struct("<4sIiIII")
FLAG_SPEAKING = 1
FLAG_DROPPED = 2  # the server was late: this frame carries its audio but no image


@dataclass
class WireFrame:
    """One frame as it travels: JPEG bytes (empty if dropped) and int16 PCM bytes."""

    index: int
    utterance: int  # 0 while idle
    flags: int
    audio: bytes  # int16 little-endian mono at the session's audio_rate
    jpeg: bytes

    @property
    def speaking(self) -> bool:
        return bool(self.flags & FLAG_SPEAKING)

    @property
    def dropped(self) -> bool:
        return bool(self.flags & FLAG_DROPPED)


def pack_frame(frame: WireFrame) -> bytes:
    header = FRAME_HEADER.pack(FRAME_MAGIC, frame.index, frame.utterance, frame.flags,
                               len(frame.audio), len(frame.jpeg))
    return header + frame.audio + frame.jpeg


def unpack_frame(data: bytes) -> WireFrame:
    if len(data) < FRAME_HEADER.size:
        raise ValueError(f"frame message of {len(data)} bytes is shorter than its header")
    magic, index, utterance, flags, n_audio, n_jpeg = FRAME_HEADER.unpack_from(data)
    if magic != FRAME_MAGIC or len(data) != FRAME_HEADER.size + n_audio + n_jpeg:
        raise ValueError("not an avatar frame message")
    start = FRAME_HEADER.size
    return WireFrame(index, utterance, flags, data[start:start + n_audio], data[start + n_audio:])


# -- client -> server: typed JSON messages -------------------------------------------------
class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored
    # echoed in the reply (accepted / controls / error), so a client can match replies
    # to requests when several are in flight
    id: int | str | None = None


class TextMessage(_Message):
    """Speak this text with the bundled voice (sentence by sentence as it is synthesised)."""

    type: Literal["text"]
    text: str


class AudioStart(_Message):
    """Binary messages that follow are 16-bit PCM mono at ``sample_rate``."""

    type: Literal["audio_start"]
    sample_rate: int = Field(ge=8000, le=96000)


class AudioEnd(_Message):
    """The audio segment is complete (LiveKit: ``flush``)."""

    type: Literal["audio_end"]


class Interrupt(_Message):
    """Barge-in: drop all queued speech from the next frame (LiveKit: ``clear_buffer``)."""

    type: Literal["interrupt"]


class ControlsMessage(_Message):
    """Change the session's controls; fields left out keep their value."""

    type: Literal["controls"]
    emotion: str | None = None
    valence: float | None = Field(None, ge=-1, le=1)
    arousal: float | None = Field(None, ge=-1, le=1)
    head_motion: float | None = Field(None, ge=0, le=3)
    gaze: tuple[float, float] | None = None  # degrees (x, y)
    head_distance: float | None = Field(None, ge=0.5, le=2)


ClientMessage = Annotated[Union[TextMessage, AudioStart, AudioEnd, Interrupt, ControlsMessage],
                          Field(discriminator="type")]
_CLIENT_MESSAGE = TypeAdapter(ClientMessage)
MESSAGE_TYPES = ("text", "audio_start", "audio_end", "interrupt", "controls")


def message_id(text: str) -> int | str | None:
    """The ``id`` of a client message, if it has a readable one (for an error reply)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, (int, str)) else None


def parse_client_message(text: str):
    """A client JSON message as its typed model; AvatarError says what is wrong with it."""
    try:
        return _CLIENT_MESSAGE.validate_json(text)
    except ValidationError as error:
        try:
            json.loads(text)
        except ValueError:
            raise AvatarError("the message is not valid JSON", "message",
                              'send e.g. {"type": "text", "text": "Hello"}') from None
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "message"
        raise AvatarError(first.get("msg", "invalid message"), where,
                          f"message types: {', '.join(MESSAGE_TYPES)}") from None


def status(message_type: str, /, **fields) -> str:
    """A server -> client JSON message."""
    return json.dumps({"type": message_type, **fields})
