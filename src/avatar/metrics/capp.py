"""CAPP: a contrastive audio-pose model, and the score it gives a motion for its audio.

VASA-1 (Xu et al. 2024, section 4.2) measures how well head motion fits speech with CAPP,
a CLIP-like pair of encoders (Radford et al. 2021) trained so that a window of audio and
the window of pose that went with it embed close together; the score of a motion is the
mean cosine similarity of audio and motion windows, and it drops to about 0 when the
motion is shifted against the audio by two frames or more. This is that model in our
motion space, small enough to train in minutes on a CPU from one dataset:

- audio window: W frames of AudioFeatures (log-mel, loudness, log pitch, onsets, VAD);
- motion window: W frames of head angles (centred on the window: only the movement
  counts) and a few mouth actions (CAPPConfig.actions), each with its frame-to-frame
  change. VASA-1's CAPP sees head pose only; the mouth channels make the model usable
  as a lip-sync judge too (METHODS.md's "contrastive audio-mouth model");
- encoders: two 1-D convolutions over time, then a linear map of the flattened window
  (so the embedding knows *when* in the window something happens), L2-normalised;
- loss: symmetric InfoNCE (van den Oord et al. 2018) with a fixed temperature, where the
  candidates of each anchor are the other windows of the batch plus the same clip's
  windows shifted by >= MIN_SHIFT frames (hard negatives), and a penalty on the squared
  cosine of those shifted pairs, so that "shifted" means "unrelated" (score near 0),
  not just "less related".

Train on training frames only (``Series.mask``); :func:`shift_scores` shows the
shift property on any motion, e.g. held-out ground truth.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import Tensor, nn

from avatar.audio.types import AudioFeatures
from avatar.diffusion.checkpoint import load_model, register_model, save_model
from avatar.errors import AvatarError
from avatar.motion.types import MotionSeq
from avatar.native import torch_threads

KIND = "capp"
POSE_CHANNELS = 3  # yaw, pitch, roll: the first motion channels, centred per window
MOUTH_ACTIONS = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker")
AUDIO_SCALARS = 4  # loudness, log pitch, onset, VAD after the mel bands
PITCH_REF_HZ = 100.0  # log pitch = log(1 + f0 / PITCH_REF_HZ); 0 where unvoiced
MIN_SHIFT = 2  # frames: shifted by this much or more, a pair counts as misaligned
MIN_STD = 1e-3  # floor of the per-channel normalisation
# The machines this runs on have 2 cores shared with other jobs; with a second thread the
# small convolutions here ran 4-20x SLOWER under load (measured), so one thread it is.
DEFAULT_THREADS = 1


@dataclass
class CAPPConfig:
    """Shape of a CAPP model; stored in its checkpoint."""

    audio_dim: int  # channels of one audio frame (n_mels + AUDIO_SCALARS)
    window: int = 16  # W frames per window (0.64 s at 25 fps)
    width: int = 64  # channels of the convolutions
    embed_dim: int = 32  # E: size of the shared embedding
    temperature: float = 0.1  # InfoNCE temperature
    actions: tuple[str, ...] = MOUTH_ACTIONS  # facial actions in the motion window
    max_shift: int = 8  # hard negatives are shifted by MIN_SHIFT..max_shift frames
    # Weight of the squared cosine of shifted pairs. On held-out real clips (2.5 min of
    # training video) 2.0 left pairs shifted by 2 frames at 1/3 of the aligned score; 10
    # with heavier dropout brings them to ~0.1 of it, the mean over 2..8 frames to ~0.
    shift_penalty: float = 10.0
    dropout: float = 0.3  # on the inputs and the flattened features, while training

    def __post_init__(self) -> None:
        self.actions = tuple(self.actions)
        if self.window < 2 or self.max_shift < MIN_SHIFT:
            raise ValueError(f"need window >= 2 and max_shift >= {MIN_SHIFT}")

    @property
    def motion_dim(self) -> int:
        """Channels of one motion frame: angles, the chosen actions, and their changes."""
        return 2 * (POSE_CHANNELS + len(self.actions))


# -- per-frame inputs ---------------------------------------------------------------------
def audio_frames(features: AudioFeatures) -> np.ndarray:
    """(T, n_mels + 4) float32: log-mel, loudness, log pitch, onset strength, VAD."""
    log_pitch = np.log1p(np.maximum(np.asarray(features.pitch, np.float64), 0.0) / PITCH_REF_HZ)
    scalars = np.stack([features.energy, log_pitch, features.onset, features.vad], axis=1)  # (T, 4)
    return np.concatenate([np.asarray(features.mel, np.float64), scalars], axis=1).astype(np.float32)


def _change(x: np.ndarray) -> np.ndarray:
    """(T, C) frame-to-frame change, 0 at the first frame."""
    return np.diff(x, axis=0, prepend=x[:1])


def motion_frames(motion: MotionSeq, actions: Sequence[str] = MOUTH_ACTIONS) -> np.ndarray:
    """(T, 6 + 2 len(actions)) float32: head angles (degrees) and their change per frame,
    then the actions and their change (the changes carry the timing: onsets, closures)."""
    angles = np.degrees(np.asarray(motion.rotation, np.float64))  # (T, 3)
    acts = np.zeros((len(motion), 0))  # (T, n)
    if actions:
        acts = np.stack([motion.action(a) for a in actions], axis=1).astype(np.float64)
    return np.concatenate([angles, _change(angles), acts, _change(acts)], axis=1).astype(np.float32)


@dataclass
class Series:
    """Aligned per-frame inputs of one clip, and which frames may be used."""

    audio: np.ndarray  # (T, Ca) from audio_frames
    motion: np.ndarray  # (T, Cm) from motion_frames
    mask: np.ndarray  # (T,) bool: usable frames (training frames when training)

    @classmethod
    def of(cls, motion: MotionSeq, features: AudioFeatures, mask: np.ndarray | None = None,
           actions: Sequence[str] = MOUTH_ACTIONS) -> "Series":
        T = min(len(motion), features.num_frames)
        mask = np.ones(T, bool) if mask is None else np.asarray(mask, bool)[:T]
        return cls(audio_frames(features)[:T], motion_frames(motion, actions)[:T], mask)


# -- the model ------------------------------------------------------------------------------
class WindowEncoder(nn.Module):
    """(B, W, C) window -> (B, E) unit-length embedding."""

    def __init__(self, in_dim: int, window: int, width: int, embed_dim: int, dropout: float):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.convs = nn.Sequential(
            nn.Conv1d(in_dim, width, kernel_size=3, padding=1), nn.GELU(),
            nn.Conv1d(width, width, kernel_size=3, padding=1), nn.GELU())
        self.head = nn.Linear(width * window, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.dropout((x - self.mean) / self.std).transpose(1, 2)  # (B, C, W)
        h = self.dropout(self.convs(h).flatten(1))  # (B, width * W)
        return Fn.normalize(self.head(h), dim=-1)  # (B, E)


@register_model(KIND)
class CAPP(nn.Module):
    """Contrastive audio-pose model: two window encoders into one embedding space."""

    def __init__(self, config: CAPPConfig):
        super().__init__()
        self.config = config
        c = config
        self.audio_encoder = WindowEncoder(c.audio_dim, c.window, c.width, c.embed_dim, c.dropout)
        self.motion_encoder = WindowEncoder(c.motion_dim, c.window, c.width, c.embed_dim, c.dropout)

    def to_config(self) -> dict:
        return {**asdict(self.config), "actions": list(self.config.actions)}

    @classmethod
    def from_config(cls, config: dict) -> "CAPP":
        return cls(CAPPConfig(**config))

    def embed_audio(self, audio: Tensor) -> Tensor:
        """(B, W, Ca) -> (B, E)."""
        return self.audio_encoder(audio)

    def embed_motion(self, motion: Tensor) -> Tensor:
        """(B, W, Cm) -> (B, E); head angles are centred on the window first."""
        pose = motion[..., :POSE_CHANNELS]
        centred = torch.cat([pose - pose.mean(dim=1, keepdim=True), motion[..., POSE_CHANNELS:]], dim=-1)
        return self.motion_encoder(centred)

    def set_normalisation(self, series: Sequence[Series]) -> None:
        """Per-channel mean/std of the inputs over the usable frames (stored with the weights)."""
        audio = np.concatenate([s.audio[s.mask] for s in series])  # (N, Ca)
        motion = np.concatenate([_centre_pose(s.motion[s.mask]) for s in series])  # (N, Cm)
        for encoder, x in ((self.audio_encoder, audio), (self.motion_encoder, motion)):
            encoder.mean.copy_(torch.from_numpy(x.mean(0)).float())
            encoder.std.copy_(torch.from_numpy(np.maximum(x.std(0), MIN_STD)).float())


def _centre_pose(motion: np.ndarray) -> np.ndarray:
    """(N, Cm) with the head angles centred (as the encoder sees them in a window)."""
    out = motion.copy()
    out[:, :POSE_CHANNELS] -= out[:, :POSE_CHANNELS].mean(0)
    return out


# -- windows --------------------------------------------------------------------------------
def window_starts(mask: np.ndarray, window: int, margin: int = 0) -> np.ndarray:
    """Starts t whose frames [t - margin, t + window + margin) are all usable."""
    mask = np.asarray(mask, bool)
    span = window + 2 * margin
    if len(mask) < span:
        return np.zeros(0, np.int64)
    run = np.convolve(mask.astype(np.int64), np.ones(span, np.int64), mode="valid")  # (T - span + 1,)
    return np.flatnonzero(run == span) + margin


def _windows(x: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """(N, W, C) windows of ``x`` (T, C) starting at ``starts`` (N,)."""
    return x[starts[:, None] + np.arange(window)[None]]


@dataclass
class _Batch:
    audio: Tensor  # (B, W, Ca)
    motion: Tensor  # (B, W, Cm)
    shifted_audio: Tensor  # (B, K, W, Ca) audio windows shifted against the motion
    shifted_motion: Tensor  # (B, K, W, Cm) motion windows shifted against the audio


class WindowSampler:
    """Random aligned windows with shifted copies, from the usable frames of some series."""

    def __init__(self, series: Sequence[Series], config: CAPPConfig, negatives: int, seed: int):
        self.series, self.config, self.negatives = list(series), config, negatives
        self.starts = [window_starts(s.mask, config.window, config.max_shift) for s in self.series]
        counts = np.array([len(s) for s in self.starts], np.float64)
        if counts.sum() == 0:
            raise AvatarError(f"no stretch of {config.window + 2 * config.max_shift} usable frames "
                              "to train the CAPP model on", None, "use longer clips")
        self.weights = counts / counts.sum()
        self.rng = np.random.default_rng(seed)

    def _shifts(self, n: int) -> np.ndarray:
        """(n, K) signed shifts with MIN_SHIFT <= |shift| <= max_shift, drawn with probability
        proportional to 1 / shift^2: the near shifts are the hard ones to tell apart."""
        sizes = np.arange(MIN_SHIFT, self.config.max_shift + 1)
        weights = 1.0 / sizes**2
        size = self.rng.choice(sizes, size=(n, self.negatives), p=weights / weights.sum())
        return size * self.rng.choice([-1, 1], size=(n, self.negatives))

    def sample(self, batch: int) -> _Batch:
        W, K = self.config.window, self.negatives
        which = self.rng.choice(len(self.series), size=batch, p=self.weights)
        parts = {"audio": [], "motion": [], "shifted_audio": [], "shifted_motion": []}
        for i in np.unique(which):
            s, n = self.series[i], int((which == i).sum())
            starts = self.rng.choice(self.starts[i], size=n)  # (n,)
            shifted = (starts[:, None] + self._shifts(n)).reshape(-1)  # (n * K,)
            parts["audio"].append(_windows(s.audio, starts, W))
            parts["motion"].append(_windows(s.motion, starts, W))
            parts["shifted_audio"].append(_windows(s.audio, shifted, W).reshape(n, K, W, -1))
            parts["shifted_motion"].append(_windows(s.motion, shifted, W).reshape(n, K, W, -1))
        return _Batch(**{k: torch.from_numpy(np.concatenate(v)) for k, v in parts.items()})


# -- training -------------------------------------------------------------------------------
def _info_nce(anchor: Tensor, positive: Tensor, shifted: Tensor, temperature: float) -> Tensor:
    """Cross-entropy of each anchor (B, E) picking its positive among the batch's positives
    (B, E) and its own shifted windows (B, K, E)."""
    logits = torch.cat([anchor @ positive.T, torch.einsum("be,bke->bk", anchor, shifted)], dim=1)  # (B, B + K)
    labels = torch.arange(len(anchor))
    return Fn.cross_entropy(logits / temperature, labels)


def contrastive_loss(model: CAPP, batch: _Batch) -> Tensor:
    """Symmetric InfoNCE with shifted hard negatives + penalty on shifted-pair cosines."""
    B, K = batch.shifted_motion.shape[:2]
    a = model.embed_audio(batch.audio)  # (B, E)
    m = model.embed_motion(batch.motion)  # (B, E)
    a_shift = model.embed_audio(batch.shifted_audio.flatten(0, 1)).view(B, K, -1)  # (B, K, E)
    m_shift = model.embed_motion(batch.shifted_motion.flatten(0, 1)).view(B, K, -1)  # (B, K, E)
    tau = model.config.temperature
    nce = 0.5 * (_info_nce(a, m, m_shift, tau) + _info_nce(m, a, a_shift, tau))
    shifted_cos = torch.cat([torch.einsum("be,bke->bk", a, m_shift), torch.einsum("be,bke->bk", m, a_shift)])
    return nce + model.config.shift_penalty * shifted_cos.pow(2).mean()


@dataclass
class TrainOptions:
    steps: int = 1500
    batch: int = 64
    negatives: int = 4  # K shifted windows per anchor
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = DEFAULT_THREADS
    log_every: int = 250


def train_capp(series: Sequence[Series], config: CAPPConfig, options: TrainOptions = TrainOptions(),
               log: Callable[[str], None] | None = None) -> CAPP:
    """A CAPP model trained on random windows of the usable frames of ``series``."""
    torch.manual_seed(options.seed)
    model = CAPP(config)
    model.set_normalisation(series)
    sampler = WindowSampler(series, config, options.negatives, options.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=options.steps)
    with torch_threads(options.threads):
        model.train()
        for step in range(1, options.steps + 1):
            loss = contrastive_loss(model, sampler.sample(options.batch))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if log and (step % options.log_every == 0 or step == options.steps):
                log(f"CAPP step {step}/{options.steps}: loss {loss.item():.3f}")
    return model.eval()


# -- checkpoints ----------------------------------------------------------------------------
def save_capp(path: str | os.PathLike, model: CAPP, extra: dict | None = None) -> None:
    """Write the model (weights, normalisation and config) to one safetensors file."""
    save_model(path, model, extra)


def load_capp(path: str | os.PathLike) -> CAPP:
    """A CAPP model from its checkpoint alone; AvatarError if the file holds another model."""
    return load_model(path, expect=CAPP)


# -- scoring --------------------------------------------------------------------------------
def _embed(encode: Callable[[Tensor], Tensor], frames: np.ndarray, starts: np.ndarray,
           window: int) -> np.ndarray:
    """(N, E) embeddings of the windows of ``frames`` (T, C) at ``starts`` (N,)."""
    if len(starts) == 0:
        return np.zeros((0, 0), np.float32)
    with torch.no_grad(), torch_threads(DEFAULT_THREADS):
        return encode(torch.from_numpy(_windows(frames, starts, window))).numpy()


def motion_embeddings(model: CAPP, motion: MotionSeq, stride: int = 1) -> np.ndarray:
    """(N, E) embeddings of every ``stride``-th motion window (for Frechet distances)."""
    W = model.config.window
    starts = np.arange(0, len(motion) - W + 1, stride)
    return _embed(model.embed_motion, motion_frames(motion, model.config.actions), starts, W)


def shift_scores(model: CAPP, motion: MotionSeq, features: AudioFeatures,
                 shifts: Sequence[int] = range(-8, 9), stride: int = 1) -> dict[int, float]:
    """CAPP score of the motion delayed by each of ``shifts`` frames against its audio.

    For shift s the audio window starting at frame t is paired with the motion window
    starting at t + s, over every ``stride``-th t where both fit. A well-trained model
    gives a clearly positive score at 0 and about 0 for |s| >= MIN_SHIFT (VASA-1 4.2).
    """
    W = model.config.window
    T = min(len(motion), features.num_frames)
    starts = np.arange(max(T - W + 1, 0))  # every window, embedded once
    a = _embed(model.embed_audio, audio_frames(features)[:T], starts, W)  # (N, E)
    m = _embed(model.embed_motion, motion_frames(motion, model.config.actions)[:T], starts, W)  # (N, E)
    scores = {}
    for s in shifts:
        t = np.arange(max(0, -s), len(starts) - max(0, s), stride)  # audio window starts
        scores[int(s)] = float((a[t] * m[t + s]).sum(-1).mean()) if len(t) else float("nan")
    return scores


def capp_score(model: CAPP, motion: MotionSeq, features: AudioFeatures, stride: int = 1) -> float:
    """Mean cosine similarity of aligned audio and motion windows (VASA-1's CAPP score)."""
    return shift_scores(model, motion, features, shifts=(0,), stride=stride)[0]


def misaligned_score(scores: dict[int, float]) -> float:
    """Mean score over the shifts of at least MIN_SHIFT frames (should be near 0)."""
    values = [v for s, v in scores.items() if abs(s) >= MIN_SHIFT and math.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


__all__ = ["CAPP", "CAPPConfig", "Series", "TrainOptions", "audio_frames", "motion_frames",
           "train_capp", "save_capp", "load_capp", "capp_score", "shift_scores",
           "misaligned_score", "motion_embeddings", "window_starts", "MIN_SHIFT", "MOUTH_ACTIONS"]
