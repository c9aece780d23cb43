"""End to end: the Python API and the command line, on the bundled portrait and TTS."""

import csv
import math
import subprocess
import sys

import numpy as np
import pytest

import avatar
from avatar.audio.io import save_wav
from avatar.audio.types import Audio
from avatar.cli import main
from avatar.face.tracker import FaceTracker
from avatar.metrics.lipsync import bilabial_closure, mouth_opening, phone_frames
from avatar.video.reader import iter_frames, probe, read_audio_track

TEXT = "Mama made my bed, and Bob bought a map of Peru."


@pytest.fixture(scope="module")
def spoken(tmp_path_factory, portrait_path):
    out = tmp_path_factory.mktemp("speak") / "mama.mp4"
    result = avatar.speak(portrait_path, out, text=TEXT, seed=3,
                          export_motion=out.with_suffix(".csv"))
    return result


@pytest.fixture(scope="module")
def tracked_opening(spoken):
    with FaceTracker(static=False, max_faces=1) as tracker:
        rows = [tracker.detect(f)[0].landmarks for f in iter_frames(spoken.output)]
    return mouth_opening(np.stack(rows))


def test_mp4_plays_with_audio_and_the_expected_frames(spoken):
    info = probe(spoken.output)
    expected = math.ceil(spoken.speech.audio.duration * 25)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height) == (512, 512)  # the photo's own resolution
    assert info.num_frames == spoken.num_frames == expected
    audio = read_audio_track(spoken.output)
    assert abs(audio.duration - expected / 25) < 0.05
    assert np.abs(audio.samples).max() > 0.05  # the speech is there
    assert [p.name for p in spoken.output.parent.iterdir() if p.name.startswith(".")] == []


def test_lips_close_on_bilabials_in_the_output_video(spoken, tracked_opening):
    phones = spoken.speech.phones
    closure, n = bilabial_closure(tracked_opening, phones, 25.0)
    assert n >= 8  # m, m, m, b, b, b, m, p ...
    assert closure >= 0.8
    vowels = [p for p in phones if p.label in ("AA", "AE", "EY", "AH", "AO", "UW")]
    vowel_open = np.mean([tracked_opening[phone_frames(p, 25.0, len(tracked_opening))].max() for p in vowels])
    assert vowel_open > 2 * np.median(tracked_opening[tracked_opening < 0.02])  # it does open


def test_exported_motion_matches_the_video(spoken):
    rows = list(csv.DictReader(open(spoken.output.with_suffix(".csv"))))
    assert len(rows) == spoken.num_frames
    np.testing.assert_allclose([float(r["jawOpen"]) for r in rows], spoken.motion.action("jawOpen"), atol=1e-4)


def test_same_seed_same_motion_other_seed_other_motion():
    speech, features = avatar.load_speech(text="Hello, my name is Pam.")
    again, features2 = avatar.load_speech(text="Hello, my name is Pam.")
    np.testing.assert_array_equal(speech.audio.samples, again.audio.samples)  # TTS is deterministic
    from avatar.pipeline import generate_motion

    a = generate_motion(speech, features, seed=5)
    b = generate_motion(again, features2, seed=5)
    c = generate_motion(speech, features, seed=6)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rotation, b.rotation)
    assert np.abs(a.rotation - c.rotation).max() > 1e-3


# -- bad inputs: one clear line, non-zero exit, no output file ------------------------------
def _run_cli(capsys, *args):
    code = main(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _bad_inputs(tmp_path, portrait_path):
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (320, 320), (128, 128, 128)).save(blank)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    silent = tmp_path / "silent.wav"
    save_wav(Audio(np.zeros(16000, np.float32), 16000), silent)
    notimage = tmp_path / "photo.jpg"
    notimage.write_text("this is not a photo")
    speech = ["--text", "Hello there."]
    return {
        "no face": (["--image", str(blank), *speech], "no face found"),
        "corrupt audio": (["--image", str(portrait_path), "--audio", str(corrupt)], "corrupt.wav"),
        "empty text": (["--image", str(portrait_path), "--text", "   "], "text is empty"),
        "silent audio": (["--image", str(portrait_path), "--audio", str(silent)], "silent.wav"),
        "unreadable image": (["--image", str(notimage), *speech], "cannot read the image"),
        "missing image": (["--image", str(tmp_path / "nope.jpg"), *speech], "file not found"),
    }


@pytest.mark.parametrize("case", ["no face", "corrupt audio", "empty text", "silent audio",
                                  "unreadable image", "missing image"])
def test_bad_input_gives_one_clear_line_and_no_file(case, tmp_path, portrait_path, capsys):
    args, expected = _bad_inputs(tmp_path, portrait_path)[case]
    out = tmp_path / "out.mp4"
    code, err = _run_cli(capsys, "speak", *args, "-o", str(out), "-q")
    assert code == 2
    assert len(err) == 1 and err[0].startswith("avatar: error:") and expected in err[0]
    assert "Traceback" not in err[0]
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_unknown_option_and_missing_folder(tmp_path, portrait_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["speak", "--image", str(portrait_path), "--text", "Hi.", "-o", str(tmp_path / "o.mp4"), "--colour", "red"])
    assert e.value.code == 2 and "unrecognized arguments: --colour red" in capsys.readouterr().err
    code, err = _run_cli(capsys, "speak", "--image", str(portrait_path), "--text", "Hi.",
                         "-o", str(tmp_path / "missing" / "o.mp4"), "-q")
    assert code == 2 and "output folder does not exist" in err[0]


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "avatar.cli", "speak", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for option in ("--image", "--audio", "--text", "--seed", "--emotion", "--head-motion", "--gaze",
                   "--export-motion", "--max-size", "--fps"):
        assert option in out
