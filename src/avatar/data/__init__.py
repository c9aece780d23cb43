"""Datasets of real talking-face video for learning motion (``avatar prepare``).

- :mod:`avatar.data.clip`: the :class:`Clip` and its file format (docs/dataset-format.md);
- :mod:`avatar.data.prepare`: videos -> clips, resumable, with a report of skipped videos;
- :mod:`avatar.data.body`: the clips' upper-body track and its motion (:func:`upper_body_deltas`).
"""

from avatar.data.body import upper_body_deltas
from avatar.data.clip import Clip, ReferenceFace, load_clip, save_clip
from avatar.data.prepare import prepare_videos

__all__ = ["Clip", "ReferenceFace", "load_clip", "save_clip", "prepare_videos", "upper_body_deltas"]
