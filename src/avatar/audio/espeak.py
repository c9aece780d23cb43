"""Fallback TTS: espeak-ng's own synthesiser through its C API (ctypes).

piper's ``espeakbridge`` extension statically links the whole espeak-ng library and ships
its data, so the engine works without a system espeak-ng; a system ``libespeak-ng`` is
used when piper's copy is missing. Phoneme events (IPA, with their audio position) give
exact phone timings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.errors import AvatarError

ESPEAK_VOICE = "en-us"
_INT16_SCALE = 32768.0

# espeak-ng API constants (speak_lib.h / espeak_ng.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_BUFFER_MS = 0  # default internal buffer
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_PHONEME = 7
_EVENT_STRING_BYTES = 8
_MS_PER_S = 1000.0


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * _EVENT_STRING_BYTES),
    ]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of the text
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


_IGNORE_ALL = _SYNTH_CALLBACK(lambda wav, num_samples, events: 0)
_FLUSH_TEXT = ","  # shortest input that runs the synthesiser


@dataclass
class EspeakResult:
    """Synthesised samples with IPA phoneme events and word spans (seconds)."""

    samples: np.ndarray  # (N,) float32
    sample_rate: int
    phonemes: list[tuple[str, float]]  # (IPA phoneme, start time)
    words: list[tuple[int, int, float]]  # (text offset, text length, start time)


class EspeakSynth:
    """A loaded espeak-ng library ready to speak (use :func:`espeak_synth`, it is cached)."""

    def __init__(self, library: ctypes.CDLL, data_parent: str | None):
        self._lib = library
        self._lock = threading.Lock()
        self._declare_signatures()
        path = data_parent.encode() if data_parent else None
        self.sample_rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, path, 0)
        if self.sample_rate <= 0:
            raise AvatarError("espeak-ng could not be initialised", hint="reinstall piper-tts")

    def _declare_signatures(self) -> None:
        """C signatures of the espeak-ng functions used (ctypes defaults to int)."""
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_ng_SetPhonemeEvents.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synchronize.argtypes = []

    def _synth(self, text: str) -> None:
        """Run espeak_Synth on UTF-8 ``text`` and wait until it is done."""
        encoded = text.encode("utf-8") + b"\0"
        self._lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()

    def _flush_events(self) -> None:
        """Discard events left queued by phonemisation (piper's ``espeak_TextToPhonemes``).

        espeak-ng keeps a bounded event list; a backlog would push out the first events of
        the next synthesis, so speak a pause into a callback that ignores everything.
        """
        self._lib.espeak_SetSynthCallback(_IGNORE_ALL)
        self._synth(_FLUSH_TEXT)

    def speak(self, text: str) -> EspeakResult:
        """Synthesise ``text`` (UTF-8) and collect samples and events."""
        pieces: list[np.ndarray] = []
        phonemes: list[tuple[str, float]] = []
        words: list[tuple[int, int, float]] = []

        def on_audio(wav, num_samples, events) -> int:
            """espeak-ng's synth callback: keep the samples and events of one block."""
            if num_samples > 0:
                pieces.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
            _collect_events(events, phonemes, words)
            return 0  # keep synthesising

        callback = _SYNTH_CALLBACK(on_audio)  # must stay referenced while espeak runs
        with self._lock:
            self._lib.espeak_SetVoiceByName(ESPEAK_VOICE.encode())
            self._flush_events()
            self._lib.espeak_SetSynthCallback(callback)
            self._lib.espeak_ng_SetPhonemeEvents(1, 1)  # enable, as IPA
            self._synth(text)
            self._lib.espeak_ng_SetPhonemeEvents(0, 0)
        samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
        return EspeakResult(
            samples=(samples.astype(np.float32) / _INT16_SCALE),
            sample_rate=self.sample_rate,
            phonemes=phonemes,
            words=words,
        )


def _collect_events(events, phonemes: list, words: list) -> None:
    """Append the phoneme and word events of one callback's event list."""
    index = 0
    while events[index].type != _EVENT_LIST_TERMINATED:
        event = events[index]
        start = event.audio_position / _MS_PER_S
        if event.type == _EVENT_PHONEME:
            phonemes.append((event.id.string.decode("utf-8", errors="replace"), start))
        elif event.type == _EVENT_WORD:
            # text_position is 1-based in characters
            words.append((event.text_position - 1, event.length, start))
        elif event.type == _EVENT_END:
            phonemes.append(("_", start))  # end of a clause: a pause follows
        index += 1


def _bundled_library() -> tuple[Path, Path] | None:
    """piper's espeakbridge extension and the folder holding its espeak-ng-data."""
    spec = importlib.util.find_spec("piper")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted(folder.glob("espeakbridge*.so")) + sorted(folder.glob("espeakbridge*.pyd"))
    if not candidates or not (folder / "espeak-ng-data").is_dir():
        return None
    return candidates[0], folder


@functools.lru_cache(maxsize=1)
def espeak_synth() -> EspeakSynth:
    """The process-wide espeak-ng synthesiser (piper's bundled copy, else the system one)."""
    bundled = _bundled_library()
    if bundled is not None:
        library_path, data_parent = bundled
        return EspeakSynth(ctypes.CDLL(str(library_path)), str(data_parent))
    system = ctypes.util.find_library("espeak-ng")
    if system is None:
        raise AvatarError(
            "espeak-ng is not available",
            hint="install piper-tts (it bundles espeak-ng) or the espeak-ng package",
        )
    return EspeakSynth(ctypes.CDLL(system), None)
