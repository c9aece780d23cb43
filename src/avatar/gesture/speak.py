"""``avatar speak --avatar NAME``: new speech -> a video made of the person's own frames.

1. Retrieval (TANGO §3.2): the speech's AuMoCLIP embeddings are compared with every graph
   node's motion embeddings (low level per frame + high level per window), and dynamic
   programming picks the path through the pruned graph with the best total similarity,
   paying a penalty per jump so long runs of real frames win.
2. Transitions (TANGO §3.3): where the path jumps, the frames around the jump are replaced
   by in-between frames made from the real frames just before and after it.
3. Lips (TANGO §2: lip sync as a separate stage): every frame's mouth is re-rendered to the
   new speech (the engine's motion generator; avatar.render.reenact warps the lower face),
   with the mouth interior taken from the person's own frames where a similar mouth shape
   exists (avatar.render.mouth_bank).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from avatar.audio.types import AudioFeatures, Speech
from avatar.config import GESTURE
from avatar.gesture.bundle import Bundle

Log = Callable[[str], None]

# Cost of a jump, in standard deviations of the similarity scores (so it does not depend
# on how peaked a model's similarities are): ~2 s runs of real frames between jumps.
JUMP_PENALTY = 3.0
MIN_RUN_NODES = 2  # a run between jumps is at least this many nodes (room for the transitions)


def _silent(_: str) -> None:
    pass


@dataclass
class Transition:
    """Output frames [start, stop) synthesised between two real source frames."""

    start: int
    stop: int
    before: int  # source frame shown just before (output frame start - 1)
    after: int  # source frame shown just after (output frame stop)


@dataclass
class Plan:
    """Which source frame each output frame shows."""

    source: np.ndarray  # (T,) int source frame per output frame (the run's frame inside transitions)
    nodes: np.ndarray  # (S,) pruned-graph node per slot of node_frames output frames
    transitions: list[Transition] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.source)

    @property
    def jumps(self) -> int:
        return len(self.transitions)


@dataclass
class AvatarSpeakResult:
    output: Path
    plan: Plan
    speech: Speech
    features: AudioFeatures
    timings: dict[str, float] = field(default_factory=dict)


# -- retrieval ----------------------------------------------------------------------------
def node_frames(bundle: Bundle) -> np.ndarray:
    """(N, node_frames) source frame indices of every node of the pruned graph."""
    return bundle.graph.starts[:, None] + np.arange(GESTURE.node_frames)[None]


def retrieval_scores(bundle: Bundle, audio_low: np.ndarray, audio_high: np.ndarray) -> np.ndarray:
    """(S, N) similarity of each output slot's audio to each node's motion (TANGO §3.2).

    Low level: mean cosine of the slot's frames with the node's frames, frame by frame.
    High level: cosine of the window embeddings at the slot's and the node's centres.
    """
    k = GESTURE.node_frames
    num_slots = -(-len(audio_low) // k)
    pad = num_slots * k - len(audio_low)
    low = np.pad(audio_low, ((0, pad), (0, 0)), mode="edge").reshape(num_slots, -1)  # (S, k*D)
    frames = node_frames(bundle)  # (N, k)
    motion_low = bundle.motion_low[frames].reshape(len(frames), -1)  # (N, k*D)
    centre = np.minimum(np.arange(num_slots) * k + k // 2, len(audio_high) - 1)
    high = audio_high[centre] @ bundle.motion_high[frames[:, k // 2]].T  # (S, N)
    return (low @ motion_low.T) / k + high


def plan_video(bundle: Bundle, scores: np.ndarray, num_frames: int,
               jump_penalty: float = JUMP_PENALTY) -> Plan:
    """Best path through the graph for ``scores`` (S, N), laid out as output frames;
    ``jump_penalty`` in standard deviations of the scores."""
    from avatar.gesture.retrieval import best_path

    penalty = jump_penalty * float(scores.std())
    nodes = best_path(bundle.graph, scores, penalty, min_run=MIN_RUN_NODES)  # (S,)
    source = node_frames(bundle)[nodes].reshape(-1)[:num_frames]
    transitions = []
    half = transition_length(bundle.fps) // 2
    k = GESTURE.node_frames
    for s in range(1, len(nodes)):
        if bundle.graph.is_natural(nodes[s - 1], nodes[s]):
            continue
        boundary = s * k
        start, stop = max(boundary - half, 1), min(boundary + half, num_frames - 1)
        if stop <= start or boundary >= num_frames:
            continue
        transitions.append(Transition(start, stop, int(source[start - 1]), int(source[stop])))
    return Plan(source, nodes, transitions)


def transition_length(fps: float) -> int:
    """In-between frames per jump: the paper's 8 at 30 fps, scaled to ``fps``, even."""
    return max(2, 2 * round(GESTURE.transition_frames * fps / GESTURE.reference_fps / 2))


# -- frames -------------------------------------------------------------------------------
def smoothed_faces(bundle: Bundle) -> np.ndarray:
    """(T, 478, 3) face landmarks smoothed along source time; gaps keep NaN."""
    from avatar.data.track import smooth_landmarks

    return smooth_landmarks(bundle.body.face)


class FrameSource:
    """The plan's frames before the lips are redone: real frames, or in-between frames."""

    def __init__(self, bundle: Bundle, plan: Plan, faces: np.ndarray):
        self.bundle, self.plan, self.faces = bundle, plan, faces
        self.store = bundle.frame_store()
        self._transition_at = {t.start: t for t in plan.transitions}
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # in-between frames + faces

    def close(self) -> None:
        self.store.close()

    def in_transition(self, i: int) -> bool:
        return any(t.start <= i < t.stop for t in self.plan.transitions)

    def frames(self):
        """Yield (frame (H, W, 3) uint8, face landmarks (478, 3) or NaN) per output frame."""
        width, height = self.bundle.size
        for i in range(self.plan.num_frames):
            if i in self._transition_at:
                self._pending = self._in_between(self._transition_at[i])
            if self._pending:
                yield self._pending.pop(0)
                continue
            src = int(self.plan.source[i])
            yield self.store[src][:height, :width], self.faces[src]

    def _in_between(self, t: Transition) -> list[tuple[np.ndarray, np.ndarray]]:
        """TANGO §3.3: frames from the real frames before and after a jump."""
        from avatar.body.types import POSE_2D_BONES
        from avatar.render.transition import in_between

        body, (width, height) = self.bundle.body, self.bundle.size
        a, b = self.store[t.before][:height, :width], self.store[t.after][:height, :width]
        n = t.stop - t.start
        # The poses one frame further out set how fast the motion leaves a and reaches b.
        before, after = max(t.before - 1, 0), min(t.after + 1, body.num_frames - 1)
        frames = in_between(a, b, n, body.pose_2d(t.before), body.pose_2d(t.after),
                            body.person_mask(t.before), body.person_mask(t.after), bones=POSE_2D_BONES,
                            pose_before=body.pose_2d(before), pose_after=body.pose_2d(after))
        alphas = np.arange(1, n + 1) / (n + 1)
        fa, fb = self.faces[t.before], self.faces[t.after]
        return [(f, (1 - w) * fa + w * fb) for f, w in zip(frames, alphas)]


# -- the whole job ------------------------------------------------------------------------
def speak_avatar(avatar, output, audio=None, text: str | None = None, transcript: str | None = None,
                 seed: int = 0, lips: str = "rules", checkpoint: str | None = None,
                 jump_penalty: float = JUMP_PENALTY, progress: bool = True,
                 log: Log = _silent, loaded: tuple[Speech, AudioFeatures] | None = None) -> AvatarSpeakResult:
    """Enrolled avatar + speech -> a video of the person's own frames at ``output``.
    ``loaded``: the speech already analysed (at the avatar's frame rate) instead of
    ``audio`` / ``text``."""
    from avatar.audio.speech import load_speech
    from avatar.generators.base import Controls
    from avatar.generators.registry import get_generator
    from avatar.gesture.bundle import load_bundle
    from avatar.pipeline import check_output

    output = Path(output)
    check_output(output, {"--audio": audio, "--checkpoint": checkpoint})
    generator = get_generator(lips, **({"checkpoint": checkpoint} if checkpoint else {}))
    clock = _Clock()
    bundle = load_bundle(avatar)
    log(f"avatar '{bundle.name}': {bundle.num_frames} frames at {bundle.fps:g} fps, "
        f"{bundle.graph.num_nodes} graph nodes")
    if loaded is None or abs(loaded[1].fps - bundle.fps) > 1e-6:
        log("synthesising speech" if text is not None else "analysing the speech")
        loaded = load_speech(audio_path=audio, text=text, transcript=transcript, fps=bundle.fps)
    speech, features = loaded
    clock.lap("speech")
    plan = retrieve(bundle, speech, features, jump_penalty)
    clock.lap("retrieval")
    mouth = generator.generate(speech, features, Controls(), seed=seed)  # only its lips are used
    clock.lap("lips")
    log(f"rendering {plan.num_frames} frames at {bundle.size[0]}x{bundle.size[1]} "
        f"({plan.jumps} jump(s) between runs of real frames)")
    render_plan(bundle, plan, mouth, speech, output, progress=progress)
    clock.lap("render")
    return AvatarSpeakResult(output, plan, speech, features, clock.total())


def retrieve(bundle: Bundle, speech: Speech, features: AudioFeatures,
             jump_penalty: float = JUMP_PENALTY) -> Plan:
    """TANGO §3.2: embed the speech with the avatar's AuMoCLIP and plan the frames."""
    from avatar.gesture.aumoclip import audio_embeddings, audio_inputs

    embedded = audio_embeddings(bundle.model(), audio_inputs(features, speech))
    scores = retrieval_scores(bundle, embedded.low, embedded.high)
    return plan_video(bundle, scores, features.num_frames, jump_penalty)


def render_plan(bundle: Bundle, plan: Plan, mouth, speech: Speech, output: Path,
                progress: bool = True) -> None:
    """Stream the plan's frames, lips redone to ``mouth`` (MotionSeq), with the speech."""
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    from avatar.pipeline import BackgroundWriter
    from avatar.render.reenact import FaceReRenderer
    from avatar.video.writer import VideoWriter

    width, height = bundle.size
    source = FrameSource(bundle, plan, smoothed_faces(bundle))
    lips = FaceReRenderer(bundle.mouth_bank())
    try:
        with VideoWriter(output, width, height, fps=bundle.fps, audio=speech.audio) as writer, \
                threadpool_limits(limits=1, user_api="blas"), BackgroundWriter(writer) as background:
            frames = tqdm(source.frames(), total=plan.num_frames, desc="rendering", unit="frame",
                          disable=not progress, leave=False, mininterval=0.5)
            for i, (frame, face) in enumerate(frames):
                if i and plan.source[i] != plan.source[i - 1] + 1 and not source.in_transition(i):
                    lips.reset()  # a new run: its mouth interior need not follow the last one
                if np.isfinite(face[0, 0]):
                    frame = lips.render(frame, face, mouth[min(i, len(mouth) - 1)])
                background.write(frame)
    finally:
        source.close()


class _Clock:
    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now

    def total(self) -> dict[str, float]:
        return {**self.laps, "total": time.perf_counter() - self.start}
