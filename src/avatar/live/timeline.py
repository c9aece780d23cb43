"""One continuous motion timeline for a live session: idle motion with speech played into it.

The face never freezes and never jumps. Three kinds of source feed the timeline:
- idle motion (blinks, small head motion, gaze shifts), generated ahead in blocks on
  silence with the session's generator, indexed by the global frame number;
- whole speech chunks (a synthesised sentence with its motion), which replace the idle
  motion while they play;
- mouth-only frames (streamed audio without text), laid over the idle motion.
Whenever the source changes (idle -> speech, one sentence -> the next, a new idle block,
barge-in) the offset between the last shown frame and the new source's first frame fades
out over ``ramp`` frames, so the motion stays continuous and the new source keeps its own
velocity.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from avatar.motion.types import ACTION_INDEX, MotionFrame, MotionSeq

# Frame fields eased on a change of source (upper_body is not streamed live).
_FIELDS = ("rotation", "translation", "scale", "actions", "gaze")


@dataclass
class Chunk:
    """Frames of one utterance, with the audio that plays under them."""

    utterance: int
    motion: MotionSeq  # (T frames)
    audio: np.ndarray  # (T * samples_per_frame,) float32
    overlay: tuple[str, ...] = ()  # if set: only these actions, laid over the idle motion
    last: bool = False  # the utterance ends with this chunk


@dataclass
class Emitted:
    """One frame of the timeline."""

    index: int  # global frame number
    motion: MotionFrame
    audio: np.ndarray  # (samples_per_frame,) float32
    utterance: int | None  # the utterance this frame speaks, None while idle
    events: list[tuple[str, int]] = field(default_factory=list)  # ("started" | "finished", utterance)


def _frame_copy(frame: MotionFrame) -> MotionFrame:
    return MotionFrame(*(np.array(getattr(frame, f), np.float32) for f in _FIELDS[:2]),
                       float(frame.scale), np.array(frame.actions, np.float32),
                       np.array(frame.gaze, np.float32))


class Easing:
    """The offset (last shown - new source) faded out with a smoothstep over ``frames``."""

    def __init__(self, frames: int):
        self.frames = max(1, int(frames))
        self._offset: dict[str, np.ndarray] | None = None
        self._k = 0

    def switch(self, shown: MotionFrame | None, first: MotionFrame) -> None:
        if shown is None:
            self._offset = None
            return
        self._offset = {f: np.asarray(getattr(shown, f), np.float32) - np.asarray(getattr(first, f), np.float32)
                        for f in _FIELDS}
        self._k = 0

    def apply(self, frame: MotionFrame) -> MotionFrame:
        out = _frame_copy(frame)
        if self._offset is None or self._k >= self.frames:
            return out
        t = self._k / self.frames
        w = 1.0 - t * t * (3.0 - 2.0 * t)  # 1 -> 0
        for f in _FIELDS:
            setattr(out, f, getattr(out, f) + w * self._offset[f])
        out.scale = float(out.scale)
        self._k += 1
        return out


class Timeline:
    """Pull one frame at a time; push chunks from any thread (guarded by the caller)."""

    def __init__(self, idle_block: Callable[[int, int], MotionSeq], block_frames: int,
                 samples_per_frame: int, ramp_frames: int):
        self._idle_block = idle_block  # (first_frame, num_frames) -> MotionSeq
        self._block_frames = int(block_frames)
        self._spf = int(samples_per_frame)
        self._easing = Easing(ramp_frames)
        self._queue: deque[Chunk] = deque()
        self._idle: MotionSeq | None = None
        self._idle_start = 0
        self._playing: Chunk | None = None
        self._pos = 0  # next frame of the playing chunk
        self._source: object = None  # identity of the current source, for easing
        self._shown: MotionFrame | None = None
        self._speaking: int | None = None  # utterance currently being played
        self._held: tuple[MotionFrame, tuple[str, ...]] | None = None  # last streamed mouth, for underruns
        self.index = 0

    # -- feeding ------------------------------------------------------------------------
    def push(self, chunk: Chunk) -> None:
        self._queue.append(chunk)

    def queued_frames(self) -> int:
        rest = len(self._playing.motion) - self._pos if self._playing is not None else 0
        return rest + sum(len(c.motion) for c in self._queue)

    def clear(self) -> int | None:
        """Drop everything queued or playing (barge-in); returns the interrupted utterance."""
        interrupted = self._speaking
        if interrupted is None and self._queue:
            interrupted = self._queue[0].utterance
        self._queue.clear()
        self._playing, self._pos, self._speaking, self._held = None, 0, None, None
        return interrupted

    def restart_idle(self) -> None:
        """New idle motion from the next frame on (the controls changed)."""
        self._idle = None

    # -- pulling ------------------------------------------------------------------------
    def next(self) -> Emitted:
        events: list[tuple[str, int]] = []
        while True:  # finish played chunks, start queued ones (empty chunks just pass)
            if self._playing is not None and self._pos >= len(self._playing.motion):
                if self._playing.last:
                    events.append(("finished", self._playing.utterance))
                    self._speaking = None
                self._playing = None
            if self._playing is not None or not self._queue:
                break
            self._playing, self._pos = self._queue.popleft(), 0
            if self._speaking != self._playing.utterance:
                self._speaking = self._playing.utterance
                events.append(("started", self._speaking))
        idle = self._idle_frame(self.index)
        chunk = self._playing
        if chunk is None:
            frame, source, audio = idle, ("idle", self._idle_start), np.zeros(self._spf, np.float32)
            if self._speaking is not None and self._held is not None:
                # An underrun inside an utterance (its next audio or sentence is late): the
                # utterance goes on, silent, with the mouth held, rather than flicking to
                # idle and back with spurious finished/started events.
                frame = _overlay(idle, *self._held)
        else:
            frame = chunk.motion[self._pos]
            self._held = (frame, chunk.overlay) if chunk.overlay else None
            if chunk.overlay:
                frame = _overlay(idle, frame, chunk.overlay)
                source = ("idle", self._idle_start)
            else:
                source = id(chunk)
            audio = chunk.audio[self._pos * self._spf:(self._pos + 1) * self._spf]
            self._pos += 1
        if source != self._source:
            self._easing.switch(self._shown, frame)
            self._source = source
        shown = self._easing.apply(frame)
        self._shown = shown
        utterance = self._speaking if chunk is None else chunk.utterance
        out = Emitted(self.index, shown, audio, utterance, events)
        self.index += 1
        return out

    def _idle_frame(self, index: int) -> MotionFrame:
        if self._idle is None or index - self._idle_start >= len(self._idle):
            self._idle_start = index
            self._idle = self._idle_block(index, self._block_frames)
        return self._idle[index - self._idle_start]


def _overlay(idle: MotionFrame, frame: MotionFrame, names: tuple[str, ...]) -> MotionFrame:
    out = _frame_copy(idle)
    cols = [ACTION_INDEX[n] for n in names]
    out.actions[cols] = np.asarray(frame.actions)[cols]
    return out
