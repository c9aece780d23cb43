"""Bad inputs, every subcommand: one clear line, exit code 2, no output or temp file left.

Every refused case must print exactly one line on stderr, ``avatar: error: <where>: <what>
- <what to do>``, exit with 2 (1 is for our own bugs), show no traceback and leave the
output folder empty. Cases that are legitimately accepted (a sine tone, two faces, a
grayscale photo, ...) must write a video that decodes, with the expected size, frame count
and audio length. All fixtures are made here, in temporary folders.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile

from avatar.audio.io import resample, save_wav
from avatar.audio.types import Audio
from avatar.cli import main
from avatar.image import bundled_portrait, load_image
from avatar.video.reader import iter_frames, probe, read_audio_track
from avatar.video.writer import VideoWriter

SPEAK_FAST = ["--max-size", "128", "--fps", "10", "-q"]  # small and few frames: each run < 1 s
FPS = 10
SPEECH_TEXT = "Hi there."


# -- fixtures: every input file, made once per module ------------------------------------
def _save_rgb(path: Path, rgb: np.ndarray, **options) -> Path:
    from PIL import Image

    Image.fromarray(rgb).save(path, **options)
    return path


def _two_faces(portrait: np.ndarray) -> np.ndarray:
    """(512, 1024, 3): a copy of the portrait at 3/4 size on the left, the portrait on the right.
    (A copy at 60% or less beside the portrait is not found by the face tracker.)"""
    left = np.full_like(portrait, 255)
    side = 384
    left[64:64 + side, 64:64 + side] = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_AREA)
    return np.concatenate([left, portrait], axis=1)


def _image_files(folder: Path, portrait: np.ndarray) -> dict[str, Path]:
    from PIL import Image

    gray = cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY)
    alpha = np.full(gray.shape, 255, np.uint8)
    alpha[:, :96] = 0  # a transparent strip: composited on white
    small = cv2.resize(portrait, (128, 128), interpolation=cv2.INTER_AREA)
    files = {
        "small": _save_rgb(folder / "small.png", small),
        "noface": _save_rgb(folder / "noface.png", np.full((320, 320, 3), 128, np.uint8)),
        "twofaces": _save_rgb(folder / "twofaces.png", _two_faces(portrait)),
        "tiny16": _save_rgb(folder / "tiny16.png", cv2.resize(portrait, (16, 16), interpolation=cv2.INTER_AREA)),
        "onepx": _save_rgb(folder / "onepx.png", portrait[:1, :1]),
        "huge": _save_rgb(folder / "huge.jpg", cv2.resize(portrait, (8000, 8000)), quality=80),
        "rgba": _save_rgb(folder / "rgba.png", np.dstack([portrait, alpha])),
        "rgba_on_white": _save_rgb(folder / "rgba_on_white.png", np.where(alpha[..., None] > 0, portrait, 255)),
        "gray": _save_rgb(folder / "gray.png", gray),
        "edge": _save_rgb(folder / "edge.png", np.ascontiguousarray(portrait[:, 200:])),
        "rotated": _save_rgb(folder / "rotated.png", np.ascontiguousarray(np.rot90(portrait))),
        "unicode": _save_rgb(folder / "pörträt 照片.png", portrait),
        "gif": folder / "animated.gif",
        "cmyk": folder / "cmyk.jpg",
        "png16": folder / "gray16.png",
        "rgb16": folder / "rgb16.png",
        "truncated": folder / "truncated.jpg",
        "textjpg": folder / "notes.jpg",
        "emptyjpg": folder / "empty.jpg",
        "folder": folder / "photos",
        "imagemp4": folder / "photo_named.mp4",
    }
    frames = [Image.fromarray(portrait), Image.fromarray(portrait[:, ::-1].copy()), Image.fromarray(gray)]
    frames[0].save(files["gif"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.fromarray(portrait).convert("CMYK").save(files["cmyk"], quality=90)
    Image.fromarray((gray.astype(np.uint16) * 257)).save(files["png16"])  # mode I;16
    cv2.imwrite(str(files["rgb16"]), cv2.cvtColor(portrait, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    full = (_save_rgb(folder / "full.jpg", portrait)).read_bytes()
    files["truncated"].write_bytes(full[: len(full) // 2])
    files["textjpg"].write_text("these are my notes, not a photo\n")
    files["emptyjpg"].write_bytes(b"")
    files["folder"].mkdir()
    _save_rgb(files["imagemp4"], portrait, format="PNG")  # a photo, whatever its name says
    return files


def _audio_files(folder: Path, speech: Audio) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    rate = 16000
    files = {name: folder / f"{name}.wav" for name in (
        "speech", "speech8k", "speech96k", "short", "silence", "noise", "sine", "nan", "inf",
        "emptywav", "randomwav", "truncatedwav")}
    save_wav(speech, files["speech"])
    save_wav(resample(speech, 8000), files["speech8k"])
    hi = resample(speech, 96000)
    soundfile.write(str(files["speech96k"]), hi.samples, 96000, subtype="PCM_24")
    middle = len(speech.samples) // 2
    save_wav(Audio(speech.samples[middle: middle + speech.sample_rate // 20], speech.sample_rate), files["short"])
    soundfile.write(str(files["silence"]), np.zeros(10 * 60 * rate, np.int16), rate, subtype="PCM_16")
    save_wav(Audio((0.3 * rng.standard_normal(2 * rate)).astype(np.float32), rate), files["noise"])
    t = np.arange(int(1.5 * rate)) / rate
    save_wav(Audio((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate), files["sine"])
    for name, bad in (("nan", np.nan), ("inf", np.inf)):
        samples = speech.samples.copy()
        samples[1000:1100] = bad
        soundfile.write(str(files[name]), samples, speech.sample_rate, subtype="FLOAT")
    files["emptywav"].write_bytes(b"")
    files["randomwav"].write_bytes(rng.bytes(20000))
    files["truncatedwav"].write_bytes(files["speech"].read_bytes()[:30])
    files["video"] = folder / "clip.mp4"
    files["mute"] = folder / "mute.mp4"
    frames = int(math.ceil(speech.duration * FPS))
    for name, audio in (("video", speech), ("mute", None)):
        with VideoWriter(files[name], 64, 64, fps=FPS, audio=audio) as writer:
            for k in range(frames):
                writer.write(np.full((64, 64, 3), 10 * k % 255, np.uint8))
    files["unicode_audio"] = folder / "spéech 音声.wav"
    save_wav(speech, files["unicode_audio"])
    return files


def _other_files(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    from safetensors.numpy import save_file

    files = {"text": folder / "notes.txt", "junk": folder / "junk.safetensors", "json": folder / "model.json",
             "foreign": folder / "foreign.safetensors", "dataset_empty": folder / "empty_dataset",
             "avatar_damaged": folder / "damaged_avatar"}
    files["text"].write_text("hello\n")
    files["junk"].write_bytes(rng.bytes(4096))
    files["json"].write_text(json.dumps({"kind": "vasa", "steps": 10}))
    save_file({"weight": np.zeros((4, 4), np.float32)}, str(files["foreign"]))  # not ours: no model spec
    files["dataset_empty"].mkdir()
    files["avatar_damaged"].mkdir()  # the bundle's metadata, but its arrays are garbage
    (files["avatar_damaged"] / "bundle.json").write_text(json.dumps({"format": "avatar-bundle", "version": 1}))
    for name in ("track.npz", "graph.npz", "embeddings.npz"):
        (files["avatar_damaged"] / name).write_bytes(rng.bytes(1000))
    return files


@pytest.fixture(scope="module")
def speech_audio() -> Audio:
    from avatar.audio.tts import synthesize

    return synthesize(SPEECH_TEXT).audio


@pytest.fixture(scope="module")
def files(tmp_path_factory, speech_audio) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    portrait = load_image(bundled_portrait())
    made = {**_image_files(folder, portrait), **_audio_files(folder, speech_audio), **_other_files(folder)}
    made["missing"] = folder / "nothing_here.mp4"
    made["missing_dir"] = folder / "no_such_folder"
    return made


@pytest.fixture()
def out_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    monkeypatch.setenv("AVATAR_HOME", str(folder / "home"))  # enroll / --avatar: nothing may be left there either
    return folder


def _fill(args: list[str], files: dict[str, Path], out_dir: Path) -> list[str]:
    """'{name}' -> the fixture file's path, '{out}' -> out_dir/out.mp4, '{out:x}' -> out_dir/x."""
    def path(match: re.Match) -> str:
        name, inner = match.group(1), match.group(2)
        if name == "out":
            return str(out_dir / (inner or "out.mp4"))
        return str(files[name])

    return [re.sub(r"\{(\w+)(?::([^}]*))?\}", path, arg) for arg in args]


def run_cli(capfd, args: list[str]) -> tuple[int, list[str]]:
    """(exit code, stderr lines) of ``avatar ARGS`` run in this process."""
    try:
        code = main(args)
    except SystemExit as stop:  # argparse refuses before main's own error handling
        code = stop.code
    return code, capfd.readouterr().err.strip().splitlines()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if not p.is_dir())


def assert_refused(code: int, err: list[str], expected: str, out_dir: Path) -> None:
    assert code == 2, err
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("avatar: error: ") and expected in line, line
    assert " - " in line, f"no hint on what to do: {line}"
    assert "Traceback" not in line
    assert leftovers(out_dir) == []


def assert_video(path: Path, width: int | None = None, height: int | None = None,
                 seconds: float | None = None, fps: float = FPS) -> np.ndarray:
    """The video at ``path`` decodes, with the given size and length; returns its first frame."""
    info = probe(path)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    if width is not None:
        assert (info.width, info.height) == (width, height)
    frames = list(iter_frames(path))
    assert len(frames) == info.num_frames > 0
    audio = read_audio_track(path)
    assert abs(audio.duration - len(frames) / fps) < 0.05
    if seconds is not None:
        assert len(frames) == math.ceil(seconds * fps - 1e-6)
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp file
    return frames[0]


# -- refused: one line, exit 2, nothing written -------------------------------------------
SPEAK_TEXT = ["--text", SPEECH_TEXT, "-o", "{out}", *SPEAK_FAST]
SPEAK_IMAGE = ["speak", "--image", "{small}", "-o", "{out}", *SPEAK_FAST]
HI = [*SPEAK_IMAGE, "--text", "Hi."]
REFUSED = {
    # images
    "image: no face": (["speak", "--image", "{noface}", *SPEAK_TEXT], "noface.png: no face found in the image"),
    "image: 16x16": (["speak", "--image", "{tiny16}", *SPEAK_TEXT], "tiny16.png: image is too small (16x16)"),
    "image: 1 px": (["speak", "--image", "{onepx}", *SPEAK_TEXT], "onepx.png: image is too small (1x1)"),
    "image: truncated JPEG": (["speak", "--image", "{truncated}", *SPEAK_TEXT],
                              "truncated.jpg: cannot read the image: it is damaged or truncated"),
    "image: text file named .jpg": (["speak", "--image", "{textjpg}", *SPEAK_TEXT],
                                    "notes.jpg: cannot read the image: not an image file"),
    "image: empty .jpg": (["speak", "--image", "{emptyjpg}", *SPEAK_TEXT], "empty.jpg: the file is empty"),
    "image: a folder": (["speak", "--image", "{folder}", *SPEAK_TEXT], "photos: is a folder, not a photo"),
    "image: missing": (["speak", "--image", "{missing}", *SPEAK_TEXT], "nothing_here.mp4: file not found"),
    # audio
    "audio: empty file": ([*SPEAK_IMAGE, "--audio", "{emptywav}"], "emptywav.wav: the file is empty"),
    "audio: random bytes": ([*SPEAK_IMAGE, "--audio", "{randomwav}"], "randomwav.wav: cannot decode the audio"),
    "audio: truncated WAV header": ([*SPEAK_IMAGE, "--audio", "{truncatedwav}"],
                                    "truncatedwav.wav: cannot decode the audio"),
    "audio: 10 min of silence": ([*SPEAK_IMAGE, "--audio", "{silence}"],
                                 "silence.wav: the audio contains no speech (it is digitally silent)"),
    "audio: NaN samples": ([*SPEAK_IMAGE, "--audio", "{nan}"], "nan.wav: the audio has invalid samples"),
    "audio: inf samples": ([*SPEAK_IMAGE, "--audio", "{inf}"], "inf.wav: the audio has invalid samples"),
    "audio: a video without sound": ([*SPEAK_IMAGE, "--audio", "{mute}"], "mute.mp4: the file has no audio stream"),
    "audio: a photo": ([*SPEAK_IMAGE, "--audio", "{gray}"], "gray.png: the file has no audio stream"),
    "audio: missing": ([*SPEAK_IMAGE, "--audio", "{missing}"], "nothing_here.mp4: audio file not found"),
    "audio: a folder": ([*SPEAK_IMAGE, "--audio", "{folder}"], "photos: is a folder, not an audio file"),
    # text
    "text: empty": ([*SPEAK_IMAGE, "--text", ""], "--text: text is empty"),
    "text: whitespace only": ([*SPEAK_IMAGE, "--text", " \n\t  "], "--text: text is empty"),
    "text: emoji only": ([*SPEAK_IMAGE, "--text", "\U0001f600\U0001f389\U0001f44d"],
                         "--text: the text has no words the voice can read"),
    "text: Chinese": ([*SPEAK_IMAGE, "--text", "你好，世界。今天天气很好。"],
                      "--text: the text has no words the voice can read"),
    # options
    "--fps 0": ([*HI, "--fps", "0"], "--fps: must be between 1 and 120, got 0"),
    "--fps -1": ([*HI, "--fps", "-1"], "--fps: must be between 1 and 120, got -1"),
    "--fps 1000": ([*HI, "--fps", "1000"], "--fps: must be between 1 and 120, got 1000"),
    "--fps abc": ([*HI, "--fps", "abc"], "--fps: expected a number, got 'abc'"),
    "--seed -1": ([*HI, "--seed", "-1"], "--seed: must be between 0 and 4294967295, got -1"),
    "--seed 1.5": ([*HI, "--seed", "1.5"], "--seed: expected a whole number, got '1.5'"),
    "--max-size 1": ([*HI, "--max-size", "1"], "--max-size: must be at least 64, got 1"),
    "--head-motion -5": ([*HI, "--head-motion", "-5"], "--head-motion: must be at least 0, got -5"),
    "--valence 5": ([*HI, "--valence", "5"], "--valence: must be between -1 and 1, got 5"),
    "--arousal nan": ([*HI, "--arousal", "nan"], "--arousal: expected a number, got 'nan'"),
    "--gaze garbage": ([*HI, "--gaze", "sideways"], "--gaze: expected X,Y in degrees"),
    "--gaze 1,2,3": ([*HI, "--gaze", "1,2,3"], "--gaze: expected X,Y in degrees"),
    "--gaze 500,0": ([*HI, "--gaze", "500,0"], "--gaze: X and Y must be within -45..45 degrees"),
    "--emotion unknown": ([*HI, "--emotion", "grumpy"], "--emotion: invalid choice: 'grumpy'"),
    "--motion unknown": ([*HI, "--motion", "nosuch"], "--motion: unknown motion generator 'nosuch'"),
    "--head-distance 0": ([*HI, "--head-distance", "0"], "--head-distance: must be greater than 0"),
    "no -o": (["speak", "--image", "{small}", "--text", "Hi."], "the following arguments are required: -o/--output"),
    "output in a missing folder": (["speak", "--image", "{small}", "--text", "Hi.", "-o", "{missing_dir}/o.mp4",
                                    *SPEAK_FAST], "no_such_folder: the output folder does not exist"),
    "output without .mp4": (["speak", "--image", "{small}", "--text", "Hi.", "-o", "{out:video.avi}", *SPEAK_FAST],
                            "video.avi: the output must be an .mp4 file"),
    "output is a folder": (["speak", "--image", "{small}", "--text", "Hi.", "-o", "{folder}", *SPEAK_FAST],
                           "photos: the output path is a folder"),
    "output = the image": (["speak", "--image", "{imagemp4}", "--text", "Hi.", "-o", "{imagemp4}", *SPEAK_FAST],
                           "photo_named.mp4: the output would overwrite the input given as --image"),
    "output = the audio": (["speak", "--image", "{small}", "--audio", "{video}", "-o", "{video}", *SPEAK_FAST],
                           "clip.mp4: the output would overwrite the input given as --audio"),
    "--export-motion .txt": ([*HI, "--export-motion", "{out:motion.txt}"], "motion.txt: unknown motion file type"),
    "--checkpoint random bytes": ([*HI, "--motion", "vasa", "--checkpoint", "{junk}"],
                                  "junk.safetensors: not a readable safetensors file"),
    "--checkpoint a JSON file": ([*HI, "--motion", "vasa", "--checkpoint", "{json}"],
                                 "model.json: not a readable safetensors file"),
    "--checkpoint of another program": ([*HI, "--motion", "vasa", "--checkpoint", "{foreign}"],
                                        "foreign.safetensors: not an avatar diffusion checkpoint"),
    "--checkpoint missing": ([*HI, "--motion", "vasa", "--checkpoint", "{missing}"],
                             "nothing_here.mp4: checkpoint not found"),
    "--motion vasa without --checkpoint": ([*HI, "--motion", "vasa"],
                                           "--checkpoint: the vasa generator needs a trained checkpoint"),
    # the other subcommands, given the wrong kind of file
    "dub: a text file as the video": (["dub", "{text}", "--text", "Hi.", "-o", "{out}", "-q"],
                                      "notes.txt: cannot open the file as a video"),
    "dub: a photo as the video": (["dub", "{gray}", "--text", "Hi.", "-o", "{out}", "-q"],
                                  "gray.png: is a photo (one frame), not a video"),
    "dub: a video without a face": (["dub", "{video}", "--text", "Hi.", "-o", "{out}", "-q"],
                                    "clip.mp4: no face was found"),
    "dub: missing video": (["dub", "{missing}", "--text", "Hi.", "-o", "{out}", "-q"],
                           "nothing_here.mp4: video not found"),
    "dub: output = the audio": (["dub", "{mute}", "--audio", "{video}", "-o", "{video}", "-q"],
                                "clip.mp4: the output would overwrite the input given as --audio"),
    "dub: random-bytes checkpoint": (["dub", "{video}", "--text", "Hi.", "-o", "{out}", "--motion", "vasa",
                                      "--checkpoint", "{junk}", "-q"], "junk.safetensors: not a readable safetensors"),
    "prepare: a text file as the video": (["prepare", "{text}", "-o", "{out:dataset}", "-q"],
                                          "notes.txt: not prepared: cannot open the file as a video"),
    "prepare: a photo as the video": (["prepare", "{gray}", "-o", "{out:dataset}", "-q"],
                                      "gray.png: not prepared: is a photo (one frame), not a video"),
    "prepare: missing video": (["prepare", "{missing}", "-o", "{out:dataset}", "-q"],
                               "nothing_here.mp4: video not found"),
    "train: missing dataset folder": (["train", "--data", "{missing_dir}", "-o", "{out:m.safetensors}", "-q"],
                                      "no_such_folder: dataset folder not found"),
    "train: empty dataset folder": (["train", "--data", "{dataset_empty}", "-o", "{out:m.safetensors}", "-q"],
                                    "empty_dataset: the dataset has no clips"),
    "train: a file as the dataset": (["train", "--data", "{text}", "-o", "{out:m.safetensors}", "-q"],
                                     "notes.txt: dataset folder not found"),
    "train: random-bytes --init": (["train", "--method", "vlogger", "--data", "{dataset_empty}", "--init", "{junk}",
                                    "-o", "{out:m.safetensors}", "-q"], "junk.safetensors: not a readable"),
    "train: JSON --init": (["train", "--method", "vlogger", "--data", "{dataset_empty}", "--init", "{json}",
                            "-o", "{out:m.safetensors}", "-q"], "model.json: not a readable"),
    "evaluate: missing dataset folder": (["evaluate", "--data", "{missing_dir}", "-o", "{out:eval}", "-q"],
                                         "no_such_folder: dataset folder not found"),
    "evaluate: empty dataset folder": (["evaluate", "--data", "{dataset_empty}", "-o", "{out:eval}", "-q"],
                                       "empty_dataset: the dataset has no clips"),
    "evaluate: random-bytes checkpoint": (["evaluate", "--data", "{dataset_empty}", "-o", "{out:eval}", "--methods",
                                           "vasa", "--checkpoint", "vasa={junk}", "-q"],
                                          "junk.safetensors: not a readable safetensors file"),
    "enroll: a text file as the video": (["enroll", "{text}", "--name", "me", "-q"],
                                         "notes.txt: cannot open the file as a video"),
    "enroll: a photo as the video": (["enroll", "{gray}", "--name", "me", "-q"],
                                     "gray.png: is a photo (one frame), not a video"),
    "enroll: a video without a person": (["enroll", "{video}", "--name", "me", "-q"],
                                         "clip.mp4: a person was found in only 0% of the frames"),
    "speak --avatar: not enrolled": (["speak", "--avatar", "nobody", "--text", "Hi.", "-o", "{out}", "-q"],
                                     "avatars/nobody: no enrolled avatar found"),
    "speak --avatar: a folder that is no avatar": (["speak", "--avatar", "{folder}", "--text", "Hi.",
                                                    "-o", "{out}", "-q"], "photos: no enrolled avatar found"),
    "speak --avatar: a damaged avatar": (["speak", "--avatar", "{avatar_damaged}", "--text", "Hi.",
                                          "-o", "{out}", "-q"], "damaged_avatar: the avatar bundle is damaged"),
    "speak --avatar: a text file": (["speak", "--avatar", "{text}", "--text", "Hi.", "-o", "{out}", "-q"],
                                    "notes.txt: no enrolled avatar found"),
}


def _digests(files: dict[str, Path]) -> dict[str, str]:
    return {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in files.items() if p.is_file()}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_with_one_clear_line(case, files, out_dir, capfd):
    args, expected = REFUSED[case]
    before = _digests(files)
    code, err = run_cli(capfd, _fill(args, files, out_dir))
    assert_refused(code, err, expected, out_dir)
    assert _digests(files) == before  # no input was touched


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_output_in_an_unwritable_folder(files, out_dir, capfd):
    locked = out_dir / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err = run_cli(capfd, ["speak", "--image", str(files["small"]), "--text", "Hi.",
                                    "-o", str(locked / "o.mp4"), *SPEAK_FAST])
        assert_refused(code, err, "locked: no permission to write in the output folder", locked)
    finally:
        locked.chmod(0o700)


# -- accepted: a video that plays --------------------------------------------------------
def _similar(frame: np.ndarray, reference: np.ndarray, tolerance: float = 12.0) -> bool:
    """The video's first frame looks like ``reference`` (same brightness and colours)."""
    small = cv2.resize(reference, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_AREA)
    if small.ndim == 2:
        small = np.repeat(small[..., None], 3, axis=2)
    return float(np.abs(frame.astype(np.float32) - small.astype(np.float32)).mean()) < tolerance


ONE_FACE = (128, 128)
ACCEPTED = {
    # case: (arguments, (width, height) of the video, seconds of audio the video lasts or None)
    "image: two faces (the largest is animated)": (["speak", "--image", "{twofaces}", "--text", SPEECH_TEXT, "-o",
                                                    "{out}", "--fps", "10"], (1024, 512), None),
    "image: 8000x8000 with --max-size 128": (["speak", "--image", "{huge}", *SPEAK_TEXT], ONE_FACE, None),
    "image: RGBA": (["speak", "--image", "{rgba}", *SPEAK_TEXT], ONE_FACE, None),
    "image: grayscale": (["speak", "--image", "{gray}", *SPEAK_TEXT], ONE_FACE, None),
    "image: CMYK JPEG": (["speak", "--image", "{cmyk}", *SPEAK_TEXT], ONE_FACE, None),
    "image: 16-bit grayscale PNG": (["speak", "--image", "{png16}", *SPEAK_TEXT], ONE_FACE, None),
    "image: 16-bit RGB PNG": (["speak", "--image", "{rgb16}", *SPEAK_TEXT], ONE_FACE, None),
    "image: animated GIF (its first frame)": (["speak", "--image", "{gif}", *SPEAK_TEXT], ONE_FACE, None),
    "image: face at the image edge": (["speak", "--image", "{edge}", *SPEAK_TEXT], (78, 128), None),
    "image: face rotated 90 degrees": (["speak", "--image", "{rotated}", *SPEAK_TEXT], ONE_FACE, None),
    "image: non-ASCII file names": (["speak", "--image", "{unicode}", "--audio", "{unicode_audio}", "--transcript",
                                     SPEECH_TEXT, "-o", "{out:vidéo 视频.mp4}", *SPEAK_FAST], ONE_FACE, "unicode_audio"),
    "audio: 50 ms": ([*SPEAK_IMAGE, "--audio", "{short}"], ONE_FACE, "short"),
    "audio: pure noise": ([*SPEAK_IMAGE, "--audio", "{noise}"], ONE_FACE, "noise"),
    "audio: a sine tone": ([*SPEAK_IMAGE, "--audio", "{sine}"], ONE_FACE, "sine"),
    "audio: 8 kHz WAV": ([*SPEAK_IMAGE, "--audio", "{speech8k}", "--transcript", SPEECH_TEXT], ONE_FACE, "speech8k"),
    "audio: 96 kHz 24-bit WAV": ([*SPEAK_IMAGE, "--audio", "{speech96k}", "--transcript", SPEECH_TEXT],
                                 ONE_FACE, "speech96k"),
    "audio: a video file (its sound)": ([*SPEAK_IMAGE, "--audio", "{video}", "--transcript", SPEECH_TEXT],
                                        ONE_FACE, None),
    "text: shell metacharacters": ([*SPEAK_IMAGE, "--text", "Hi $(touch {out:pwned}) `touch {out:pwned2}`; ls | "
                                    "cat & echo \"it's\" 'done' > {out:redirected}"], ONE_FACE, None),
    "text: one 5000-letter word": ([*SPEAK_IMAGE, "--fps", "2", "--text", "a" * 5000], ONE_FACE, None),
    "output: upper-case .MP4": (["speak", "--image", "{small}", "--text", "Hi.", "-o", "{out:LOUD.MP4}", *SPEAK_FAST],
                                ONE_FACE, None),
    "--seed 4294967295": ([*HI, "--seed", "4294967295"], ONE_FACE, None),
    "--fps 120": ([*HI, "--fps", "120"], ONE_FACE, None),
}
NO_VOICE = "{}: no voice activity found; the mouth will stay closed"
NOTES = {"audio: 50 ms": NO_VOICE.format("short.wav"), "audio: pure noise": NO_VOICE.format("noise.wav"),
         "audio: a sine tone": NO_VOICE.format("sine.wav")}  # the one line of these accepted -q runs
REFERENCE = {"image: grayscale": "gray", "image: CMYK JPEG": "small", "image: 16-bit grayscale PNG": "gray",
             "image: 16-bit RGB PNG": "small", "image: RGBA": "rgba_on_white"}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_accepted_and_the_video_plays(case, files, out_dir, capfd):
    args, (width, height), audio = ACCEPTED[case]
    code, err = run_cli(capfd, _fill(args, files, out_dir))
    assert code == 0, err
    assert not any("Traceback" in line or "error" in line for line in err), err
    if "-q" in args and case in NOTES:  # quiet: only the note that explains the result
        assert len(err) == 1 and err[0].startswith("avatar: note: ") and NOTES[case] in err[0], err
    elif "-q" in args:
        assert err == []
    videos = [p for p in out_dir.iterdir() if p.suffix.lower() == ".mp4"]
    assert len(videos) == 1 and sorted(p.name for p in out_dir.iterdir()) == [videos[0].name]  # nothing else
    fps = float([value for option, value in zip(args, args[1:]) if option == "--fps"][-1])  # argparse: the last
    seconds = soundfile.info(str(files[audio])).duration if audio and files[audio].suffix == ".wav" else None
    first = assert_video(videos[0], width, height, seconds, fps=fps)
    if case in REFERENCE:  # colours and brightness survived the conversion
        assert _similar(first, load_image(files[REFERENCE[case]])), case
    if case.startswith("image: two faces"):
        assert any("2 faces found; animating the largest one" in line for line in err), err
        frames = np.stack(list(iter_frames(videos[0]))).astype(np.float32)  # (T, 512, 1024, 3)
        motion = np.abs(frames - frames[:1]).mean(axis=(0, 1, 3))  # (1024,) change per column
        assert motion[512:].mean() > 5 * motion[:512].mean()  # the big face (right) speaks, the small one is still


# -- as a subprocess: memory of a huge photo, Ctrl-C ---------------------------------------
def _cli(*args: str, **options) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "avatar.cli", *args], stderr=subprocess.PIPE, text=True,
                            env=env, **options)


# Runs the CLI and prints its peak memory (kB): VmHWM counts only this program, whereas
# ru_maxrss also counts the forking parent's pages (a big pytest process) before exec.
PEAK_PROBE = ("import sys, avatar.cli\n"
              "code = avatar.cli.main(sys.argv[1:])\n"
              "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
              "sys.exit(code)")


def test_a_huge_photo_is_downscaled_to_the_largest_video_without_blowing_memory(files, out_dir):
    out = out_dir / "huge.mp4"
    proc = subprocess.run([sys.executable, "-c", PEAK_PROBE, "speak", "--image", str(files["huge"]), "--text", "Hi.",
                           "-o", str(out), "--fps", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "huge.jpg: 8000x8000 is larger than the largest video (4096 px); downscaled to 4096x4096" in proc.stderr
    assert_video(out, 4096, 4096, fps=2)
    peak_mb = int(proc.stdout.split()[-1]) / 1024
    assert peak_mb < 1500, f"peak memory {peak_mb:.0f} MB"


LONG_TEXT = " ".join(["Mama made my bed, and Bob bought a map of Peru."] * 8)  # ~25 s of speech


@pytest.mark.parametrize("stage, text", [("synthesising speech", ("Hello there. " * 1600)[:20000]),
                                         ("rendering", LONG_TEXT)], ids=["while synthesising 20000 characters",
                                                                         "while rendering"])
def test_ctrl_c_exits_130_with_one_line_and_leaves_nothing(stage, text, files, out_dir):
    proc = _cli("speak", "--image", str(files["unicode"]), "--text", text, "-o", str(out_dir / "o.mp4"))
    seen = []
    for line in proc.stderr:  # progress lines until the stage starts
        seen.append(line)
        if stage in line:
            break
    assert proc.poll() is None, "".join(seen)
    time.sleep(1.0)  # well into the stage
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    lines = [piece.strip() for piece in re.split(r"[\r\n]", rest) if piece.strip()]
    messages = [line for line in lines if not line.startswith(("rendering:", "avatar: rendering"))]  # tqdm's bar
    assert proc.returncode == 130, rest
    assert messages == ["avatar: interrupted; no output was written"], rest
    assert "Traceback" not in "".join(seen) + rest
    assert leftovers(out_dir) == []
