"""Video out and in.

:class:`VideoWriter` streams RGB frames and the soundtrack into a browser-playable
H.264 + AAC mp4, atomically. :func:`probe`, :func:`iter_frames` and
:func:`read_audio_track` read any video back (tests, benchmarks, video enrollment).
"""

from avatar.video.reader import VideoInfo, iter_frames, probe, read_audio_track
from avatar.video.writer import VideoWriter

__all__ = ["VideoWriter", "VideoInfo", "probe", "iter_frames", "read_audio_track"]
