"""Tiny synthetic prepared clips for the learned generators' tests (no video, no ../shared)."""

from dataclasses import dataclass

import numpy as np

from avatar.audio.types import Audio, AudioFeatures, Speech
from avatar.generators.base import Controls
from avatar.generators.motion_vector import motion_to_array
from avatar.generators.registry import get_generator
from avatar.motion.types import MotionSeq

FPS = 25.0


@dataclass
class FakeClip:
    """What training reads of a prepared clip (avatar.data.Clip has these members)."""

    motion: MotionSeq
    features: AudioFeatures
    val: tuple[int, int]
    fps: float = FPS

    def val_mask(self):
        m = np.zeros(len(self.motion), bool)
        m[self.val[0]:self.val[1]] = True
        return m

    def train_mask(self):
        return ~self.val_mask()


def synthetic_clip(seed: int, T: int = 300, n_mels: int = 8, val: int = 60) -> FakeClip:
    """Speech-like loudness bursts; the jaw follows loudness, the head sways with pitch, a
    slow smile; the last ``val`` frames are the held-out range."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / FPS
    energy = np.clip(np.sin(2 * np.pi * 2.3 * t + seed) + rng.normal(0, 0.2, T), 0, 1)
    pitch = np.where(energy > 0.2, 120 + 40 * np.sin(2 * np.pi * 0.4 * t), 0.0)
    mel = np.repeat(energy[:, None], n_mels, 1) + rng.normal(0, 0.05, (T, n_mels))
    features = AudioFeatures(fps=FPS, energy=energy, pitch=pitch, onset=np.abs(np.diff(energy, prepend=0)),
                             vad=(energy > 0.2).astype(float), mel=mel)
    motion = MotionSeq.neutral(T, FPS)
    motion.set_action("jawOpen", 0.6 * energy)
    motion.set_action("mouthSmileL", 0.3 + 0.2 * np.sin(t))
    motion.rotation[:, 0] = 0.05 * np.sin(2 * np.pi * 0.4 * t)
    return FakeClip(motion, features, (T - val, T))


def generate(name: str, checkpoint, features: AudioFeatures, seed: int = 0, steps: int | None = None, **controls):
    """The motion of generator ``name`` from ``checkpoint`` for ``features`` (silent speech:
    learned generators read only the features)."""
    gen = get_generator(name, checkpoint=checkpoint, steps=steps)
    speech = Speech(Audio(np.zeros(16000, np.float32), 16000))
    return gen.generate(speech, features, Controls(**controls), seed=seed)


def check_seeded_any_length(name: str, checkpoint, T: int = 83) -> None:
    """Two-step samples: the same seed gives the same motion, another seed another, of any length."""
    features = synthetic_clip(7, T=T).features  # not a multiple of any window
    a, b, c = (generate(name, checkpoint, features, seed=s, steps=2) for s in (1, 1, 2))
    assert len(a) == T and a.fps == FPS
    np.testing.assert_array_equal(motion_to_array(a), motion_to_array(b))
    assert np.abs(motion_to_array(a) - motion_to_array(c)).max() > 1e-4


def speech_like(seconds: float, rate: int) -> np.ndarray:
    """Syllable-rate amplitude-modulated harmonics with pauses: voice-like energy."""
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 700), 1))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) * (np.sin(2 * np.pi * 0.4 * t) > -0.3)
    return (0.3 * voice * envelope).astype(np.float32)
