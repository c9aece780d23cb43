"""`avatar serve` measured from a client: latency, sustained streaming, A/V offset, sessions, lips.

    python benchmarks/bench_serve.py all [--quick] [--data /work/shared/data]
    python benchmarks/bench_serve.py latency [--runs 8]
    python benchmarks/bench_serve.py sustained [--minutes 10]
    python benchmarks/bench_serve.py avsync
    python benchmarks/bench_serve.py concurrency [--sessions 1 2 3 4 5 6] [--seconds 20]
    python benchmarks/bench_serve.py lips [--clips tf05_aoc_hdtf_en_8s.mp4 ...]

The server runs in its own process (``avatar serve --port P``), so the client's work does
not share its GIL; everything travels over 127.0.0.1. Parts:

- latency: text leaving the client, or the first 20-ms chunk of a streamed real
  recording, to the first frame of that utterance arriving (its ``started`` event);
- sustained: one session for --minutes with speech every ~10 s: frames, dropped pictures,
  fps, inter-arrival jitter and the server's resident memory every 10 s;
- avsync: the lag between the audio envelope carried in each received frame and the mouth
  opening tracked in its picture (cross-correlation), against the same lag on the mp4 that
  avatar.speak writes from the same input; the live A/V offset is their difference;
- concurrency: N sessions at once, per-session fps and drop share, and with the default
  --max-sessions one more session must get HTTP 503 while the others keep their fps;
- lips: streamed audio (the streamed rules mouth) against the file-mode rules path on real
  clips (mouth opening r against the real person, bench_selfreenact's measures), and p/b/m
  closures of streamed text against file mode (bench_lipsync's measure).

Pictures are tracked with the face mesh in static mode on every frame, as bench_lipsync
does (video mode smooths landmarks over time, which would blur closures and shift lags).
Machine load is printed with each part: the CPU used by the server, by this client and by
everything else over the part.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.audio.io import load_audio, resample, save_wav
from avatar.audio.types import Audio
from avatar.errors import AvatarError
from avatar.live.client import LiveClient

DATA = Path("/work/shared/data")  # development media (see its README); never copied into the project
RECORDING = "audio/a01_en_male_speech_60s.wav"  # real speech, 16 kHz mono
AV_RECORDING = "audio/a07_en_hdtf_radio_8s.wav"
AV_TEXT = "Bob bought a big blue boat. Mom made more muffins."
AV_WORDS = ["Bob.", "Map!", "Pop.", "Mama.", "Baby.", "Pam."]  # short loud bursts, lips shut at each end
AV_GAPS = [0.45, 0.8, 0.6, 1.1, 0.5, 0.95, 0.7, 1.25, 0.55, 0.85]  # irregular silences: one clear lag peak
LIP_CLIPS = ["tf05_aoc_hdtf_en_8s.mp4", "tf12_young_man_outdoor_7s.mp4", "tf18_voxceleb_glasses_14s.mp4"]
SENTENCES = ["Hello there.", "Maybe we can begin now.", "Bob bought a big blue boat.",
             "Thanks for waiting, here it is.", "Please pass the paper.", "I am fine, thank you.",
             "The weather is lovely today, so we might walk to the park after lunch.",
             "Could you tell me more about the project you mentioned yesterday?"]
PUSH_RATE = 16000  # streamed audio is pushed at 16 kHz ...
CHUNK_MS = 20  # ... in 20-ms chunks, in real time
START_TIMEOUT = 90.0  # seconds for `avatar serve` to answer /api/info
HOLD_FPS, HOLD_DROPS = 24.5, 0.02  # "holds 25 fps": at least this fps and under this drop share
AV_GOAL_MS = 40.0
LAG_SEARCH = 6  # frames either way: speech's syllable rhythm (~6 frames) makes farther peaks ambiguous
SUMMARY: list[tuple[str, str, str, str]] = []  # (part, figure, value, goal / note)


# -- the server process --------------------------------------------------------------------
def free_port() -> int:
    from avatar.server.background import free_port as pick

    return pick("127.0.0.1")


def proc_rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS of /proc/PID/status), MB."""
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def proc_cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds of a process (fields 14, 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds spent by all cores outside idle and iowait since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """``avatar serve`` in a child process on a free 127.0.0.1 port, stopped on exit."""

    env: dict[str, str] = {}  # extra environment for the server (--server-env), set by main()

    def __init__(self, work: Path, max_sessions: int | None = None):
        self.max_sessions = max_sessions
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"serve_{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "ServerProcess":
        exe = Path(sys.executable).with_name("avatar")  # the venv's console script
        cmd = [str(exe), "serve", "--port", str(self.port), "-q"]
        if self.max_sessions is not None:
            cmd += ["--max-sessions", str(self.max_sessions)]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.env})
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"avatar serve exited ({self.proc.returncode}); see {self.log_path}")
            try:
                self.info = get_json(f"{self.url}/api/info")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError(f"avatar serve did not answer in {START_TIMEOUT:g} s; see {self.log_path}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def rss_mb(self) -> float:
        return proc_rss_mb(self.proc.pid)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.proc.pid)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class LoadMeter:
    """Cores used by the server, this client and everything else between start() and stop()."""

    def __init__(self, server: ServerProcess):
        self.server = server

    def start(self) -> "LoadMeter":
        self._t = time.perf_counter()
        self._marks = (machine_busy_seconds(), self.server.cpu_seconds(), proc_cpu_seconds("self"))
        return self

    def stop(self) -> dict:
        wall = time.perf_counter() - self._t
        now = (machine_busy_seconds(), self.server.cpu_seconds(), proc_cpu_seconds("self"))
        total, server, client = (b - a for a, b in zip(self._marks, now))
        return dict(server=server / wall, client=client / wall, other=max(0.0, total - server - client) / wall,
                    loadavg=os.getloadavg()[0])


def load_line(load: dict) -> str:
    return (f"load: server {load['server']:.2f} cores, client {load['client']:.2f}, other processes "
            f"{load['other']:.2f} (of {os.cpu_count()}); 1-min loadavg {load['loadavg']:.2f}")


# -- the client side ------------------------------------------------------------------------
@dataclass
class Arrival:
    t: float  # perf_counter when the client got the frame
    index: int
    utterance: int | None
    dropped: bool


class Receiver(threading.Thread):
    """Drains one session's frames as they arrive, timestamping each; keeps the frames of
    the utterances in ``self.wanted`` (pictures are large: a 10-minute run keeps none)."""

    def __init__(self, client: LiveClient):
        super().__init__(daemon=True, name="bench-receiver")
        self.client = client
        self.arrivals: list[Arrival] = []
        self.kept: dict[int, list] = {}  # utterance -> ClientFrame list
        self.wanted: set[int] = set()
        self.error: str | None = None
        self.done = False
        self._events: dict[tuple[str, int], float] = {}
        self._cond = threading.Condition()

    def run(self) -> None:
        try:
            for frame in self.client.frames(timeout=30):
                t = time.perf_counter()
                with self._cond:
                    self.arrivals.append(Arrival(t, frame.index, frame.utterance, not frame.jpeg))
                    for event in frame.events:
                        self._events.setdefault((event["event"], event["utterance"]), t)
                    if frame.utterance in self.wanted:
                        self.kept.setdefault(frame.utterance, []).append(frame)
                    self._cond.notify_all()
        except AvatarError as error:
            self.error = str(error)
        finally:
            with self._cond:
                self.done = True
                self._cond.notify_all()

    def wait_event(self, kind: str, utterance: int, timeout: float = 60.0) -> float:
        """Arrival time of the frame carrying event ``kind`` of ``utterance``."""
        key = (kind, utterance)
        with self._cond:
            self._cond.wait_for(lambda: key in self._events or self.done, timeout)
            if key not in self._events:
                raise RuntimeError(f"no {kind!r} event for utterance {utterance} in {timeout:g} s "
                                   f"(receiver error: {self.error})")
            return self._events[key]

    def wait_frames(self, count: int, timeout: float = 30.0) -> None:
        with self._cond:
            target = len(self.arrivals) + count
            self._cond.wait_for(lambda: len(self.arrivals) >= target or self.done, timeout)

    def started(self) -> list[int]:
        with self._cond:
            return sorted(uid for kind, uid in self._events if kind == "started")

    def window(self, t0: float, t1: float) -> list[Arrival]:
        with self._cond:
            return [a for a in self.arrivals if t0 <= a.t < t1]


class Speaker:
    """One session: the client, its receiver and the utterance ids it has queued.

    Utterance ids are counted here (the server numbers a session's utterances 1, 2, ...):
    LiveClient.push_audio does not return the id of the segment it opens.
    """

    def __init__(self, url: str, photo=None):
        self.client = LiveClient(url, photo)
        self.rx = Receiver(self.client)
        self.rx.start()
        self.count = 0
        self.id_mismatches = 0  # say() returned another id than the server's count

    def say(self, text: str, keep: bool = False) -> tuple[int, float]:
        """Queue text; returns (utterance, perf_counter just before it was sent)."""
        uid = self.count + 1
        if keep:
            self.rx.wanted.add(uid)
        t0 = time.perf_counter()
        got = self.client.say(text)
        self.count = uid
        self.id_mismatches += got != uid
        return uid, t0

    def stream(self, samples: np.ndarray, rate: int, keep: bool = False) -> tuple[int, threading.Thread, list]:
        """Push a segment in real time from a thread; returns (utterance, thread, [first send time])."""
        uid = self.count + 1
        self.count = uid
        if keep:
            self.rx.wanted.add(uid)
        sent: list[float] = []
        thread = threading.Thread(target=push_realtime, args=(self.client, samples, rate, sent), daemon=True)
        thread.start()
        return uid, thread, sent

    def close(self) -> None:
        self.client.close()
        self.rx.join(timeout=10)


def push_realtime(client: LiveClient, samples: np.ndarray, rate: int, sent: list) -> None:
    """20-ms int16 chunks on the wall clock, as a microphone or a TTS stream delivers them."""
    n = rate * CHUNK_MS // 1000
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    start = time.perf_counter()
    sent.append(start)
    for k, i in enumerate(range(0, len(pcm), n)):
        delay = start + k * CHUNK_MS / 1000 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        client.push_audio(pcm[i:i + n], rate)
    client.end_segment()


def recording(data: Path, name: str = RECORDING) -> np.ndarray:
    """A real recording as float32 mono at PUSH_RATE."""
    return load_audio(data / name, PUSH_RATE).samples


# -- 1. latency ------------------------------------------------------------------------------
def part_latency(args) -> None:
    runs = 3 if args.quick else args.runs
    voice = recording(args.data)
    seg = int((1.0 if args.quick else 2.0) * PUSH_RATE)
    with ServerProcess(args.work) as server:
        sp = Speaker(server.url)
        load = LoadMeter(server).start()
        sp.rx.wait_frames(25)
        uid, t_cold = sp.say("Warm up.")  # the first sentence of a session pays one-off loads
        cold = sp.rx.wait_event("started", uid) - t_cold
        sp.rx.wait_event("finished", uid)
        text, audio, accepted = [], [], []
        for run in range(runs):
            time.sleep(0.5 + 0.013 * run)  # spread the input over the phase of the frame clock
            uid, t0 = sp.say(SENTENCES[run % len(SENTENCES)])
            accepted.append(time.perf_counter() - t0)
            text.append(sp.rx.wait_event("started", uid) - t0)
            sp.rx.wait_event("finished", uid)
        for run in range(runs):
            time.sleep(0.5 + 0.013 * run)
            first = (run * 5 * PUSH_RATE) % (len(voice) - seg)
            uid, thread, sent = sp.stream(voice[first:first + seg], PUSH_RATE)
            started = sp.rx.wait_event("started", uid)
            thread.join()
            audio.append(started - sent[0])
            sp.rx.wait_event("finished", uid)
        lo = load.stop()
        sp.close()
    print("\n== 1. latency: input leaving the client -> first frame of it arriving "
          "(512x512 bundled portrait, 25 fps, 127.0.0.1) ==")
    print(f"{'input':34s} {'median':>7s} {'max':>7s} {'min':>7s}  n")
    print(f"{'text (say)':34s} {1e3 * np.median(text):5.0f}ms {1e3 * max(text):5.0f}ms "
          f"{1e3 * min(text):5.0f}ms {len(text):2d}")
    print(f"{'streamed audio (first 20-ms chunk)':34s} {1e3 * np.median(audio):5.0f}ms "
          f"{1e3 * max(audio):5.0f}ms {1e3 * min(audio):5.0f}ms {len(audio):2d}")
    print("text per run: " + ", ".join(f"{1e3 * t:.0f} ms ({len(SENTENCES[k % len(SENTENCES)].split())} words)"
                                       for k, t in enumerate(text)))
    print(f"first sentence of the session (not counted): {1e3 * cold:.0f} ms; "
          f"'accepted' round trip for text: median {1e3 * np.median(accepted):.1f} ms")
    print("note: these are client-side; the server's own measure (input reaching it -> first frame "
          "leaving it) is <= these by the two 127.0.0.1 hops. Frames leave every 40 ms, so up to 40 ms "
          "is waiting for the frame clock; a streamed mouth is decided once 2 frames (80 ms) of audio are "
          "in (1 frame + 1 look-ahead): the 20-ms chunk completing them leaves 60 ms after the first.")
    print(load_line(lo))
    SUMMARY.append(("latency", "text -> first frame, median / max",
                    f"{1e3 * np.median(text):.0f} / {1e3 * max(text):.0f} ms", f"{len(text)} runs"))
    SUMMARY.append(("latency", "audio chunk -> first frame, median / max",
                    f"{1e3 * np.median(audio):.0f} / {1e3 * max(audio):.0f} ms", f"{len(audio)} runs"))


# -- 2. sustained ----------------------------------------------------------------------------
def part_sustained(args) -> None:
    minutes = 1.0 if args.quick and args.minutes is None else (args.minutes or 10.0)
    voice = recording(args.data)
    seg = 5 * PUSH_RATE
    with ServerProcess(args.work) as server:
        rss_before = server.rss_mb()
        sp = Speaker(server.url)
        load = LoadMeter(server).start()
        t_start = time.perf_counter()
        rss = [(0.0, server.rss_mb())]
        tick, pushes = 0, []
        while time.perf_counter() - t_start < 60 * minutes:
            if tick % 3 == 2:  # an audio segment every third tick, text otherwise
                first = (tick * 7 * PUSH_RATE) % (len(voice) - seg)
                _, thread, _ = sp.stream(voice[first:first + seg], PUSH_RATE)
                pushes.append(thread)
            else:
                sp.say(SENTENCES[tick % len(SENTENCES)])
            time.sleep(max(0.0, t_start + 10 * (tick + 1) - time.perf_counter()))
            rss.append((time.perf_counter() - t_start, server.rss_mb()))
            tick += 1
        for thread in pushes:
            thread.join()
        lo = load.stop()
        arrivals = list(sp.rx.arrivals)
        started = sp.rx.started()
        errors = sp.client.errors
        sp.close()
    figures = frame_figures(arrivals)
    memory = np.array([m for _, m in rss])
    late = np.array([(t, m) for t, m in rss if t >= 60.0])  # past the first minute's one-off loads
    slope = np.polyfit(late[:, 0] / 60, late[:, 1], 1)[0] if len(late) >= 3 else float("nan")
    half = np.array([(t, m) for t, m in rss if t >= 30.0 * minutes])
    slope_half = np.polyfit(half[:, 0] / 60, half[:, 1], 1)[0] if len(half) >= 3 else float("nan")
    print(f"\n== 2. sustained: one session for {minutes:g} min, speech every 10 s "
          f"(text; every 3rd a 5-s streamed recording) ==")
    print(f"frames received       {figures['frames']}  (indices {figures['first']}..{figures['last']}, "
          f"{figures['missing']} index gaps)")
    print(f"pictures dropped      {figures['dropped']} ({100 * figures['drop_share']:.2f}%)")
    print(f"achieved fps          {figures['fps']:.3f}  (frames / elapsed {figures['elapsed']:.1f} s); "
          f"pictures {figures['fps'] * (1 - figures['drop_share']):.2f} per second")
    print(f"inter-arrival         median {figures['gap_p50']:.1f} ms, p99 {figures['gap_p99']:.1f} ms, "
          f"max {figures['gap_max']:.1f} ms; jitter |gap - 40 ms| p99 {figures['jitter_p99']:.1f} ms")
    print("largest gaps          " + ", ".join(f"{g:.0f} ms at {t:.1f} s" for t, g in figures["worst"]))
    print(f"clock                 last index vs client clock: {figures['drift']:+.1f} frames")
    print(f"utterances            {tick} queued, {len(started)} started, speaking frames "
          f"{100 * figures['speaking']:.0f}%, idle frames inside an utterance {figures['underruns']}; "
          f"server errors: {errors or 'none'}")
    print(f"server RSS            before the session {rss_before:.0f} MB; start {memory[0]:.0f} MB, "
          f"end {memory[-1]:.0f} MB, max {memory.max():.0f} MB, min {memory.min():.0f} MB "
          f"({len(memory)} samples, 10 s apart); after the first minute: {slope:+.1f} MB/min, "
          f"over the second half: {slope_half:+.1f} MB/min (linear fits)")
    print("RSS samples (MB):     " + " ".join(f"{m:.0f}" for m in memory))
    print(load_line(lo))
    SUMMARY.append(("sustained", f"fps / drops over {minutes:g} min",
                    f"{figures['fps']:.2f} fps / {100 * figures['drop_share']:.2f}%", "25 fps, 0 drops"))
    SUMMARY.append(("sustained", "inter-arrival jitter p99", f"{figures['jitter_p99']:.1f} ms", ""))
    SUMMARY.append(("sustained", "server RSS start / end / max",
                    f"{memory[0]:.0f} / {memory[-1]:.0f} / {memory.max():.0f} MB",
                    f"flat; {slope_half:+.1f} MB/min over the 2nd half"))


def frame_figures(arrivals: list[Arrival], fps: float = 25.0) -> dict:
    t = np.array([a.t for a in arrivals])
    index = np.array([a.index for a in arrivals])
    gaps = 1e3 * np.diff(t)
    elapsed = t[-1] - t[0]
    dropped = sum(a.dropped for a in arrivals)
    return dict(frames=len(arrivals), first=int(index[0]), last=int(index[-1]),
                missing=int(np.sum(np.diff(index) != 1)), dropped=dropped, drop_share=dropped / len(arrivals),
                fps=(len(arrivals) - 1) / elapsed, elapsed=elapsed,
                gap_p50=np.median(gaps), gap_p99=np.percentile(gaps, 99), gap_max=gaps.max(),
                jitter_p99=np.percentile(np.abs(gaps - 1e3 / fps), 99),
                drift=(index[-1] - index[0]) - elapsed * fps, underruns=underruns(arrivals),
                worst=[(t[k + 1] - t[0], gaps[k]) for k in sorted(np.argsort(gaps)[-3:])],
                speaking=np.mean([a.utterance is not None for a in arrivals]))


def underruns(arrivals: list[Arrival]) -> int:
    """Idle frames between two frames of the same utterance: its speech ran dry mid-way."""
    count, last, idle = 0, None, 0
    for a in arrivals:
        if a.utterance is None:
            idle += 1
            continue
        count += idle if a.utterance == last else 0
        last, idle = a.utterance, 0
    return count


# -- tracking and curves (parts 3 and 5) ------------------------------------------------------
def track_images(images) -> np.ndarray:
    """(T, 478, 3) landmarks of every picture, NaN where none (a dropped picture or no face).
    Static mode on every frame, like bench_lipsync.track_video, so file and live match."""
    from avatar.face.tracker import FaceTracker

    rows = []
    with FaceTracker(static=True, max_faces=1) as tracker:
        for image in images:
            faces = tracker.detect(image) if image is not None else []
            rows.append(faces[0].landmarks if faces else np.full((478, 3), np.nan, np.float32))
    return np.stack(rows)


def envelope_db(pcm_frames) -> np.ndarray:
    """(T,) loudness in dB of each frame's audio (int16 or float pieces)."""
    out = []
    for piece in pcm_frames:
        x = np.asarray(piece, np.float64)
        if np.issubdtype(np.asarray(piece).dtype, np.integer):
            x = x / 32768.0
        out.append(10 * np.log10(np.mean(x * x) + 1e-8))
    return np.array(out)


def best_lag(opening: np.ndarray, envelope: np.ndarray, max_lag: int = LAG_SEARCH) -> tuple[float, float]:
    """(lag in frames, r): opening[n] best matches envelope[n - lag] (positive: the mouth
    follows the sound). Sub-frame by a parabola through the peak and its neighbours."""
    from avatar.metrics.lipsync import pearson

    T = min(len(opening), len(envelope))
    lags = np.arange(-max_lag, max_lag + 1)
    rs = np.array([pearson(opening[max(0, L):T + min(0, L)], envelope[max(0, -L):T - max(0, L)])
                   for L in lags])
    k = int(np.nanargmax(rs))
    shift = 0.0
    if 0 < k < len(rs) - 1:
        a, b, c = rs[k - 1], rs[k], rs[k + 1]
        if a - 2 * b + c < 0:
            shift = 0.5 * (a - c) / (a - 2 * b + c)
    return float(lags[k] + shift), float(rs[k])


def pcm_offset_ms(received: np.ndarray, reference: np.ndarray, rate: int = 24000, max_ms: float = 200.0) -> float:
    """Delay of the audio played (float samples) behind the audio sent (cross-correlation
    peak within +-max_ms; positive: the played audio is late)."""
    a, b = np.asarray(received, np.float64), np.asarray(reference, np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    m = int(max_ms * rate / 1000)
    lags = np.r_[np.arange(0, m + 1), np.arange(-m, 0)]
    return 1e3 * lags[int(np.argmax(np.r_[corr[:m + 1], corr[-m:]]))] / rate


def frame_pieces(samples: np.ndarray, rate: int, fps: float, count: int) -> list[np.ndarray]:
    """The audio playing under each of ``count`` frames of a file."""
    spf = rate / fps
    return [samples[round(k * spf):round((k + 1) * spf)] for k in range(count)]


# -- 3. A/V offset ---------------------------------------------------------------------------
def part_avsync(args) -> None:
    from avatar.audio.tts import synthesize

    sources = [("TTS words in silence, streamed", burst_track(5 if args.quick else len(AV_GAPS))),
               ("TTS sentences streamed", resample(synthesize(av_text()).audio, PUSH_RATE).samples)]
    if not args.quick:
        sources.append((f"{Path(AV_RECORDING).stem[:14]} streamed", recording(args.data, AV_RECORDING)))
    live = {}
    with ServerProcess(args.work) as server:
        load = LoadMeter(server).start()
        for name, samples in sources:
            live[name] = live_utterance(server.url, samples)
        live["text (say) live"] = live_text(server.url, av_text())
        lo = load.stop()
    rows = []  # tracking and file rendering only once the server is gone: they would load the CPU
    for k, (name, samples) in enumerate(sources + [("text (say) live", None)]):
        frames, gaps = live[name]
        sent = text_phones(av_text())[2] if samples is None else resample(Audio(samples, PUSH_RATE), 24000).samples
        pcm = pcm_offset_ms(np.concatenate([f.audio for f in frames]) / 32768.0, sent)
        lag_l, r_l = live_lag(frames)
        lag_f, r_f, pcm_f = file_lag(args.work / f"av_{k}", samples)
        ref = streamed_lag(samples) if samples is not None else (lag_f, r_f)
        rows.append((name, len(frames), dropped(frames), gaps, pcm, pcm_f, lag_l, r_l, lag_f, r_f, *ref))
    print_avsync(rows)
    print(load_line(lo))


def live_lag(frames: list) -> tuple[float, float]:
    """Lag of the mouth seen in received pictures behind the audio those frames carry."""
    from avatar.metrics.lipsync import mouth_opening

    return best_lag(mouth_opening(track_images(f.image for f in frames)), envelope_db(f.audio for f in frames))


def file_lag(stem: Path, samples: np.ndarray | None) -> tuple[float, float, float]:
    """The same lag on the mp4 avatar.speak writes (audio ``samples`` or, if None, the text);
    (lag, r, delay of the mp4's audio track behind its input in ms)."""
    import avatar
    from avatar.image import bundled_portrait
    from avatar.metrics.lipsync import mouth_opening
    from avatar.video.reader import iter_frames, probe, read_audio_track

    out = stem.with_suffix(".mp4")
    if samples is None:
        result = avatar.speak(bundled_portrait(), out, text=av_text())
    else:
        save_wav(Audio(samples, PUSH_RATE), stem.with_suffix(".wav"))
        result = avatar.speak(bundled_portrait(), out, audio=stem.with_suffix(".wav"))
    fps = probe(out).fps
    opening = mouth_opening(track_images(iter_frames(out)))
    track = read_audio_track(out, 24000).samples
    lag, r = best_lag(opening, envelope_db(frame_pieces(track, 24000, fps, len(opening))))
    return lag, r, pcm_offset_ms(track, resample(result.speech.audio, 24000).samples)


def streamed_lag(samples: np.ndarray) -> tuple[float, float]:
    """The streamed mouth (avatar.live.audio_stream) run offline on the same audio: its jawOpen
    curve's lag behind the sound, i.e. the lag the live path should show if transport adds none."""
    from avatar.live.audio_stream import StreamedMouth

    mouth, frames, n = StreamedMouth(PUSH_RATE, 25.0), [], PUSH_RATE * CHUNK_MS // 1000
    for i in range(0, len(samples), n):
        mouth.push(samples[i:i + n])
        frames += mouth.pull()
    mouth.end()
    frames += mouth.pull()
    jaw = np.array([actions.get("jawOpen", 0.0) for actions, _ in frames])
    return best_lag(jaw, envelope_db(a for _, a in frames))


def print_avsync(rows: list[tuple]) -> None:
    print("\n== 3. A/V offset: lag maximising corr(mouth opening[n], audio dB[n - lag]); "
          "+ = mouth after sound ==")
    print(f"{'input':30s} {'frames':>6s} {'drop':>4s} {'gaps':>4s} {'pcm live/file':>13s} {'live lag':>9s} {'r':>5s} "
          f"{'file lag':>9s} {'r':>5s} {'live - file':>11s} {'ref lag':>8s} {'live - ref':>10s}")
    ms = 1e3 / 25.0
    for name, n, drops, gaps, pcm, pcm_f, lag_l, r_l, lag_f, r_f, lag_ref, _ in rows:
        offset, off_ref = (lag_l - lag_f) * ms, (lag_l - lag_ref) * ms
        edge = " (a lag at the search edge)" if max(abs(lag_l), abs(lag_f)) >= LAG_SEARCH - 0.5 else ""
        print(f"{name:30s} {n:6d} {drops:4d} {gaps:4d} {pcm:5.0f}/{pcm_f:3.0f} ms {lag_l * ms:7.0f}ms {r_l:5.2f} "
              f"{lag_f * ms:7.0f}ms {r_f:5.2f} {offset:+9.0f}ms {'ok' if abs(offset) <= AV_GOAL_MS else 'OVER'} "
              f"{lag_ref * ms:5.0f}ms {off_ref:+8.0f}ms{edge}")
        SUMMARY.append(("avsync", f"A/V offset, {name}", f"{offset:+.0f} ms vs file, {off_ref:+.0f} vs ref",
                        f"within +-{AV_GOAL_MS:g} ms"))
    print("live lag: received pictures (tracked) against the audio the same frames carry; file lag: the mp4 "
          "avatar.speak writes from the same input, decoded and tracked the same way (for audio input the "
          "file path's mouth comes from recognised phones, not the streamed loudness mouth, so live - file "
          "mixes two mouth models); ref lag: the same mouth model as live without the server - the streamed "
          "mouth run offline on the same audio (its jawOpen), or for text the file lag. gaps: idle frames "
          "inside the live utterance (left out); drop: pictures dropped by the server; pcm: delay of the "
          "audio the frames (live) or the mp4's track (file) carry behind the audio sent")


def av_text() -> str:
    """Several sentences: a 3-s sentence alone has a syllable rhythm that gives twin lag peaks."""
    return f"{AV_TEXT} {lip_text()}"


def burst_track(count: int) -> np.ndarray:
    """Silence with ``count`` short synthesised words at irregular gaps (PUSH_RATE samples)."""
    from avatar.audio.tts import synthesize

    pieces = [np.zeros(PUSH_RATE // 2, np.float32)]
    for k in range(count):
        word = resample(synthesize(AV_WORDS[k % len(AV_WORDS)]).audio, PUSH_RATE).samples
        loud = np.nonzero(np.abs(word) > 0.05)[0]  # trim the TTS's own leading / trailing silence
        pieces += [word[max(0, loud[0] - 320):loud[-1] + 640], np.zeros(round(AV_GAPS[k] * PUSH_RATE), np.float32)]
    return np.concatenate(pieces)


def live_utterance(url: str, samples: np.ndarray, photo=None) -> tuple[list, int]:
    """Stream ``samples`` (PUSH_RATE) in real time as one segment; (its frames, idle frames inside it)."""
    sp = Speaker(url, photo)
    sp.rx.wait_frames(10)
    uid, thread, _ = sp.stream(samples, PUSH_RATE, keep=True)
    thread.join()
    sp.rx.wait_event("finished", uid, timeout=60)
    frames, gaps = sp.rx.kept.get(uid, []), inside_gaps(sp.rx.arrivals, uid)
    sp.close()
    return frames, gaps


def live_text(url: str, text: str) -> tuple[list, int]:
    sp = Speaker(url)
    sp.rx.wait_frames(10)
    uid, _ = sp.say(text, keep=True)
    sp.rx.wait_event("finished", uid, timeout=120)
    frames, gaps = sp.rx.kept.get(uid, []), inside_gaps(sp.rx.arrivals, uid)
    sp.close()
    return frames, gaps


def dropped(frames: list) -> int:
    return sum(not f.jpeg for f in frames)


def inside_gaps(arrivals: list[Arrival], uid: int) -> int:
    """Frames of no utterance between the first and last frame of ``uid`` (the buffer ran dry)."""
    ks = [k for k, a in enumerate(arrivals) if a.utterance == uid]
    return sum(arrivals[k].utterance is None for k in range(ks[0], ks[-1])) if ks else 0


# -- 4. concurrency --------------------------------------------------------------------------
def part_concurrency(args) -> None:
    counts = [1, 2] if args.quick else args.sessions
    seconds = 8.0 if args.quick else args.seconds
    print(f"\n== 4. concurrency: N sessions at once, text every 10 s in each, {seconds:g} s measured "
          f"(server --max-sessions 8) ==")
    print(f"{'N':>2s}  {'fps per session':40s} {'drops per session':34s} {'srv cores':>9s} {'RSS':>6s}  holds")
    held, all_held = 0, True
    with ServerProcess(args.work, max_sessions=8) as server:
        for n in counts:
            rows, lo, rss = run_sessions(server, n, seconds)
            ok = all(r["fps"] >= HOLD_FPS and r["drop_share"] < HOLD_DROPS for r in rows)
            all_held = all_held and ok
            held = n if all_held else held
            print(f"{n:2d}  {fps_list(rows):40s} {drop_list(rows):34s} "
                  f"{lo['server']:9.2f} {rss:5.0f}M  {'yes' if ok else 'no'}  (other load {lo['other']:.2f})")
    print(f"sessions that hold 25 fps (>= {HOLD_FPS} received, < {100 * HOLD_DROPS:g}% dropped): {held}")
    SUMMARY.append(("concurrency", "sessions holding 25 fps", str(held), f"of {max(counts)} tried"))
    refuse_check(args, seconds)


def run_sessions(server: ServerProcess, n: int, seconds: float) -> tuple[list[dict], dict, float]:
    """Open n sessions, each speaking every 10 s (staggered), measure ``seconds`` of frames after 2 s."""
    speakers = [Speaker(server.url) for _ in range(n)]
    t_open = time.perf_counter()
    t0, t1 = t_open + 2.0, t_open + 2.0 + seconds
    due = [t_open + 10.0 * k / n for k in range(n)]  # the sessions' TTS does not all start at once
    said, rss, load = 0, 0.0, None
    while (now := time.perf_counter()) < t1:
        for k, sp in enumerate(speakers):
            if now >= due[k]:
                sp.say(f"{SENTENCES[said % len(SENTENCES)]} {SENTENCES[(said + 3) % len(SENTENCES)]}")
                said, due[k] = said + 1, due[k] + 10.0
        if now >= t0 and load is None:
            load = LoadMeter(server).start()
        rss = max(rss, server.rss_mb())
        time.sleep(0.05)
    lo = load.stop()
    rows = [window_figures(sp.rx.window(t0, t1), seconds) for sp in speakers]
    for sp in speakers:
        sp.close()
    time.sleep(1.0)  # let the server free them before the next round
    return rows, lo, rss


def window_figures(arrivals: list[Arrival], seconds: float) -> dict:
    dropped = sum(a.dropped for a in arrivals)
    return dict(fps=len(arrivals) / seconds, drop_share=dropped / max(1, len(arrivals)))


def fps_list(rows: list[dict]) -> str:
    return " ".join(f"{r['fps']:5.2f}" for r in rows)


def drop_list(rows: list[dict]) -> str:
    return " ".join(f"{100 * r['drop_share']:4.1f}%" for r in rows)


def post_session(url: str) -> tuple[int, dict]:
    """POST /api/sessions with the bundled portrait; (HTTP status, JSON reply)."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="motion"\r\n\r\nrules\r\n'
            f"--{boundary}--\r\n").encode()
    request = urllib.request.Request(f"{url}/api/sessions", body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def delete_session(url: str, session_id: str) -> None:
    request = urllib.request.Request(f"{url}/api/sessions/{session_id}", method="DELETE")
    with urllib.request.urlopen(request, timeout=10):
        pass


def refuse_check(args, seconds: float) -> None:
    """With the default --max-sessions, one more session is refused (503) and the others go on."""
    window = min(6.0, seconds)
    with ServerProcess(args.work) as server:
        limit = server.info["max_sessions"]
        speakers = [Speaker(server.url) for _ in range(limit)]
        for k, sp in enumerate(speakers):  # ~20 s of speech each: both windows speak
            sp.say(" ".join(SENTENCES[(k + j) % len(SENTENCES)] for j in range(len(SENTENCES))))
        time.sleep(6.0)  # past the burst of synthesis (a text's sentences are synthesised ahead)
        t0 = time.perf_counter()
        time.sleep(window)
        t1 = time.perf_counter()
        refused = [post_session(server.url) for _ in range(3)]  # a client retrying at once
        status, reply = refused[0]
        t2 = time.perf_counter()
        time.sleep(window)
        t3 = time.perf_counter()
        before = [window_figures(sp.rx.window(t0, t1), t1 - t0) for sp in speakers]
        after = [window_figures(sp.rx.window(t2, t3), t3 - t2) for sp in speakers]
        open_now = get_json(f"{server.url}/api/info")["sessions"]
        speakers.pop().close()
        time.sleep(1.0)
        status_freed, reply_freed = post_session(server.url)  # a slot is free again
        if status_freed == 200:
            delete_session(server.url, reply_freed["id"])
        for sp in speakers:
            sp.close()
    print(f"\ndefault --max-sessions = {limit}: {limit} sessions open, one more POST /api/sessions -> "
          f"HTTP {status}: {reply.get('error')!r} (3 tries: {' '.join(str(c) for c, _ in refused)})")
    print(f"  sessions open after the refusal: {open_now}; after one closed, a new POST -> HTTP {status_freed}"
          f"{'' if status_freed == 200 else ' ' + repr(reply_freed.get('error'))}")
    print(f"  fps before the refused request: {fps_list(before)}")
    print(f"  fps after it:                   {fps_list(after)}")
    print(f"  drops before / after: {drop_list(before)} / {drop_list(after)}")
    keep = all(abs(a["fps"] - b["fps"]) < 0.5 for a, b in zip(before, after))
    SUMMARY.append(("concurrency", f"session {limit + 1} with default max_sessions",
                    f"HTTP {status}", "503, clear message"))
    SUMMARY.append(("concurrency", "running sessions keep fps (+-0.5)", "yes" if keep else "no",
                    f"{min(r['fps'] for r in after):.2f}-{max(r['fps'] for r in after):.2f} fps after"))


# -- 5. lips -----------------------------------------------------------------------------------
def part_lips(args) -> None:
    import cv2

    import avatar
    from avatar.video.reader import iter_frames, probe

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_selfreenact import measure, real_track

    clips = [args.data / "talking_face" / c for c in (LIP_CLIPS[:1] if args.quick else args.clips)]
    photos, lives, pcm = {}, {}, {}
    with ServerProcess(args.work) as server:
        load = LoadMeter(server).start()
        for clip in clips:
            if probe(clip).fps != 25.0:
                print(f"skipping {clip.name}: {probe(clip).fps:g} fps (the server streams 25)")
                continue
            photos[clip] = args.work / f"photo_{clip.stem}.png"
            cv2.imwrite(str(photos[clip]), cv2.cvtColor(next(iter(iter_frames(clip))), cv2.COLOR_RGB2BGR))
            lives[clip] = live_utterance(server.url, load_audio(clip, PUSH_RATE).samples, photos[clip])
            sent = resample(load_audio(clip, PUSH_RATE), 24000).samples
            pcm[clip] = pcm_offset_ms(np.concatenate([f.audio for f in lives[clip][0]]) / 32768.0, sent)
        text_frames, text_gaps = live_text(server.url, lip_text())
        lo = load.stop()
    print("\n== 5. lips: streamed audio (live, audio-only rules mouth) vs file mode (avatar.speak) ==")
    print(f"{'clip':30s} {'frames':>6s} {'drop':>4s} {'gaps':>4s} {'pcm':>5s} {'r live':>6s} {'r file':>6s} "
          f"{'floor':>6s} {'recall live/file':>17s} {'false live/file':>16s}")
    pooled_live, pooled_file = [], []
    for clip, (frames, gaps) in lives.items():
        real = real_track(clip, args.work)
        live = measure(real, track_images(f.image for f in frames), 25.0)
        out = args.work / f"file_{clip.stem}.mp4"
        avatar.speak(photos[clip], out, audio=clip, fps=25.0)
        file = measure(real, track_images(iter_frames(out)), 25.0)
        pooled_live.append(live["curves"])
        pooled_file.append(file["curves"])
        print(f"{clip.stem[:30]:30s} {len(frames):6d} {dropped(frames):4d} {gaps:4d} {pcm[clip]:3.0f}ms "
              f"{live['r']:6.2f} {file['r']:6.2f} {live['floor']:6.2f} "
              f"{live['recall']:8.2f}/{file['recall']:.2f} ({live['closures']:2d}) "
              f"{100 * live['false']:6.1f}%/{100 * file['false']:.1f}%")
    if lives:
        r_live, r_file = pooled_r(pooled_live), pooled_r(pooled_file)
        print(f"{'POOLED':30s} {'':6s} {'':4s} {'':4s} {'':5s} {r_live:6.2f} {r_file:6.2f}")
        print("r: Pearson r of mouth opening (gap / mouth width) with the real person's; floor: the real "
              "curve against itself 1 s later; recall: real closures the output also closes (+-2 frames); "
              "false: wide-open real frames the output closes; gaps, pcm: as in part 3")
        SUMMARY.append(("lips", "opening r vs real, streamed audio / file", f"{r_live:.2f} / {r_file:.2f}",
                        f"{len(lives)} clips pooled"))
    text_closures(args, text_frames, text_gaps)
    print(load_line(lo))


def pooled_r(curves: list[tuple[np.ndarray, np.ndarray]]) -> float:
    from avatar.metrics.lipsync import pearson

    return pearson(np.concatenate([o for _, o in curves]), np.concatenate([r for r, _ in curves]))


def lip_text() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_lipsync import TEXT

    return TEXT


def text_phones(text: str, fps: float = 25.0) -> tuple[list, int, np.ndarray]:
    """The phones of ``text`` as the server speaks it: sentence by sentence, each sentence
    taking ceil(duration * fps) frames (LiveSession._speak); (phones, frames, 24-kHz audio)."""
    from avatar.audio.speech import cover_timeline
    from avatar.audio.tts import split_text, synthesize
    from avatar.audio.types import Phone

    phones, frames, audio = [], 0, []
    for sentence in (s for s in split_text(text) if s.strip()):
        speech = synthesize(sentence)
        offset = frames / fps
        phones += [Phone(p.label, p.start + offset, p.end + offset)
                   for p in cover_timeline(speech.phones, speech.audio.duration)]
        T = int(np.ceil(speech.audio.duration * fps))
        piece = np.zeros(T * 960, np.float32)
        out = resample(speech.audio, 24000).samples[:len(piece)]
        piece[:len(out)] = out
        audio.append(piece)
        frames += T
    return phones, frames, np.concatenate(audio)


def text_closures(args, frames: list, gaps: int) -> None:
    from avatar.image import bundled_portrait
    from avatar.metrics.lipsync import bilabial_closure, mouth_opening, pearson

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_lipsync import measure as file_measure

    text = lip_text()
    phones, expected, audio = text_phones(text)
    received = np.concatenate([f.audio for f in frames]).astype(np.float32) / 32768.0
    opening = mouth_opening(track_images(f.image for f in frames))
    ok = np.isfinite(opening)
    live, n = bilabial_closure(np.where(ok, opening, np.inf), phones, 25.0)
    file = file_measure(str(bundled_portrait()), 0, args.work)
    print("\np/b/m closures of streamed text (say) vs file mode, bundled portrait, bench_lipsync's text:")
    print(f"  live: {100 * live:.1f}% of {n} p/b/m phones closed ({len(frames)} frames, expected {expected}, "
          f"{dropped(frames)} pictures dropped; "
          f"{gaps} idle frames inside; received audio vs local TTS r = {pearson(received, audio):.3f}; "
          f"face tracked in {100 * ok.mean():.0f}%)")
    print(f"  file: {100 * file['closure']:.1f}% of {file['bilabials']} p/b/m phones closed "
          f"({file['frames']} frames, face tracked in {100 * file['tracked']:.0f}%)")
    SUMMARY.append(("lips", "p/b/m closed, streamed text / file", f"{100 * live:.0f}% / {100 * file['closure']:.0f}%",
                    "goal >= 90%, like file mode"))


# -- main ----------------------------------------------------------------------------------
PARTS = {"latency": part_latency, "avsync": part_avsync, "concurrency": part_concurrency, "lips": part_lips,
         "sustained": part_sustained}


def print_summary() -> None:
    print("\n== summary ==")
    print(f"{'part':12s} {'figure':44s} {'value':34s} goal / note")
    for part, name, value, note in SUMMARY:
        print(f"{part:12s} {name:44s} {value:34s} {note}")


def main() -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", type=Path, default=DATA, help=f"the shared media folder (default {DATA})")
    common.add_argument("--quick", action="store_true", help="a short smoke run of each part")
    common.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temp folder)")
    common.add_argument("--runs", type=int, default=8, help="latency: runs per input kind")
    common.add_argument("--minutes", type=float, default=None, help="sustained: minutes (default 10; 1 with --quick)")
    common.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6],
                        help="concurrency: session counts to try")
    common.add_argument("--seconds", type=float, default=20.0, help="concurrency: seconds measured per count")
    common.add_argument("--clips", nargs="+", default=LIP_CLIPS, help="lips: clips under DATA/talking_face")
    common.add_argument("--server-env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="extra environment for the server process, e.g. OPENBLAS_NUM_THREADS=1")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="part", required=True)
    for name in [*PARTS, "all"]:
        sub.add_parser(name, parents=[common], help=f"run {'every part' if name == 'all' else 'the ' + name + ' part'}")
    args = ap.parse_args()
    ServerProcess.env = dict(item.split("=", 1) for item in args.server_env)
    args.work = args.work or Path(tempfile.mkdtemp(prefix="bench_serve_"))
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"bench_serve {args.part}{' --quick' if args.quick else ''}: {os.cpu_count()} cores, "
          f"loadavg {os.getloadavg()[0]:.2f} at start; server env {ServerProcess.env or 'unchanged'}; "
          f"scratch {args.work}")
    for name in (PARTS if args.part == "all" else [args.part]):
        PARTS[name](args)
    print_summary()


if __name__ == "__main__":
    main()
