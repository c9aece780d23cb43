"""The gesture path end to end (enroll + speak --avatar) on a video the engine makes itself,
plus the gesture metrics on constructed cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avatar.metrics.gesture import audio_beats, beat_consistency, diversity, motion_beats

FPS = 25.0
ENROLL_TEXT = ("Good morning. My name is Bob, and I am a big fan of maps. "
               "Maps make me happy, because every place has a story to tell.")
NEW_TEXT = "Bring me a map, please. Maybe both maps."


# -- metrics --------------------------------------------------------------------------------
def test_beat_consistency_rewards_motion_that_stops_on_the_beats():
    beats = np.array([0.5, 1.3, 2.0, 2.9])
    assert beat_consistency(beats, beats) == pytest.approx(1.0)
    assert beat_consistency(beats, beats + 0.1) == pytest.approx(np.exp(-0.5), rel=1e-6)
    assert beat_consistency(beats, beats + 0.4) < 0.01
    assert beat_consistency(beats, np.array([])) == 0.0


def test_motion_beats_are_the_slowest_moments():
    t = np.arange(0, 4, 1 / FPS)
    # A hand swinging back and forth: it stops at the turning points, every 0.5 s.
    positions = np.zeros((len(t), 2, 3))
    positions[:, 0, 0] = np.sin(2 * np.pi * t)
    found = motion_beats(positions, FPS)
    turning = np.arange(0.25, 4, 0.5)
    assert len(found) >= len(turning) - 2
    assert np.abs(found[:, None] - turning[None]).min(1).max() < 1.5 / FPS


def test_audio_beats_are_onset_peaks():
    onset = np.zeros(100)
    onset[[10, 40, 41, 80]] = [0.9, 0.8, 0.5, 0.7]
    assert np.allclose(audio_beats(onset, FPS), np.array([10, 40, 80]) / FPS)


def test_diversity_is_zero_for_a_still_body_and_grows_with_motion():
    rng = np.random.default_rng(0)
    still = np.ones((200, 5, 3))
    assert diversity(still, FPS) == 0.0
    small = still + 0.01 * rng.standard_normal((200, 5, 3)).cumsum(0)
    large = still + 0.05 * rng.standard_normal((200, 5, 3)).cumsum(0)
    assert 0 < diversity(small, FPS) < diversity(large, FPS)


# -- end to end -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine_video(tmp_path_factory, portrait_path):
    """A talking video of the bundled portrait (head and shoulders), made by the photo path."""
    from avatar.api import speak

    path = tmp_path_factory.mktemp("enroll") / "talk.mp4"
    speak(portrait_path, path, text=ENROLL_TEXT, fps=FPS, seed=3, progress=False)
    return path


@pytest.fixture(scope="module")
def enrolled(engine_video, tmp_path_factory):
    from avatar.gesture.enroll import EnrollOptions, enroll

    folder = tmp_path_factory.mktemp("avatars") / "bob"
    messages = []
    bundle = enroll(engine_video, EnrollOptions(name="bob", folder=folder, train_minutes=0.1, progress=False),
                    log=messages.append)
    return bundle, messages


def test_enroll_writes_a_complete_bundle(enrolled, engine_video):
    from avatar.gesture.bundle import FRAMES, META, MODEL, MOUTH
    from avatar.video.reader import probe

    bundle, messages = enrolled
    info = probe(engine_video)
    assert bundle.num_frames == info.num_frames
    assert bundle.size == (info.width, info.height) and bundle.fps == pytest.approx(FPS)
    for name in (META, FRAMES, MODEL, MOUTH):
        assert (bundle.folder / name).is_file()
    assert not list(bundle.folder.parent.glob(".*partial"))  # no leftovers of the atomic write
    meta = json.loads((bundle.folder / META).read_text())
    assert meta["format"] == "avatar-bundle" and meta["num_frames"] == bundle.num_frames
    report = bundle.report
    assert report.person_share > 0.9  # MediaPipe pose finds the portrait's head and shoulders
    assert np.isfinite(bundle.body.face[:, 0, 0]).mean() > 0.9
    assert set(report.dead_ends) == {"10s_before", "10s_after", "30s_before", "30s_after"}
    assert report.dead_ends["10s_after"] == 0.0 and report.dead_ends["30s_after"] == 0.0
    assert bundle.motion_low.shape == (bundle.num_frames, bundle.motion_low.shape[1])
    assert np.allclose(np.linalg.norm(bundle.motion_low, axis=1), 1, atol=1e-4)
    assert any("motion graph" in m for m in messages)


def test_pruned_graph_lets_a_walk_go_on_forever(enrolled):
    bundle, _ = enrolled
    graph = bundle.graph
    assert graph.num_nodes >= 4
    assert (np.diff(graph.adjacency.indptr) > 0).all()  # every node has a successor
    # every node reaches every other (breadth-first search from node 0, forwards)
    seen, frontier = {0}, [0]
    while frontier:
        frontier = [j for i in frontier for j in graph.successors(i) if j not in seen]
        seen.update(frontier)
    assert len(seen) == graph.num_nodes


def test_an_existing_avatar_is_not_replaced_without_force(enrolled, engine_video):
    from avatar.errors import AvatarError
    from avatar.gesture.enroll import EnrollOptions, enroll

    bundle, _ = enrolled
    with pytest.raises(AvatarError, match="already exists"):
        enroll(engine_video, EnrollOptions(name="bob", folder=bundle.folder, progress=False))


def test_speak_with_the_avatar_makes_a_video_of_its_frames(enrolled, tmp_path):
    from avatar.gesture.speak import speak_avatar
    from avatar.video.reader import iter_frames, probe, read_audio_track

    bundle, _ = enrolled
    out = tmp_path / "new.mp4"
    result = speak_avatar(bundle.folder, out, text=NEW_TEXT, seed=1, progress=False)
    info = probe(out)
    assert (info.width, info.height) == bundle.size and info.fps == pytest.approx(bundle.fps)
    assert info.has_audio and info.video_codec == "h264" and info.audio_codec == "aac"
    duration = result.speech.audio.duration
    assert info.num_frames == pytest.approx(duration * bundle.fps, abs=2)
    assert read_audio_track(out).duration == pytest.approx(duration, abs=0.1)
    plan = result.plan
    assert plan.num_frames == info.num_frames
    assert ((plan.source >= 0) & (plan.source < bundle.num_frames)).all()
    # Outside transitions, consecutive output frames are consecutive real frames or a graph edge.
    nodes = plan.nodes
    for a, b in zip(nodes[:-1], nodes[1:]):
        assert bundle.graph.adjacency[a, b]
    # The frames away from the face are the person's own pixels (not re-rendered).
    with bundle.frame_store() as store:
        first = next(iter_frames(out))
        real = store[int(plan.source[0])]
        h = bundle.size[1]
        assert np.abs(first[-h // 8:].astype(int) - real[-h // 8:h].astype(int)).mean() < 4


def test_speaking_is_reproducible_for_a_seed(enrolled, tmp_path):
    from avatar.gesture.speak import speak_avatar

    bundle, _ = enrolled
    a = speak_avatar(bundle.folder, tmp_path / "a.mp4", text=NEW_TEXT, seed=2, progress=False)
    b = speak_avatar(bundle.folder, tmp_path / "b.mp4", text=NEW_TEXT, seed=2, progress=False)
    assert np.array_equal(a.plan.source, b.plan.source)


def test_unknown_avatar_is_a_clear_error(tmp_path):
    from avatar.errors import AvatarError
    from avatar.gesture.speak import speak_avatar

    with pytest.raises(AvatarError, match="no enrolled avatar"):
        speak_avatar(tmp_path / "nobody", tmp_path / "x.mp4", text="Hello.", progress=False)


def test_cli_speaks_with_an_enrolled_avatar(enrolled, tmp_path, capsys):
    from avatar.cli import main

    bundle, _ = enrolled
    out = tmp_path / "cli.mp4"
    assert main(["speak", "--avatar", str(bundle.folder), "--text", "Maps.", "-o", str(out), "-q"]) == 0
    assert out.is_file()
    assert main(["speak", "--avatar", str(tmp_path / "missing"), "--text", "Hi.", "-o", str(out), "-q"]) == 2
    assert "avatar enroll" in capsys.readouterr().err  # the error says what to do


def test_dub_continues_from_the_motion_graph_when_the_person_is_enrolled(enrolled, engine_video, tmp_path):
    """Speech longer than the video: with the person's avatar the frames come from its
    motion graph (graph edges, no forward-and-back), without it the video plays back and forth."""
    from avatar.dub import dub_video
    from avatar.video.reader import probe

    bundle, _ = enrolled
    longer = " ".join([NEW_TEXT] * 3)
    graph = dub_video(engine_video, tmp_path / "graph.mp4", text=longer, avatar=str(bundle.folder), progress=False)
    frames = probe(engine_video).num_frames
    assert graph.num_frames > frames and probe(tmp_path / "graph.mp4").num_frames == graph.num_frames
    assert ((graph.source >= 0) & (graph.source < bundle.num_frames)).all()
    assert not (np.diff(graph.source) == -1).any()  # never played backwards
    pingpong = dub_video(engine_video, tmp_path / "pingpong.mp4", text=longer, progress=False)
    assert (np.diff(pingpong.source) == -1).any()
