"""``avatar dub``: a video the engine makes itself, re-lipped to new speech."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.dub import source_frames
from avatar.errors import AvatarError

FPS = 25.0
SOURCE_TEXT = "Good morning. Maps make me happy."
LONGER_TEXT = "Bring me a map, please. Maybe both maps, and a big book about maps, too."
SHORTER_TEXT = "Maps."


def test_source_frames_cut_and_play_forward_and_back():
    assert source_frames(5, 3).tolist() == [0, 1, 2]
    assert source_frames(4, 11).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert source_frames(1, 3).tolist() == [0, 0, 0]
    steps = np.abs(np.diff(source_frames(7, 100)))
    assert (steps == 1).all()  # never a jump, never a frozen frame


@pytest.fixture(scope="module")
def engine_video(tmp_path_factory, portrait_path):
    from avatar.api import speak

    path = tmp_path_factory.mktemp("dub") / "talk.mp4"
    speak(portrait_path, path, text=SOURCE_TEXT, fps=FPS, seed=3, max_size=256, progress=False)
    return path


def _frames(path):
    from avatar.video.reader import iter_frames

    return np.stack(list(iter_frames(path)))


def _upper_face_rows(path) -> int:
    """Rows above the nose tip of the video's first frame (untouched by the lip re-render)."""
    from avatar.face.tracker import largest_face
    from avatar.video.reader import iter_frames

    face = largest_face(next(iter(iter_frames(path))), str(path))
    nose_tip = 1  # face-mesh landmark on the tip of the nose
    return int(face.landmarks[nose_tip, 1]) - 8


@pytest.mark.parametrize("text", [LONGER_TEXT, SHORTER_TEXT])
def test_dub_redoes_only_the_lower_face(engine_video, tmp_path, text):
    from avatar.dub import dub_video
    from avatar.video.reader import probe, read_audio_track

    out = tmp_path / "dubbed.mp4"
    result = dub_video(engine_video, out, text=text, seed=1, progress=False)
    source, info = probe(engine_video), probe(out)
    assert (info.width, info.height) == (source.width, source.height)
    assert info.fps == pytest.approx(source.fps)
    duration = result.speech.audio.duration
    assert info.num_frames == result.num_frames == pytest.approx(duration * source.fps, abs=2)
    assert info.has_audio and read_audio_track(out).duration == pytest.approx(duration, abs=0.1)
    if text == LONGER_TEXT:
        assert result.num_frames > source.num_frames and (np.diff(result.source) < 0).any()
    else:
        assert result.source.tolist() == list(range(result.num_frames))
    real, dubbed = _frames(engine_video), _frames(out)
    top = _upper_face_rows(engine_video)
    shown = real[result.source[:len(dubbed)]]  # (T, H, W, 3) the source frame of each output frame
    upper = np.abs(dubbed[:, :top].astype(int) - shown[:, :top].astype(int)).mean()
    lower = np.abs(dubbed[:, top:].astype(int) - shown[:, top:].astype(int)).max(axis=(1, 2, 3))
    # The video's own pixels up to re-encoding: each H.264 4:2:0 generation costs ~1.3 here,
    # and playing backwards goes through one more (the temporary frame store).
    assert upper < (2.0 if text == SHORTER_TEXT else 3.5)
    assert (lower > 40).mean() > 0.5  # the mouth was re-rendered in most frames


def test_dub_errors_are_clear_and_leave_no_output(tmp_path, engine_video):
    from avatar.dub import dub_video
    from avatar.video.writer import VideoWriter

    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, 96, 96, fps=FPS) as writer:
        for _ in range(10):
            writer.write(np.full((96, 96, 3), 128, np.uint8))
    out = tmp_path / "out.mp4"
    with pytest.raises(AvatarError, match="no face"):
        dub_video(blank, out, text=SHORTER_TEXT, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == [blank]
    with pytest.raises(AvatarError, match="overwrite"):
        dub_video(engine_video, engine_video, text=SHORTER_TEXT, progress=False)
    with pytest.raises(AvatarError, match="not found"):
        dub_video(tmp_path / "missing.mp4", out, text=SHORTER_TEXT, progress=False)


def test_cli_dub(engine_video, tmp_path, capsys):
    from avatar.cli import main

    out = tmp_path / "cli.mp4"
    assert main(["dub", str(engine_video), "--text", SHORTER_TEXT, "-o", str(out), "-q"]) == 0
    assert out.is_file()
    assert main(["dub", str(tmp_path / "nothing.mp4"), "--text", "Hi.", "-o", str(tmp_path / "x.mp4"), "-q"]) == 2
    assert "not found" in capsys.readouterr().err
