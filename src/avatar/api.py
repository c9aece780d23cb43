"""The Python API: the same jobs as the command line.

    import avatar
    avatar.speak("me.jpg", "out.mp4", text="Hello there.", emotion="happy", seed=1)
"""

from __future__ import annotations

from avatar.audio.speech import load_speech
from avatar.config import VIDEO
from avatar.generators.base import Controls
from avatar.pipeline import SpeakResult, load_portrait
from avatar.pipeline import speak as _speak

__all__ = ["speak", "load_speech", "load_portrait", "make_controls"]


def make_controls(emotion: str | None = None, valence: float | None = None,
                  arousal: float | None = None, head_motion: float = 1.0,
                  gaze: tuple[float, float] = (0.0, 0.0), head_distance: float = 1.0) -> Controls:
    """Controls from a named emotion and/or explicit valence/arousal (explicit wins)."""
    base = Controls.from_emotion(emotion) if emotion else Controls()
    return Controls(valence=base.valence if valence is None else float(valence),
                    arousal=base.arousal if arousal is None else float(arousal),
                    head_motion=float(head_motion), gaze=tuple(map(float, gaze)),
                    head_distance=float(head_distance))


def speak(image, output, *, audio=None, text: str | None = None, transcript: str | None = None,
          seed: int = 0, emotion: str | None = None, valence: float | None = None,
          arousal: float | None = None, head_motion: float = 1.0,
          gaze: tuple[float, float] = (0.0, 0.0), head_distance: float = 1.0,
          motion: str = "rules", checkpoint=None, fps: float = VIDEO.fps,
          max_size: int | None = None, export_motion=None, progress: bool = False,
          log=None) -> SpeakResult:
    """Write an mp4 of the person in ``image`` saying ``audio`` (a file) or ``text``.

    ``image`` is a path or an (H, W, 3) RGB uint8 array. Exactly one of ``audio`` and
    ``text`` is required; ``transcript`` (the words of ``audio``) gives exact phone
    timings by forced alignment. The same ``seed`` gives the same video.
    Raises :class:`avatar.AvatarError` for any problem with the inputs.
    """
    controls = make_controls(emotion, valence, arousal, head_motion, gaze, head_distance)
    return _speak(image, output, audio=audio, text=text, transcript=transcript,
                  controls=controls, seed=seed, method=motion,
                  generator_options={"checkpoint": checkpoint} if checkpoint else {},
                  fps=fps, max_size=max_size,
                  export_motion=export_motion, progress=progress, log=log or (lambda _: None))
