"""Live sessions (avatar.live): idle motion, text spoken sentence by sentence, streamed
audio decided independently of its chunking, barge-in without a jump."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from avatar.live.audio_stream import StreamedMouth
from avatar.live.session import LiveSession
from avatar.live.timeline import Chunk, Timeline
from avatar.motion.types import ACTION_INDEX, MotionSeq
from avatar.pipeline import load_portrait

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_clips import speech_like  # noqa: E402

FPS = 25.0


@pytest.fixture(scope="module")
def session(portrait_path):
    s = LiveSession(load_portrait(portrait_path, max_size=256), seed=3, fps=FPS)
    yield s
    s.close()


def _pull(mouth: StreamedMouth, audio: np.ndarray, sizes) -> tuple[np.ndarray, np.ndarray]:
    jaw, out, i, k = [], [], 0, 0
    while i < len(audio):
        n = sizes[k % len(sizes)]
        mouth.push(audio[i:i + n])
        i, k = i + n, k + 1
        for actions, a in mouth.pull():
            jaw.append(actions["jawOpen"])
            out.append(a)
    mouth.end()
    for actions, a in mouth.pull():
        jaw.append(actions["jawOpen"])
        out.append(a)
    return np.array(jaw), np.concatenate(out)


def test_streamed_audio_motion_does_not_depend_on_chunking():
    rate = 16000
    audio = np.concatenate([np.zeros(rate // 4, np.float32), speech_like(2.75, rate)])  # 0.25 s silence first
    whole_jaw, whole_audio = _pull(StreamedMouth(rate, FPS), audio, [len(audio)])
    odd_jaw, odd_audio = _pull(StreamedMouth(rate, FPS), audio, [317, 1601, 53, 3200])
    assert len(whole_jaw) == len(odd_jaw) == int(np.ceil(3.0 * FPS))
    np.testing.assert_allclose(odd_jaw, whole_jaw, atol=1e-5)
    np.testing.assert_allclose(odd_audio, whole_audio, atol=1e-5)
    assert whole_jaw.max() > 0.1  # the mouth moves with the voice ...
    assert whole_jaw[:2].max() < 0.05  # ... and is closed before it


def test_timeline_eases_a_change_of_source_and_reports_playback():
    def idle(first, count):
        return MotionSeq.neutral(count, FPS)

    timeline = Timeline(idle, block_frames=50, samples_per_frame=960, ramp_frames=6)
    for _ in range(3):
        timeline.next()
    speech = MotionSeq.neutral(20, FPS)
    speech.rotation[:, 0] = 0.3  # a head turned far from the idle pose
    timeline.push(Chunk(7, speech, np.ones(20 * 960, np.float32), last=True))
    frames = [timeline.next() for _ in range(30)]
    yaw = np.array([f.motion.rotation[0] for f in frames])
    assert frames[0].events == [("started", 7)] and frames[0].utterance == 7
    assert abs(yaw[0]) < 0.01 and np.abs(np.diff(yaw)).max() < 0.1  # no jump
    assert abs(yaw[10] - 0.3) < 1e-6  # the speech's own pose once eased in
    assert [f.events for f in frames if f.events][1] == [("finished", 7)]
    assert frames[25].utterance is None and frames[25].audio.max() == 0


def test_session_speaks_text_then_idles(session):
    idle = [session.next_frame() for _ in range(3)]
    assert not any(f.speaking for f in idle)
    uid = session.say("Hello. Maybe we bob.")
    frames, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        f = session.next_frame()
        frames.append(f)
        if any(kind == "finished" for kind, _, _ in f.events):
            break
    spoken = [f for f in frames if f.utterance == uid]
    assert spoken and spoken[0].events[0][:2] == ("started", uid)
    audio = np.concatenate([f.audio for f in spoken])
    assert len(audio) == len(spoken) * session.samples_per_frame and np.abs(audio).max() > 0.05
    # frame count matches the audio's length: two sentences, each its TTS duration
    motion, sound = session.last_utterance()
    assert len(motion) == len(spoken) and sound.duration == pytest.approx(len(spoken) / FPS)
    # the mouth region changes while the corners of the image stay put
    images = np.stack([f.image for f in spoken]).astype(np.int16)
    change = np.abs(images - images[0]).max(axis=0).max(axis=2)  # (H, W)
    assert change[:10, :10].max() == 0
    assert change.max() > 40
    # lips close on the /m/ and /b/ of "Maybe we bob" (mouthClose ~ jawOpen)
    close = motion.action("mouthClose")
    assert close.max() > 0.05


def test_barge_in_drops_speech_within_a_frame_without_a_jump(session):
    uid = session.say("This is a long sentence that will be interrupted before it ends, surely.")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        f = session.next_frame()
        if f.utterance == uid:
            break
    for _ in range(5):
        before = session.next_frame()
    cut = session.interrupt()
    after = session.next_frame()
    assert cut == uid and ("interrupted", uid, "") in after.events
    assert not after.speaking and np.abs(after.audio).max() == 0
    jump = np.abs(np.asarray(after.image, np.int16) - before.image).mean()
    assert jump < 8  # eased back to idle, not cut


def test_session_streams_audio_and_rejects_bad_input(session):
    from avatar.errors import AvatarError

    with pytest.raises(AvatarError):
        session.push_audio(np.zeros(100, np.int16))  # before audio_start
    with pytest.raises(AvatarError):
        session.say("   ")
    with pytest.raises(AvatarError):
        session.start_audio(1234567)
    uid = session.start_audio(16000)
    pcm = (speech_like(1.0, 16000) * 32767).astype(np.int16)
    for i in range(0, len(pcm), 480):
        session.push_audio(pcm[i:i + 480])
    session.end_audio()
    frames = [session.next_frame() for _ in range(40)]
    spoken = [f for f in frames if f.utterance == uid]
    assert len(spoken) == 25
    assert any(kind == "finished" for f in frames for kind, _, _ in f.events)


def test_an_underrun_inside_streamed_speech_holds_the_mouth_without_new_events():
    timeline = Timeline(lambda first, count: MotionSeq.neutral(count, FPS), block_frames=50,
                        samples_per_frame=960, ramp_frames=2)
    part = MotionSeq.neutral(5, FPS)
    part.set_action("jawOpen", np.full(5, 0.4))
    timeline.push(Chunk(4, part, np.ones(5 * 960, np.float32), overlay=("jawOpen",)))
    frames = [timeline.next() for _ in range(8)]  # 3 frames with no audio yet
    timeline.push(Chunk(4, part, np.ones(5 * 960, np.float32), overlay=("jawOpen",), last=True))
    frames += [timeline.next() for _ in range(7)]
    events = [e for f in frames for e in f.events]
    assert events == [("started", 4), ("finished", 4)]
    late = frames[5:8]
    assert all(f.utterance == 4 and not f.audio.any() for f in late)  # silent, still the utterance
    jaw = np.array([f.motion.actions[ACTION_INDEX["jawOpen"]] for f in frames[:13]])
    np.testing.assert_allclose(jaw[2:13], 0.4, atol=1e-6)  # held through the gap
