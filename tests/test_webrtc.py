"""The WebRTC transport of ``avatar serve``: an aiortc client receives a session's video
and audio tracks, speaks through the "control" data channel, and frees the session by
leaving."""

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from avatar.server.app import create_app
from avatar.server.background import background_server

TEXT = "Bob bought a big blue boat."
MOUTH = [61, 291, 0, 17, 13, 14, 152]  # MediaPipe landmarks: lip corners, lips, chin
CORNER = 40  # px of the image corners that must stay still
IDLE_SECONDS = 1.5  # idle frames watched before speaking: the baseline of the mouth
FPS_WINDOW = 5.0  # seconds over which the received fps is measured
WAIT = 30.0  # generous: the machine is shared
LAG = 1.0  # s media may arrive after the data channel's event on a busy machine


@pytest.fixture(scope="module")
def server():
    app = create_app()
    with background_server(app) as url:
        yield app, url


def _post(url: str, body: bytes, content_type: str) -> dict:
    request = urllib.request.Request(url, body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return json.loads(response.read())


def _open_session(url: str) -> dict:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="seed"\r\n\r\n1\r\n'
            f"--{boundary}--\r\n").encode()
    return _post(f"{url}/api/sessions", body, f"multipart/form-data; boundary={boundary}")


def _post_offer(url: str, session_id: str, sdp: str) -> dict:
    body = json.dumps({"sdp": sdp, "type": "offer"}).encode()
    return _post(f"{url}/api/sessions/{session_id}/webrtc", body, "application/json")


async def _until(condition, timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _box(points: np.ndarray, h: int, w: int) -> tuple[slice, slice]:
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    m = 0.15 * (x1 - x0)
    return (slice(max(0, int(y0 - m)), min(h, int(y1 + m))), slice(max(0, int(x0 - m)), min(w, int(x1 + m))))


class Watcher:
    """An aiortc client: recvonly video + audio and the "control" channel; records what arrives."""

    def __init__(self, mouth: tuple[slice, slice] = (slice(0, 1), slice(0, 1))):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # local: host candidates only
        self.mouth = mouth
        self.messages: list[tuple[float, dict]] = []
        self.video: list[tuple[float, tuple, np.ndarray, np.ndarray]] = []  # time, shape, mouth, corners
        self.audio: list[tuple[float, float]] = []  # time, peak |sample|
        self.tasks: list[asyncio.Task] = []
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.channel = self.pc.createDataChannel("control")
        self.channel.on("message", lambda m: self.messages.append((time.monotonic(), json.loads(m))))
        self.pc.on("track", self._on_track)

    async def connect(self, url: str, session_id: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await asyncio.to_thread(_post_offer, url, session_id, self.pc.localDescription.sdp)
        assert answer["type"] == "answer"
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))

    def send(self, message: dict) -> float:
        self.channel.send(json.dumps(message))
        return time.monotonic()

    def message(self, kind: str, **fields) -> tuple[float, dict] | None:
        return next(((t, m) for t, m in self.messages if m["type"] == kind
                     and all(m.get(k) == v for k, v in fields.items())), None)

    def _on_track(self, track) -> None:
        reader = self._read_video if track.kind == "video" else self._read_audio
        self.tasks.append(asyncio.ensure_future(reader(track)))

    async def _read_video(self, track) -> None:
        with _ended():
            while True:
                image = (await track.recv()).to_ndarray(format="rgb24")
                mouth = image[self.mouth].astype(np.float32)  # crops only: the client must keep up
                self.video.append((time.monotonic(), image.shape, mouth, _corners(image)))

    async def _read_audio(self, track) -> None:
        with _ended():
            while True:
                samples = (await track.recv()).to_ndarray()
                self.audio.append((time.monotonic(), float(np.abs(samples).max())))

    async def close(self) -> None:
        await self.pc.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class _ended:
    """A track that ends (the peer closed) just stops its reader."""

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        return kind is MediaStreamError


def _corners(image: np.ndarray) -> np.ndarray:
    c = CORNER
    return np.stack([image[:c, :c], image[:c, -c:], image[-c:, :c], image[-c:, -c:]]).astype(np.float32)


def _mouth_change(video, since: float) -> np.ndarray:
    """Each frame's mean |difference| of the mouth from the idle frames' mean mouth."""
    idle = np.mean([m for t, _, m, _ in video if t < since], axis=0)
    return np.array([np.abs(m - idle).mean() for _, _, m, _ in video])


async def _watch(app, url: str, info: dict) -> dict:
    portrait = app.state.sessions.get(info["id"]).live.portrait
    points = portrait.face.source_points[MOUTH]
    watcher = Watcher(_box(points, info["height"], info["width"]))
    try:
        await watcher.connect(url, info["id"])
        await _until(lambda: watcher.message("session"), what="the session message")
        await _until(lambda: watcher.video and watcher.video[-1][0] - watcher.video[0][0] > IDLE_SECONDS,
                     what="idle video")
        watcher.send({"type": "audio_start", "sample_rate": 16000, "id": "a1"})  # not over WebRTC: an error
        sent = watcher.send({"type": "text", "text": TEXT, "id": "t1"})
        await _until(lambda: watcher.message("accepted"), what="accepted")
        uid = watcher.message("accepted")[1]["utterance"]
        await _until(lambda: watcher.message("event", event="finished", utterance=uid), what="finished")
        first = watcher.video[0][0]
        await _until(lambda: watcher.video[-1][0] - first > FPS_WINDOW, what=f"{FPS_WINDOW:g} s of video")
    finally:
        await watcher.close()
    return {"watcher": watcher, "sent": sent, "uid": uid, "photo": portrait.image}


def test_webrtc_streams_speech_and_frees_the_session(server):
    app, url = server
    info = _open_session(url)
    seen = asyncio.run(asyncio.wait_for(_watch(app, url, info), 50))
    watcher, sent, uid = seen["watcher"], seen["sent"], seen["uid"]

    assert watcher.message("session")[1]["session"] == info["id"]
    error = watcher.message("error", id="a1")  # replies echo the message's id
    assert error is not None and "audio_start" in error[1]["message"] and not error[1]["fatal"]
    assert watcher.message("accepted", id="t1") is not None
    started = watcher.message("event", event="started", utterance=uid)
    finished = watcher.message("event", event="finished", utterance=uid)
    assert started is not None and finished is not None and started[0] <= finished[0]
    speech = (started[0], finished[0] + LAG)

    video = watcher.video
    assert {shape for _, shape, _, _ in video} == {(info["height"], info["width"], 3)}
    times = np.array([t for t, _, _, _ in video])
    change = _mouth_change(video, sent)
    moving = max(3.0, 2 * change[times < sent].max())  # over the idle mouth's own motion
    spoken = change[(times >= speech[0]) & (times <= speech[1])]
    assert spoken.max() > moving  # the mouth moves with the words ...
    # ... while the image corners stay the photo's, up to VP8's noise (~6 as it starts)
    assert max(np.abs(c - _corners(seen["photo"])).mean() for _, _, _, c in video) < 10

    peaks = np.array([peak for _, peak in watcher.audio])  # int16 after Opus
    heard = np.array([t for t, _ in watcher.audio])
    assert peaks[heard < sent].max() < 200  # idle: silence
    assert peaks[(heard >= speech[0]) & (heard <= speech[1])].max() > 2000  # speech

    fps = np.sum(times - times[0] <= FPS_WINDOW) / FPS_WINDOW
    first_moving = times[np.flatnonzero((times > sent) & (change > moving))[0]]
    print(f"\nwebrtc: mouth moves {first_moving - sent:.2f} s after the text was sent "
          f"('started' after {started[0] - sent:.2f} s); {fps:.1f} fps received over {FPS_WINDOW:g} s")
    assert fps > 5  # frames flow on the wall clock (a busy machine drops some)

    deadline = time.monotonic() + WAIT
    while len(app.state.sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(app.state.sessions) == 0  # the client left: its session is freed


def test_webrtc_refuses_unknown_and_busy_sessions(server):
    app, url = server
    with pytest.raises(urllib.error.HTTPError) as unknown:
        _post_offer(url, "no-such-session", "v=0\r\n")
    assert unknown.value.code == 404 and "error" in json.loads(unknown.value.read())

    info = _open_session(url)
    session = app.state.sessions.get(info["id"])
    try:
        with pytest.raises(urllib.error.HTTPError) as empty:
            _post_offer(url, info["id"], "v=0\r\n")  # no media to receive
        assert empty.value.code == 422 and "no media" in json.loads(empty.value.read())["error"]
        assert not session.streaming  # refused: the session can still be watched
        session.streaming = True  # as if a WebSocket client were watching
        with pytest.raises(urllib.error.HTTPError) as busy:
            _post_offer(url, info["id"], "v=0\r\n")
        assert busy.value.code == 409 and "already streaming" in json.loads(busy.value.read())["error"]
    finally:
        app.state.sessions.close(info["id"])


def test_webrtc_server_shutdown_closes_the_peer():
    with contextlib.ExitStack() as server:
        app = create_app(warm_up=False)
        url = server.enter_context(background_server(app))
        info = _open_session(url)

        async def watch_shutdown() -> Watcher:
            watcher = Watcher()
            try:
                await watcher.connect(url, info["id"])
                await _until(lambda: watcher.video, what="video")
                await asyncio.to_thread(server.close)  # stops the server (its lifespan ends)
                await _until(lambda: watcher.pc.connectionState == "closed", what="the peer to close")
            finally:
                await watcher.close()
            return watcher

        watcher = asyncio.run(asyncio.wait_for(watch_shutdown(), 50))
    closed = watcher.message("closed")
    assert closed is not None and "shutting down" in closed[1]["reason"]
