"""A voice agent's view of avatar: stream TTS audio in, get talking frames back, save an mp4.

    python examples/live_tts_to_mp4.py [-o agent.mp4] [--url http://127.0.0.1:8000] [--photo me.jpg]

The bundled offline voice stands in for an agent's TTS. It speaks the reply sentence by
sentence, and each sentence's audio is pushed to the avatar in 20 ms chunks, in real
time, as a TTS would stream it. The frames that come back (picture + the audio under
it) are written to an mp4. Without --url, a server is started in this process on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time

import numpy as np

from avatar.audio.io import resample
from avatar.audio.tts import split_text, synthesize
from avatar.audio.types import Audio
from avatar.live.client import LiveClient
from avatar.video.writer import VideoWriter

REPLY = ("Hello! I am your assistant. I can talk while my voice is still being made. "
         "Ask me anything, and I will answer right away.")
TTS_RATE = 16000  # what many agent TTS services stream
CHUNK_SECONDS = 0.02


def stream_reply(client: LiveClient, text: str) -> None:
    """Synthesise sentence by sentence; push each one's audio in real-time 20 ms chunks."""
    step = round(TTS_RATE * CHUNK_SECONDS)
    for sentence in filter(str.strip, split_text(text)):
        pcm = resample(synthesize(sentence).audio, TTS_RATE).samples
        start = time.monotonic()
        for k, i in enumerate(range(0, len(pcm), step)):
            client.push_audio(pcm[i:i + step], TTS_RATE)
            time.sleep(max(0.0, start + (k + 1) * CHUNK_SECONDS - time.monotonic()))
        client.end_segment()


def record(client: LiveClient, segments: int) -> tuple[list[bytes], list[np.ndarray]]:
    """Frames until ``segments`` utterances have finished, then a short idle tail."""
    pictures, sound, finished, tail = [], [], 0, None
    for frame in client.frames():
        if frame.jpeg:
            pictures.append(frame.jpeg)
        elif pictures:
            pictures.append(pictures[-1])  # a dropped picture repeats the last one
        sound.append(frame.audio)
        finished += frame.event_kinds.count("finished")
        if finished >= segments and tail is None:
            tail = frame.index + round(client.fps / 2)
        if tail is not None and frame.index >= tail:
            break
    return pictures, sound


def write_mp4(path: str, client: LiveClient, pictures: list[bytes], sound: list[np.ndarray]) -> None:
    import cv2

    audio = Audio(np.concatenate(sound).astype(np.float32) / 32768.0, client.audio_rate)
    skipped = len(sound) - len(pictures)  # frames before the first picture arrived
    audio = Audio(audio.samples[skipped * len(sound[0]):], audio.sample_rate)
    with VideoWriter(path, client.width, client.height, fps=client.fps, audio=audio) as writer:
        for jpeg in pictures:
            bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            writer.write(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default="agent.mp4")
    ap.add_argument("--url", help="a running `avatar serve` (default: start one here)")
    ap.add_argument("--photo", help="the face (default: the bundled portrait)")
    ap.add_argument("--text", default=REPLY, help="what the agent says")
    args = ap.parse_args()

    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from avatar.server.app import create_app
            from avatar.server.background import background_server

            url = stack.enter_context(background_server(create_app()))
        client = stack.enter_context(LiveClient(url, args.photo))
        segments = len(list(filter(str.strip, split_text(args.text))))
        pusher = threading.Thread(target=stream_reply, args=(client, args.text), daemon=True)
        pusher.start()
        pictures, sound = record(client, segments)
        pusher.join()
    write_mp4(args.output, client, pictures, sound)
    print(f"wrote {args.output}: {len(pictures)} frames, {len(pictures) / client.fps:.1f} s")


if __name__ == "__main__":
    main()
