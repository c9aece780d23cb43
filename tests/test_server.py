"""avatar serve over a real socket on 127.0.0.1: a WebSocket session end to end, streamed
audio independent of its chunking, and bad input that never stops the server."""

import dataclasses
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")

from avatar.config import LIVE  # noqa: E402
from avatar.errors import AvatarError  # noqa: E402
from avatar.live.client import LiveClient  # noqa: E402
from avatar.server.app import create_app  # noqa: E402
from avatar.server.background import background_server  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_clips import speech_like  # noqa: E402

CONFIG = dataclasses.replace(LIVE, max_sessions=3, max_upload_bytes=300_000, frame_size=256)
SPOKEN_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def app():
    return create_app(CONFIG)


@pytest.fixture(scope="module")
def url(app):
    with background_server(app) as address:
        yield address


def _until(frames, predicate, timeout=SPOKEN_TIMEOUT):
    """Frames up to and including the first for which ``predicate`` holds."""
    out, deadline = [], time.monotonic() + timeout
    for frame in frames:
        out.append(frame)
        if predicate(frame) or time.monotonic() > deadline:
            return out
    return out


def _wait_closed(app, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while len(app.state.sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(app.state.sessions) == 0


def _post(url, body: bytes, content_type: str):
    request = urllib.request.Request(f"{url}/api/sessions", body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _photo_form(data: bytes, name="me.jpg") -> tuple[bytes, str]:
    boundary = "avatar-test-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_websocket_session_speaks_text_end_to_end(app, url, tmp_path):
    import av

    with LiveClient(url, seed=2) as client:
        with pytest.raises(AvatarError, match="nothing has been said"):
            client.download_last(tmp_path / "none.mp4")
        assert (client.width, client.height) == (256, 256)
        idle = _until(client.frames(), lambda f: f.index >= 2)
        assert all(f.utterance is None and len(f.audio) == LIVE.audio_rate / client.fps for f in idle)
        uid = client.say("Hello there. Maybe we bob.")
        frames = _until(client.frames(), lambda f: "finished" in f.event_kinds)
        spoken = [f for f in frames if f.utterance == uid]
        assert "started" in spoken[0].event_kinds and "finished" in frames[-1].event_kinds
        # frame count matches the audio length, and the audio is the speech
        motion, sound = app.state.sessions.get(client.id).live.last_utterance()
        assert len(spoken) == len(motion) and sound.duration == pytest.approx(len(spoken) / client.fps)
        audio = np.concatenate([f.audio for f in spoken])
        assert len(audio) == len(sound.samples) and np.abs(audio).max() > 1000
        # the mouth region changes while the image corners stay still
        images = np.stack([f.image for f in spoken if f.jpeg]).astype(np.int16)
        change = np.abs(images - images[0]).max(axis=0).max(axis=2)  # (H, W)
        assert change[:12, :12].max() <= 12  # JPEG noise only
        face = app.state.sessions.get(client.id).live.portrait.face
        x0, y0, x1, y1 = _mouth_box(face)
        assert change[y0:y1, x0:x1].max() > 60
        # the download of the last utterance plays, with its audio
        with av.open(str(client.download_last(tmp_path / "last.mp4"))) as video:
            assert video.streams.video[0].frames == len(spoken) and video.streams.audio
    assert _wait_closed(app)  # the client left: its session is freed


def _mouth_box(face) -> tuple[int, int, int, int]:
    from avatar.face.topology import LIPS_ALL

    points = face.source_points[LIPS_ALL]
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return int(x0) - 4, int(y0) - 4, int(x1) + 4, int(y1) + 4


def _stream_mouth(url, app, pcm: np.ndarray, sizes) -> np.ndarray:
    """Push ``pcm`` in chunks of ``sizes`` (cycled); the mouth curves of the utterance played."""
    with LiveClient(url, seed=5) as client:
        i, k = 0, 0
        while i < len(pcm):
            client.push_audio(pcm[i:i + sizes[k % len(sizes)]], 16000)
            i, k = i + sizes[k % len(sizes)], k + 1
        client.end_segment()
        frames = _until(client.frames(), lambda f: "finished" in f.event_kinds)
        assert "finished" in frames[-1].event_kinds and not client.errors
        motion, _ = app.state.sessions.get(client.id).live.last_utterance()
        return np.stack([motion.action("jawOpen"), motion.action("mouthClose")], axis=1)


def test_audio_chunks_of_odd_sizes_give_the_same_motion_as_one_chunk(app, url):
    pcm = (np.concatenate([np.zeros(4000, np.float32), speech_like(2.0, 16000)]) * 32767).astype(np.int16)
    whole = _stream_mouth(url, app, pcm, [len(pcm)])
    odd = _stream_mouth(url, app, pcm, [317, 1601, 53, 3200])
    assert len(whole) == len(odd) == int(np.ceil(len(pcm) / 16000 * 25))
    np.testing.assert_allclose(odd, whole, atol=1e-4)
    assert whole[:, 0].max() > 0.1


def test_bad_messages_are_answered_and_the_session_goes_on(url):
    with LiveClient(url) as client:
        ws = client._ws
        for bad in ["{not json", json.dumps({"type": "dance"}), json.dumps({"type": "text"}),
                    json.dumps({"type": "text", "text": "hi", "speed": 3}),
                    json.dumps({"type": "audio_start", "sample_rate": 5}), json.dumps({"type": "audio_end"}),
                    json.dumps({"type": "controls", "emotion": "grumpy"}), "[]", ""]:
            ws.send(bad)
        ws.send(b"\x01\x02\x03\x04")  # binary where text is expected (no audio segment open)
        ws.send(b"\x00" * (CONFIG.max_message_bytes + 10))  # over the message limit
        deadline = time.monotonic() + 20
        while len(client.errors) < 11 and time.monotonic() < deadline:
            time.sleep(0.05)
        errors = client.errors
        assert len(errors) == 11, errors
        assert "not valid JSON" in errors[0] and "audio_start" in errors[9] and "limit" in errors[10]
        assert any("grumpy" in e for e in errors)
        # a refused control changed nothing: the next one applies
        reply = client._reply(client._send({"type": "controls", "head_motion": 0.5}), 10)
        assert reply["type"] == "controls" and reply["head_motion"] == 0.5
        uid = client.say("Still here.")  # the same session still speaks
        frames = _until(client.frames(), lambda f: "finished" in f.event_kinds)
        assert any(f.utterance == uid for f in frames)


def test_uploads_over_the_limits_or_without_a_face_get_clear_errors(url):
    code, reply = _post(url, *_photo_form(b"\xff" * (CONFIG.max_upload_bytes + 100_000)))
    assert code == 413 and "MB" in reply["error"]
    code, reply = _post(url, *_photo_form(b"this is not an image"))
    assert code == 422 and "cannot read the image" in reply["error"]
    import cv2

    blank = cv2.imencode(".png", np.full((200, 200, 3), 127, np.uint8))[1].tobytes()
    code, reply = _post(url, *_photo_form(blank, "blank.png"))
    assert code == 422 and "no face" in reply["error"]
    with pytest.raises(AvatarError, match="unknown emotion"):
        LiveClient(url, emotion="grumpy")
    body = b'--b\r\nContent-Disposition: form-data; name="seed"\r\n\r\nabc\r\n--b--\r\n'
    code, reply = _post(url, body, "multipart/form-data; boundary=b")
    assert code == 422 and reply["error"].startswith("seed:")


def test_busy_server_refuses_a_session_and_a_disconnect_frees_it(app, url):
    clients = [LiveClient(url) for _ in range(CONFIG.max_sessions)]
    try:
        with pytest.raises(AvatarError, match="busy"):
            LiveClient(url)
        clients[0].say("This sentence is cut off in the middle by a client that leaves.")
        _until(clients[0].frames(), lambda f: f.utterance is not None)
        clients[0]._ws.close()  # mid-stream disconnect
        deadline = time.monotonic() + 10
        while len(app.state.sessions) >= CONFIG.max_sessions and time.monotonic() < deadline:
            time.sleep(0.05)
        with LiveClient(url) as next_client:  # the freed place serves the next client
            assert next_client.say("Hi.") > 0
    finally:
        for client in clients:
            client.close()
    assert _wait_closed(app)


def test_load_a_few_concurrent_sessions_keep_their_frame_rate(app, url):
    seconds, results = 4.0, {}

    def run(k: int) -> None:
        with LiveClient(url, seed=k) as client:
            client.say("We are a few sessions at once.")
            start, n = time.monotonic(), 0
            for frame in client.frames():
                n += 1
                if time.monotonic() - start > seconds:
                    break
            results[k] = n / (time.monotonic() - start)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(CONFIG.max_sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == CONFIG.max_sessions
    assert min(results.values()) > 20  # 25 fps on the wall clock (pictures may drop, frames do not)
    assert _wait_closed(app)


def test_async_client_speaks_and_barges_in(url):
    import asyncio

    from avatar.live.client import AsyncLiveClient

    async def run() -> list:
        async with await AsyncLiveClient.connect(url) as client:
            uid = await client.say("This is a long sentence for the agent to interrupt, surely it is.")
            seen = []
            async for frame in client:
                seen.append(frame)
                if frame.utterance == uid and len([f for f in seen if f.utterance]) == 10:
                    await client.clear_buffer()
                if "interrupted" in frame.event_kinds or len(seen) > 500:
                    break
            return seen

    seen = asyncio.run(run())
    cut = next(i for i, f in enumerate(seen) if "interrupted" in f.event_kinds)
    assert seen[cut].utterance is None and not np.abs(seen[cut].audio).max()  # dropped at once
    assert 10 <= sum(f.utterance is not None for f in seen) <= 13  # within a frame or two in flight


def test_idle_session_is_closed_with_a_reason(tmp_path):
    config = dataclasses.replace(CONFIG, idle_timeout_seconds=1.0, connect_timeout_seconds=1.0)
    app = create_app(config, warm_up=False)
    with background_server(app) as address:
        with LiveClient(address) as client:
            frames = list(client.frames(timeout=20))  # the stream ends by itself
            assert len(frames) > 10 and client._closed_reason.startswith("closed after 1 s")
        assert _wait_closed(app)
        code, reply = _post(address, b"--b--\r\n", "multipart/form-data; boundary=b")
        assert code == 200 and len(app.state.sessions) == 1  # opened, never streamed ...
        assert _wait_closed(app)  # ... its place is given back
        code, reply = _post(address, b'--b\r\nContent-Disposition: form-data; name="valence"\r\n\r\n5\r\n--b--\r\n',
                            "multipart/form-data; boundary=b")
        assert code == 422 and reply["error"].startswith("valence:")
