"""AuMoCLIP: the hierarchical audio-motion joint embedding of TANGO (§3.2, Fig. 5, Table 3).

Two towers (audio, motion) map per-frame inputs into one embedding space at two levels:

- low level (frame-wise): a stack of residual 1-D temporal convolutions (receptive field
  +-8 frames) -> projection MLP -> one unit vector per frame, trained with the *local*
  frame-wise contrastive loss: for audio frame i, motion frames within i +- t are positives,
  frames in (i - k t, i - t) and (i + t, i + k t) are negatives (and motion -> audio);
- high level (clip-wise): two strided convolutions and a 1-layer transformer with a CLS
  token over a window of GESTURE.window_seconds on top of the low-level features ->
  projection -> one unit vector per window, trained with InfoNCE over the batch (*global*
  loss). The high level reads the low-level features ``.detach()``-ed: the STOP-GRADIENT
  of TANGO §3.2, which kept low-level retrieval at its best (Table 3: 65.68 % vs 47.94 %
  without) while the high level still profits from low-level features (19.54 %).

Scaled down for a CPU and minutes of one person's video. The paper's audio tower starts
from Wav2Vec2 and time-aligned BERT word features (App. A.2); neither can be downloaded
here, so the audio input is our own per-frame features (log-mel, loudness, pitch, onsets,
VAD) plus time-aligned *phone* features from avatar.audio (the recogniser's or the TTS's
ARPAbet phones, one-hot, with phone/word start flags) as the offline stand-in for text.
The motion input is TANGO's 15-D per-joint representation (App. A.3: position, velocity,
6-D rotation, angular velocity), flattened to (T, J * 15) and normalised with statistics
kept in the model, so a checkpoint is self-contained.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import Tensor, nn

from avatar.audio.types import AudioFeatures, Speech
from avatar.config import GESTURE
from avatar.diffusion.checkpoint import load_model, register_model, save_model
from avatar.errors import AvatarError

KIND = "aumoclip"
JOINT_CHANNELS = 15  # TANGO App. A.3: position 3 + velocity 3 + 6-D rotation + angular velocity 3
# The 39 CMU ARPAbet phones; SILENCE first. Labels outside the set get no phone class.
SILENCE = "SIL"
ARPABET = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
           "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
           "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH")
PHONE_CLASSES = (SILENCE,) + ARPABET
PHONE_INDEX = {label: i for i, label in enumerate(PHONE_CLASSES)}
AUDIO_SCALARS = 4  # loudness, log pitch, onset, VAD after the mel bands
TEXT_FLAGS = 2  # a phone starts in this frame, a word starts in this frame
PITCH_REF_HZ = 100.0  # log pitch = log(1 + f0 / PITCH_REF_HZ); 0 where unvoiced
MIN_STD = 1e-3  # floor of the per-channel normalisation (channels that never move)
# Low-level convolutions: kernel 3, these dilations -> receptive field +-sum = +-8 frames,
# about the paper's 8-frame low-level unit (TANGO §3.2 "current 8 frames").
LOW_KERNEL = 3
LOW_DILATIONS = (1, 1, 2, 2, 2)
HIGH_STRIDE = 2  # each of the two high-level convolutions halves the time axis ...
HIGH_DOWNSAMPLE = HIGH_STRIDE * HIGH_STRIDE  # ... so the transformer sees T / 4 tokens
MAX_LOGIT_SCALE = 100.0  # CLIP's clamp of the learned global temperature (1 / 100 at least)
INIT_STD = 0.02  # CLS token and positional embeddings start small
# Logit of excluded candidates: exp() of it is 0 without the slow denormal path of finfo.min.
MASKED_LOGIT = -1e4


# -- per-frame inputs ---------------------------------------------------------------------
def _frame_of(seconds: float, fps: float) -> int:
    return int(math.floor(seconds * fps))


def phone_features(speech: Speech, fps: float, num_frames: int) -> np.ndarray:
    """(T, len(PHONE_CLASSES) + 2) float32: the phone at each frame centre (one-hot), and
    flags for frames where a (non-silent) phone or a word starts."""
    out = np.zeros((num_frames, len(PHONE_CLASSES) + TEXT_FLAGS), np.float32)
    centres = (np.arange(num_frames) + 0.5) / fps  # (T,) seconds
    out[:, PHONE_INDEX[SILENCE]] = 1.0
    phone_start, word_start = len(PHONE_CLASSES), len(PHONE_CLASSES) + 1
    for phone in speech.phones:
        inside = (centres >= phone.start) & (centres < phone.end)  # (T,)
        out[inside, : len(PHONE_CLASSES)] = 0.0
        if phone.label in PHONE_INDEX:
            out[inside, PHONE_INDEX[phone.label]] = 1.0
        first = _frame_of(phone.start, fps)
        if phone.label != SILENCE and 0 <= first < num_frames:
            out[first, phone_start] = 1.0
    for word in speech.words:
        first = _frame_of(word.start, fps)
        if 0 <= first < num_frames:
            out[first, word_start] = 1.0
    return out


def audio_inputs(features: AudioFeatures, speech: Speech) -> np.ndarray:
    """(T, n_mels + 4 + 42) float32 per-frame audio input: log-mel, loudness, log pitch,
    onset, VAD, then the time-aligned phone features (the offline stand-in for TANGO's
    time-aligned BERT features, App. A.2; Wav2Vec2/BERT weights are not available)."""
    T = features.num_frames
    log_pitch = np.log1p(np.maximum(np.asarray(features.pitch, np.float64), 0.0) / PITCH_REF_HZ)
    scalars = np.stack([features.energy, log_pitch, features.onset, features.vad], axis=1)  # (T, 4)
    text = phone_features(speech, features.fps, T)  # (T, 42)
    return np.concatenate([np.asarray(features.mel, np.float64), scalars, text], axis=1).astype(np.float32)


def flat_motion(motion: np.ndarray) -> np.ndarray:
    """(T, J, 15) joint features (or already (T, J * 15)) -> (T, J * 15) float32."""
    motion = np.asarray(motion, np.float32)
    if motion.ndim == 3:
        if motion.shape[2] != JOINT_CHANNELS:
            raise AvatarError(f"motion has {motion.shape[2]} channels per joint, not {JOINT_CHANNELS}",
                              "motion", "pass avatar.body.joints.joint_features output (T, J, 15)")
        return motion.reshape(len(motion), -1)
    if motion.ndim != 2:
        raise AvatarError(f"motion must be (T, J, 15) or (T, C), got shape {motion.shape}", "motion")
    return motion


# -- configuration ------------------------------------------------------------------------
@dataclass
class AuMoCLIPConfig:
    """Shape of an AuMoCLIP model; stored in its checkpoint. Frame counts are at ``fps``."""

    audio_dim: int  # Fa: channels of one audio frame (audio_inputs)
    motion_dim: int  # J * 15
    fps: float
    window: int  # frames of one high-level clip (GESTURE.window_seconds)
    local_positive: int  # t: motion frames within i +- t are positives (§3.2) ...
    local_negative_factor: int  # k: ... frames in (i - k t, i - t) and (i + t, i + k t) negatives
    width: int = 64  # channels of the convolutions and the transformer
    embed_dim: int = 64  # D: size of the shared embedding
    heads: int = 4
    local_temperature: float = 0.1  # fixed temperature of the frame-wise loss
    global_temperature: float = 0.07  # initial value of the learned CLS-level temperature (CLIP)
    global_weight: float = 1.0  # weight of the global loss against the local one
    stop_gradient: bool = True  # TANGO §3.2: global loss does not train the low-level encoders
    dropout: float = 0.1

    @classmethod
    def for_fps(cls, fps: float, audio_dim: int, motion_dim: int, **kwargs) -> "AuMoCLIPConfig":
        """GESTURE's frame counts (given at reference_fps) scaled to ``fps``."""
        scale = fps / GESTURE.reference_fps
        return cls(audio_dim=audio_dim, motion_dim=motion_dim, fps=float(fps),
                   window=max(HIGH_DOWNSAMPLE, round(GESTURE.window_seconds * fps)),
                   local_positive=max(1, round(GESTURE.local_positive * scale)),
                   local_negative_factor=GESTURE.local_negative_factor, **kwargs)

    @property
    def tokens(self) -> int:
        """Transformer tokens of one full window, without the CLS token."""
        return math.ceil(self.window / HIGH_DOWNSAMPLE)


@dataclass
class Embeddings:
    """Both levels of one batch of clips."""

    low: Tensor  # (B, T, D) unit vectors per frame
    high: Tensor  # (B, D) unit vector per clip (the CLS token)


# -- the model ------------------------------------------------------------------------------
class ResidualConv(nn.Module):
    """x + conv(GELU(x)) along time; (B, C, T) -> (B, C, T)."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, LOW_KERNEL, padding=dilation, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(Fn.gelu(x))


class HighEncoder(nn.Module):
    """Low-level features (B, T, C) -> CLS embedding (B, D): strided convs + 1-layer
    transformer with a CLS token + projection (TANGO §3.2, Fig. 5)."""

    def __init__(self, c: AuMoCLIPConfig):
        super().__init__()
        w = c.width
        self.down = nn.Sequential(nn.Conv1d(w, w, 3, stride=HIGH_STRIDE, padding=1), nn.GELU(),
                                  nn.Conv1d(w, w, 3, stride=HIGH_STRIDE, padding=1), nn.GELU())
        self.cls = nn.Parameter(torch.randn(1, 1, w) * INIT_STD)
        self.position = nn.Parameter(torch.randn(1, c.tokens + 1, w) * INIT_STD)
        self.block = nn.TransformerEncoderLayer(w, c.heads, 2 * w, c.dropout, activation="gelu",
                                                batch_first=True, norm_first=True)
        self.head = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, c.embed_dim))

    def forward(self, feats: Tensor, valid: Tensor) -> Tensor:
        h = self.down(feats.transpose(1, 2)).transpose(1, 2)  # (B, N, C), N = ceil(T / 4)
        if h.shape[1] > self.position.shape[1] - 1:
            raise ValueError(f"clip of {feats.shape[1]} frames is longer than the model's window")
        token_valid = Fn.max_pool1d(valid[:, None].float(), HIGH_DOWNSAMPLE, ceil_mode=True)[:, 0] > 0  # (B, N)
        h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1) + self.position[:, : h.shape[1] + 1]
        keep = torch.cat([torch.ones_like(token_valid[:, :1]), token_valid], dim=1)  # (B, N + 1)
        h = self.block(h, src_key_padding_mask=~keep)  # (B, N + 1, C)
        return Fn.normalize(self.head(h[:, 0]), dim=-1)  # (B, D)


class Tower(nn.Module):
    """One modality: normalisation, low-level conv encoder + MLP, high-level encoder."""

    def __init__(self, in_dim: int, c: AuMoCLIPConfig):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.stop_gradient = c.stop_gradient
        self.input = nn.Conv1d(in_dim, c.width, 1)
        self.low = nn.Sequential(*[ResidualConv(c.width, d) for d in LOW_DILATIONS])
        self.low_head = nn.Sequential(nn.Linear(c.width, c.width), nn.GELU(), nn.Linear(c.width, c.embed_dim))
        self.high = HighEncoder(c)
        self.in_dropout = nn.Dropout(c.dropout)

    def low_features(self, x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, C_in) -> (features (B, T, width), unit embeddings (B, T, D))."""
        h = self.in_dropout((x - self.mean) / self.std) * valid[..., None]  # padding reads as the mean
        feats = self.low(self.input(h.transpose(1, 2))).transpose(1, 2)  # (B, T, width)
        return feats, Fn.normalize(self.low_head(feats), dim=-1)

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Embeddings:
        if valid is None:
            valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        feats, low = self.low_features(x, valid)
        source = feats.detach() if self.stop_gradient else feats  # TANGO §3.2 stop-gradient
        return Embeddings(low, self.high(source * valid[..., None], valid))

    def set_normalisation(self, x: np.ndarray) -> None:
        """Per-channel mean/std of (N, C_in) training frames, stored with the weights."""
        self.mean.copy_(torch.from_numpy(x.mean(0)).float())
        self.std.copy_(torch.from_numpy(np.maximum(x.std(0), MIN_STD)).float())


@register_model(KIND)
class AuMoCLIP(nn.Module):
    """Dual-tower audio/motion encoder with low (frame) and high (clip) embeddings."""

    def __init__(self, config: AuMoCLIPConfig):
        super().__init__()
        self.config = config
        self.audio = Tower(config.audio_dim, config)
        self.motion = Tower(config.motion_dim, config)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.global_temperature)))

    def to_config(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_config(cls, config: dict) -> "AuMoCLIP":
        return cls(AuMoCLIPConfig(**config))

    def embed_audio(self, audio: Tensor, valid: Tensor | None = None) -> Embeddings:
        """(B, T, Fa) clips of T <= window frames -> low (B, T, D), high (B, D)."""
        return self.audio(audio, valid)

    def embed_motion(self, motion: Tensor, valid: Tensor | None = None) -> Embeddings:
        """(B, T, J * 15) (or (B, T, J, 15)) clips of T <= window frames -> low, high."""
        return self.motion(motion.flatten(2), valid)

    def set_normalisation(self, audio: np.ndarray, motion: np.ndarray) -> None:
        """Input statistics from training frames: audio (N, Fa), motion (N, J * 15)."""
        self.audio.set_normalisation(audio)
        self.motion.set_normalisation(motion)

    def low_level_parameters(self) -> list[nn.Parameter]:
        """Parameters of the low-level encoders (input, convs, projection MLP) of both towers."""
        return [p for tower in (self.audio, self.motion)
                for part in (tower.input, tower.low, tower.low_head) for p in part.parameters()]

    def high_level_parameters(self) -> list[nn.Parameter]:
        """Parameters of the high-level encoders and the learned global temperature."""
        return [*self.audio.high.parameters(), *self.motion.high.parameters(), self.logit_scale]


# -- losses (TANGO §3.2) --------------------------------------------------------------------
def local_kinds(offsets: Tensor, positive: int, negative_factor: int) -> tuple[Tensor, Tensor]:
    """Positive / negative bool masks of frame offsets j - i (any shape): positives
    |j - i| <= t, negatives t < |j - i| < k t, i.e. (i - k t, i - t) and (i + t, i + k t) (Fig. 5)."""
    d = offsets.abs()
    return d <= positive, (d > positive) & (d < negative_factor * positive)


def local_masks(T: int, positive: int, negative_factor: int) -> tuple[Tensor, Tensor]:
    """(T, T) bool masks of frame pairs (i, j) of one clip, see :func:`local_kinds`."""
    return local_kinds(torch.arange(T)[:, None] - torch.arange(T)[None], positive, negative_factor)


def _band(full: Tensor, reach: int) -> Tensor:
    """(B, T, T) -> (B, T, 2 reach + 1): full[:, i, i + o] for o in [-reach, reach], 0 outside."""
    T = full.shape[-1]
    padded = Fn.pad(full, (reach, reach))  # (B, T, T + 2 reach)
    index = (torch.arange(T)[:, None] + torch.arange(2 * reach + 1)[None]).expand(len(full), T, -1)
    return padded.gather(-1, index)  # (B, T, 2 reach + 1)


def _banded_nce(anchor: Tensor, other: Tensor, valid: Tensor, positive: int, negative_factor: int,
                temperature: float) -> Tensor:
    """Mean over anchors (B, T, D) of -log(sum_pos exp(s) / sum_(pos + neg) exp(s)) with the
    candidates ``other`` (B, T, D) near each anchor; anchors without a negative are skipped."""
    reach = negative_factor * positive - 1  # farthest negative offset
    offsets = torch.arange(-reach, reach + 1)  # (n,)
    pos, neg = local_kinds(offsets, positive, negative_factor)  # (n,) each
    sim = _band(anchor @ other.transpose(1, 2), reach) / temperature  # (B, T, n)
    both = (valid[:, :, None] & valid[:, None, :]).float()  # (B, T, T) anchor and candidate real
    there = _band(both, reach) > 0  # (B, T, n)
    anchors = (there & neg).any(-1) & (there & pos).any(-1)  # (B, T)
    if not anchors.any():
        return sim.sum() * 0.0
    log_pos = torch.logsumexp(sim.masked_fill(~(there & pos), MASKED_LOGIT), dim=-1)  # (B, T)
    log_all = torch.logsumexp(sim.masked_fill(~(there & (pos | neg)), MASKED_LOGIT), dim=-1)  # (B, T)
    return (log_all - log_pos)[anchors].mean()


def local_contrastive_loss(audio_low: Tensor, motion_low: Tensor, positive: int, negative_factor: int,
                           temperature: float, valid: Tensor | None = None) -> Tensor:
    """Symmetric frame-wise contrastive loss of unit embeddings (B, T, D) (TANGO §3.2):
    audio frame i against motion frames of the same clip, and motion frame i against audio."""
    if valid is None:
        valid = torch.ones(audio_low.shape[:2], dtype=torch.bool)
    args = (valid, positive, negative_factor, temperature)
    return 0.5 * (_banded_nce(audio_low, motion_low, *args) + _banded_nce(motion_low, audio_low, *args))


def global_contrastive_loss(audio_high: Tensor, motion_high: Tensor, logit_scale: Tensor,
                            exclude: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE over the CLS embeddings (B, D) of a batch (TANGO §3.2, CLIP).
    ``exclude`` (B, B) bool marks off-diagonal pairs that must not count as negatives
    (e.g. heavily overlapping windows of the same video)."""
    logits = logit_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp() * audio_high @ motion_high.T  # (B, B)
    if exclude is not None:
        off_diagonal = exclude & ~torch.eye(len(logits), dtype=torch.bool)
        logits = logits.masked_fill(off_diagonal, MASKED_LOGIT)
    labels = torch.arange(len(logits))
    return 0.5 * (Fn.cross_entropy(logits, labels) + Fn.cross_entropy(logits.T, labels))


@dataclass
class Losses:
    total: Tensor
    local: Tensor
    global_: Tensor


def aumoclip_loss(model: AuMoCLIP, audio: Tensor, motion: Tensor, valid: Tensor,
                  exclude: Tensor | None = None) -> Losses:
    """Local + weighted global loss of a batch of clips (B, T, Fa), (B, T, J * 15), valid (B, T)."""
    c = model.config
    a, m = model.embed_audio(audio, valid), model.embed_motion(motion, valid)
    local = local_contrastive_loss(a.low, m.low, c.local_positive, c.local_negative_factor,
                                   c.local_temperature, valid)
    glob = global_contrastive_loss(a.high, m.high, model.logit_scale, exclude)
    return Losses(local + c.global_weight * glob, local, glob)


# -- whole sequences (numpy) ----------------------------------------------------------------
@dataclass
class FrameEmbeddings:
    """Embeddings of a whole sequence: per frame, and per high-level window."""

    low: np.ndarray  # (T, D) frame embeddings
    high: np.ndarray  # (T, D) CLS embedding of the window whose centre is nearest each frame
    window_starts: np.ndarray  # (N,) first frame of each window
    window_high: np.ndarray  # (N, D) CLS embedding of each window


def window_starts(num_frames: int, window: int, hop: int) -> np.ndarray:
    """(N,) starts of windows every ``hop`` frames, the last one ending at the last frame;
    [0] when the sequence is shorter than a window (it is then padded)."""
    if num_frames <= window:
        return np.zeros(1, np.int64)
    starts = np.arange(0, num_frames - window + 1, max(1, hop))
    if starts[-1] != num_frames - window:
        starts = np.append(starts, num_frames - window)
    return starts


def _padded_windows(x: np.ndarray, starts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows (N, W, C) of ``x`` (T, C) and their valid masks (N, W); zeros past the end."""
    W = window
    padded = np.concatenate([x, np.zeros((max(0, W - len(x)), x.shape[1]), x.dtype)])  # (max(T, W), C)
    index = starts[:, None] + np.arange(W)[None]  # (N, W)
    return padded[index], index < len(x)


def _sequence_embeddings(tower: Tower, x: np.ndarray, window: int, hop: int, batch: int) -> FrameEmbeddings:
    T = len(x)
    starts = window_starts(T, window, hop)
    with torch.no_grad():
        full = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]  # (1, T, C)
        _, low = tower.low_features(full, torch.ones(1, T, dtype=torch.bool))
        windows, valid = _padded_windows(np.asarray(x, np.float32), starts, window)
        highs = [tower(torch.from_numpy(windows[i:i + batch]), torch.from_numpy(valid[i:i + batch])).high
                 for i in range(0, len(starts), batch)]
    window_high = torch.cat(highs).numpy()  # (N, D)
    centres = starts + min(window, T) / 2.0  # (N,)
    nearest = np.abs((np.arange(T) + 0.5)[:, None] - centres[None]).argmin(1)  # (T,)
    return FrameEmbeddings(low[0].numpy(), window_high[nearest], starts, window_high)


def _check_frames(x: np.ndarray, dim: int, what: str) -> None:
    if x.ndim != 2 or x.shape[1] != dim or len(x) == 0:
        raise AvatarError(f"{what} input has shape {x.shape}, the model expects (T > 0, {dim})", what,
                          "compute it the way the model was trained (audio_inputs / joint_features)")


def audio_embeddings(model: AuMoCLIP, audio: np.ndarray, hop_seconds: float = 1.0,
                     batch: int = 64) -> FrameEmbeddings:
    """Low- and high-level embeddings of a whole audio sequence (T, Fa) of any length;
    high-level windows every ``hop_seconds``."""
    audio = np.asarray(audio, np.float32)
    _check_frames(audio, model.config.audio_dim, "audio")
    hop = max(1, round(hop_seconds * model.config.fps))
    return _sequence_embeddings(model.audio.eval(), audio, model.config.window, hop, batch)


def motion_embeddings(model: AuMoCLIP, motion: np.ndarray, hop_seconds: float = 1.0,
                      batch: int = 64) -> FrameEmbeddings:
    """Low- and high-level embeddings of a whole motion sequence (T, J, 15) of any length."""
    flat = flat_motion(motion)
    _check_frames(flat, model.config.motion_dim, "motion")
    hop = max(1, round(hop_seconds * model.config.fps))
    return _sequence_embeddings(model.motion.eval(), flat, model.config.window, hop, batch)


# -- checkpoints ----------------------------------------------------------------------------
def save_aumoclip(path: str | os.PathLike, model: AuMoCLIP, extra: dict | None = None) -> None:
    """Write the model (weights, input statistics, config) to one safetensors file."""
    save_model(path, model, extra)


def load_aumoclip(path: str | os.PathLike) -> AuMoCLIP:
    """An AuMoCLIP model from its checkpoint alone; AvatarError if the file holds another model."""
    return load_model(path, expect=AuMoCLIP)


__all__ = ["AuMoCLIP", "AuMoCLIPConfig", "Embeddings", "FrameEmbeddings", "Losses", "audio_inputs",
           "phone_features", "flat_motion", "local_kinds", "local_masks", "local_contrastive_loss",
           "global_contrastive_loss", "aumoclip_loss", "audio_embeddings", "motion_embeddings",
           "window_starts", "save_aumoclip", "load_aumoclip", "PHONE_CLASSES", "JOINT_CHANNELS"]
