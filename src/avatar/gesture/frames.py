"""The enrolled video's frames, stored for random access (the avatar bundle's ``frames.mp4``).

Retrieval plays runs of real frames from anywhere in the source video, so the bundle keeps
its own copy: H.264 at the source resolution with a keyframe every few frames (a jump
decodes at most ``KEYFRAME_INTERVAL - 1`` extra frames), and no dependence on the user's
original file staying where it was.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avatar.config import GESTURE
from avatar.errors import AvatarError
from avatar.video.reader import RGB_FORMAT
from avatar.video.writer import VideoWriter

KEYFRAME_INTERVAL = 4 * GESTURE.node_frames  # a jump seeks to a node start: <= 15 frames wasted
STORE_CRF = 18  # visually lossless: these frames ARE the output video
RECENT_FRAMES = 4  # decoded frames kept for repeated requests


def frame_store_writer(path: str | os.PathLike, width: int, height: int, fps: float,
                       crf: int = STORE_CRF) -> VideoWriter:
    """A VideoWriter (use as a context manager) for a frame copy with random access."""
    return VideoWriter(path, width, height, fps=fps, crf=crf, keyframe_interval=KEYFRAME_INTERVAL)


class FrameStore:
    """Random access to the frames of a stored video: ``store[i] -> (H, W, 3) uint8 RGB``.

    Consecutive requests decode sequentially; a request behind the decoder or far ahead
    of it seeks to the keyframe before it. Not thread-safe; one per reader.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise AvatarError("the avatar's frames are missing", str(self.path), "enroll the video again")
        self._container = av.open(str(self.path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # frame threads: decoding overlaps the caller's work
        self._time_base = self._stream.time_base
        self._rate = Fraction(self._stream.average_rate)
        self.num_frames = self._stream.frames
        self._decoder = None
        self._next = 0  # index of the frame the decoder yields next
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()  # last frames handed out

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.num_frames

    def _index(self, frame: av.VideoFrame) -> int:
        return int(round(frame.pts * self._time_base * self._rate))

    def _seek(self, index: int) -> None:
        pts = int(index / self._rate / self._time_base)
        self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._container.decode(self._stream)
        self._next = -1

    def __getitem__(self, index: int) -> np.ndarray:
        """Frame ``index``; the caller must not modify it (recent frames are shared)."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} outside 0..{self.num_frames - 1}")
        if index in self._recent:  # e.g. the frame before a jump, again for its transition
            return self._recent[index]
        if self._decoder is None or index < self._next or index >= self._next + KEYFRAME_INTERVAL:
            self._seek(index)
        for frame in self._decoder:
            self._next = self._index(frame) + 1
            if self._next - 1 >= index:
                return self._remember(index, frame.to_ndarray(format=RGB_FORMAT))
        raise AvatarError(f"frame {index} cannot be decoded", str(self.path), "enroll the video again")

    def _remember(self, index: int, image: np.ndarray) -> np.ndarray:
        image.flags.writeable = False
        self._recent[index] = image
        while len(self._recent) > RECENT_FRAMES:
            self._recent.popitem(last=False)
        return image
