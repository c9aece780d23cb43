"""The speech-input stage: an audio file or a text in, timed phones and frame features out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avatar.audio.align import default_aligner
from avatar.audio.features import extract_features
from avatar.audio.io import load_audio, resample
from avatar.audio.listen import listen
from avatar.audio.phonemes import SILENCE, merge_silences, text_words
from avatar.audio.tts import synthesize
from avatar.audio.types import Audio, AudioFeatures, Phone, Speech
from avatar.audio.vad import SPEECH_THRESHOLD, voice_activity
from avatar.config import AUDIO, VIDEO
from avatar.errors import AvatarError

_LOG = logging.getLogger(__name__)

DIGITAL_SILENCE = 1e-4  # peak amplitude below this (-80 dBFS) means nothing was recorded


def load_speech(
    audio_path=None,
    text=None,
    transcript=None,
    fps=VIDEO.fps,
    tts_engine: str = "auto",
) -> tuple[Speech, AudioFeatures]:
    """Speech (audio + phone timings) and per-frame features from exactly one of the inputs.

    * ``text``: spoken by the offline TTS (``tts_engine``); phones are exact.
    * ``audio_path`` + ``transcript``: phones by forced alignment of the transcript.
    * ``audio_path`` alone: words by offline speech recognition, then forced alignment;
      phone recognition where no English words are understood (SIL wherever nobody speaks).

    Phones are sorted, non-overlapping and cover [0, duration]. ``Speech.audio`` keeps
    the quality needed for the output video (VIDEO.audio_sample_rate for files).
    """
    _check_arguments(audio_path, text, transcript, fps)
    if text is not None:
        speech = synthesize(text, engine=tts_engine)
        audio16 = resample(speech.audio, AUDIO.sample_rate)
        vad = voice_activity(audio16, fps)
    else:
        speech, audio16, vad = _speech_from_file(Path(audio_path), transcript, fps)
    speech.phones = cover_timeline(speech.phones, speech.audio.duration)
    features = extract_features(audio16, fps, num_frames=len(vad), vad=vad)
    return speech, features


def _check_arguments(audio_path, text, transcript, fps) -> None:
    """Raise AvatarError unless exactly one input is given and the options make sense."""
    if (audio_path is None) == (text is None):
        raise AvatarError(
            "give either an audio file or a text to speak (exactly one)",
            "--audio/--text",
            hint='use --audio speech.wav or --text "Hello"',
        )
    if text is not None and transcript is not None:
        raise AvatarError(
            "a transcript only applies to an audio file", "--transcript", hint="drop --transcript with --text"
        )
    if not fps or fps <= 0:
        raise AvatarError(f"invalid frame rate {fps!r}", "--fps", hint="use a positive fps, e.g. 25")


def _speech_from_file(path: Path, transcript: str | None, fps: float) -> tuple[Speech, Audio, np.ndarray]:
    """Decode ``path``, time its phones; returns (speech, 16 kHz audio, vad (T,))."""
    audio = load_audio(path, VIDEO.audio_sample_rate)
    peak = max(float(audio.samples.max()), -float(audio.samples.min()))  # no (N,) |x| temporary
    if peak < DIGITAL_SILENCE:
        raise AvatarError(
            "the audio contains no speech (it is digitally silent)",
            where=str(path),
            hint="check the recording: a silent video is almost certainly a mistake",
        )
    audio16 = resample(audio, AUDIO.sample_rate)
    vad = voice_activity(audio16, fps)  # (T,)
    if not np.any(vad > SPEECH_THRESHOLD):
        _LOG.warning("%s: no voice activity found; the mouth will stay closed", path)
        speech = Speech(audio=audio, phones=[Phone(SILENCE, 0.0, audio.duration)], phones_source="none")
        return speech, audio16, vad
    if transcript is not None and text_words(transcript):
        speech = _aligned_speech(audio, audio16, transcript, path)
    else:
        if transcript is not None:
            _LOG.warning("the transcript has no words; recognising phones instead")
        speech = _recognised_speech(audio, audio16)
    return speech, audio16, vad


def _aligned_speech(audio: Audio, audio16: Audio, transcript: str, path: Path) -> Speech:
    """Forced alignment; falls back to phone recognition if the transcript does not fit."""
    try:
        phones, words = default_aligner().align(audio16, transcript)
    except AvatarError as error:
        _LOG.warning("%s: %s; recognising phones instead", path, error.what)
        return _recognised_speech(audio, audio16)
    return Speech(
        audio=audio, phones=phones, words=words, transcript=transcript, phones_source="forced-alignment"
    )


def _recognised_speech(audio: Audio, audio16: Audio) -> Speech:
    """Without a transcript: recognised words, forced-aligned; phone recognition elsewhere."""
    heard = listen(audio16)
    return Speech(audio=audio, phones=heard.phones, words=heard.words, transcript=heard.transcript,
                  phones_source=heard.source)


def cover_timeline(phones: Sequence[Phone], duration: float) -> list[Phone]:
    """Sorted, non-overlapping phones covering exactly [0, duration]; gaps become SIL."""
    tidy: list[Phone] = []
    cursor = 0.0
    for phone in sorted(phones, key=lambda p: (p.start, p.end)):
        start, end = max(phone.start, cursor), min(phone.end, duration)
        if end <= start:
            continue
        if start > cursor:
            tidy.append(Phone(SILENCE, cursor, start))
        tidy.append(Phone(phone.label, start, end))
        cursor = end
    if cursor < duration:
        tidy.append(Phone(SILENCE, cursor, duration))
    return merge_silences(tidy)
