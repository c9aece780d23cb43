"""Live session latency and frame cost (avatar.live.session), on the bundled portrait.

    python benchmarks/bench_live.py [--size 512] [--runs 8]

Prints, for text and for streamed audio input, the time from the input reaching the
session to the first frame of that speech (frames pulled in real time at the session's
fps, as a server does), and the per-frame cost (timeline + render) over idle and speech.
"""

from __future__ import annotations

import argparse
import time
from importlib.resources import files

import numpy as np

from avatar.live.session import LiveSession
from avatar.pipeline import load_portrait

SENTENCES = ["Hello there.", "Maybe we can begin now.", "Bob bought a big blue boat.",
             "Thanks for waiting, here it is.", "Please pass the paper.", "I am fine, thank you."]


def _until_speaking(session: LiveSession, t0: float, feed=None) -> tuple[float, list[float]]:
    """Pull frames at real-time pace until one speaks; returns (latency, frame costs)."""
    costs, start = [], time.perf_counter()
    for k in range(10_000):
        if feed is not None:
            feed(k)
        a = time.perf_counter()
        frame = session.next_frame()
        costs.append(time.perf_counter() - a)
        if frame.speaking:
            return time.perf_counter() - t0, costs
        time.sleep(max(0.0, start + (k + 1) / session.fps - time.perf_counter()))
    raise RuntimeError("no speech frame")


def _drain(session: LiveSession, costs: list[float]) -> None:
    start = time.perf_counter()
    for k in range(10_000):
        a = time.perf_counter()
        frame = session.next_frame()
        costs.append(time.perf_counter() - a)
        if any(kind == "finished" for kind, _, _ in frame.events):
            return
        time.sleep(max(0.0, start + (k + 1) / session.fps - time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    portrait = load_portrait(str(files("avatar.assets") / "astronaut.jpg"), max_size=args.size)
    session = LiveSession(portrait)
    session.say("Warm up.")  # loads the voice
    _drain(session, [])
    text_lat, audio_lat, costs = [], [], []
    for run in range(args.runs):
        t0 = time.perf_counter()
        session.say(SENTENCES[run % len(SENTENCES)])
        latency, c = _until_speaking(session, t0)
        text_lat.append(latency)
        costs += c
        _drain(session, costs)
    rate, chunk = 16000, 320  # 20 ms chunks arriving in real time
    t = np.arange(rate) / rate
    voice = (0.3 * np.sin(2 * np.pi * 150 * t) * np.clip(np.sin(2 * np.pi * 4 * t), 0, None)).astype(np.float32)
    for run in range(args.runs):
        session.start_audio(rate)
        t0 = time.perf_counter()
        sent = [0]

        def feed(k):  # the chunks that have "arrived" by frame k (real time)
            due = int((time.perf_counter() - t0) * rate) + chunk
            while sent[0] < min(due, len(voice)):
                session.push_audio(voice[sent[0]:sent[0] + chunk])
                sent[0] += chunk

        latency, c = _until_speaking(session, t0, feed)
        audio_lat.append(latency)
        costs += c
        while sent[0] < len(voice):
            feed(0)
            session.next_frame()
            time.sleep(1.0 / session.fps)
        session.end_audio()
        _drain(session, costs)
    session.close()
    ms = 1e3 * np.asarray(costs)
    print(f"portrait {portrait.image.shape[1]}x{portrait.image.shape[0]}, {session.fps:g} fps")
    print(f"text -> first speech frame: median {1e3 * np.median(text_lat):.0f} ms, "
          f"max {1e3 * max(text_lat):.0f} ms ({args.runs} sentences)")
    print(f"audio (20 ms chunks) -> first speech frame: median {1e3 * np.median(audio_lat):.0f} ms, "
          f"max {1e3 * max(audio_lat):.0f} ms")
    print(f"frame cost: median {np.median(ms):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
          f"max {ms.max():.1f} ms over {len(ms)} frames (budget {1e3 / session.fps:.0f} ms)")


if __name__ == "__main__":
    main()
