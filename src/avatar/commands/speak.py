"""``avatar speak (--image PHOTO | --avatar NAME) (--audio FILE | --text "...") -o OUT.mp4``
and ``avatar demo``."""

from __future__ import annotations

import argparse
import math

from avatar.commands import FPS_RANGE, number, seed, stderr_log
from avatar.config import VIDEO
from avatar.generators import registry
from avatar.generators.base import EMOTIONS
from avatar.image import MAX_VIDEO_SIDE, MIN_SIDE, bundled_portrait

DEMO_TEXT = ("Hello! I am a talking portrait made by avatar. I run offline on an ordinary "
             "computer, and my lips, my eyes and my head all follow the speech.")
DEMO_OUTPUT = "avatar_demo.mp4"
GAZE_NAMES = {"camera": (0.0, 0.0), "left": (-15.0, 0.0), "right": (15.0, 0.0),
              "up": (0.0, 12.0), "down": (0.0, -12.0)}
MAX_GAZE_DEGREES = 45.0  # further, the iris would leave the eye


def gaze(value: str) -> tuple[float, float]:
    """'camera', 'left', ... or 'X,Y' in degrees (x to the image's right, y up)."""
    if value in GAZE_NAMES:
        return GAZE_NAMES[value]
    try:
        x, y = (float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected X,Y in degrees (e.g. 10,-5) or one of {', '.join(GAZE_NAMES)}, got {value!r}") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_GAZE_DEGREES for v in (x, y)):
        raise argparse.ArgumentTypeError(f"X and Y must be within -{MAX_GAZE_DEGREES:g}..{MAX_GAZE_DEGREES:g} "
                                         f"degrees, got {value!r}")
    return x, y


def add_parser(sub) -> None:
    sp = sub.add_parser("speak", help="make a video of a photo (or an enrolled avatar) saying some speech",
                        description="Make a video of the person in a photo saying the given speech, or "
                                    "(--avatar) a video of an enrolled person, made of their own frames, "
                                    "whose gestures follow the speech.")
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--image", metavar="PHOTO", help="portrait photo (JPEG, PNG, WebP; any size)")
    who.add_argument("--avatar", metavar="NAME", help="an avatar made by `avatar enroll` (name or folder): "
                                                      "the video is made of the person's own frames")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", metavar="FILE", help="speech audio (wav, mp3, flac, ogg, m4a, ...)")
    src.add_argument("--text", help="text to speak with the built-in offline voice")
    sp.add_argument("--transcript", metavar="TEXT", help="the words of --audio, for exact lip timing")
    sp.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="video to write")
    _add_common(sp)


def add_demo_parser(sub) -> None:
    dp = sub.add_parser("demo", help="the bundled portrait speaking a bundled sentence",
                        description="Write a demo video: the bundled portrait saying a built-in sentence.")
    dp.add_argument("-o", "--output", default=DEMO_OUTPUT, metavar="OUT.mp4", help=f"default {DEMO_OUTPUT}")
    _add_common(dp)


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("motion")
    g.add_argument("--seed", type=seed, default=0, help="random seed; the same seed gives the same video (default 0)")
    g.add_argument("--motion", default="rules", metavar="NAME", help="motion generator (default: rules): " + "; ".join(
                       f"{n}: {e.summary}" for n, e in registry.GENERATORS.items()))
    g.add_argument("--checkpoint", metavar="CKPT", help="trained model of a learned generator (" + ", ".join(
                       n for n, e in registry.GENERATORS.items() if e.needs_checkpoint) + ")")
    g.add_argument("--emotion", choices=sorted(EMOTIONS), help="named emotion preset")
    g.add_argument("--valence", type=number(float, -1, 1), metavar="V", help="-1 (negative) .. 1 (positive); overrides the preset")
    g.add_argument("--arousal", type=number(float, -1, 1), metavar="A", help="-1 (calm) .. 1 (excited); overrides the preset")
    g.add_argument("--head-motion", type=number(float, 0), default=1.0, metavar="X", help="head-motion amplitude, 0 = still (default 1)")
    g.add_argument("--gaze", type=gaze, default=(0.0, 0.0), metavar="DIR",
                   help="main gaze direction: camera, left, right, up, down, or X,Y degrees (default camera)")
    g.add_argument("--head-distance", type=number(float, positive=True), default=1.0, metavar="S",
                   help="head scale; >1 brings the head closer (default 1)")
    o = p.add_argument_group("output")
    low, high = FPS_RANGE
    o.add_argument("--fps", type=number(float, low, high), default=VIDEO.fps,
                   help=f"frames per second, {low:g} to {high:g} (default {VIDEO.fps:g})")
    o.add_argument("--max-size", type=number(int, MIN_SIDE), metavar="PX",
                   help=f"downscale so the longest side is at most PX (default: keep the photo's size, "
                        f"up to {MAX_VIDEO_SIDE} px)")
    o.add_argument("--export-motion", metavar="FILE", help="also save the motion: .npz (native), .csv or .json curves for 3D tools")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks and native logs on errors")


def run(args: argparse.Namespace) -> int:
    """``avatar speak`` (photo or enrolled avatar) and ``avatar demo``."""
    if args.command == "speak" and args.avatar:
        return _speak_avatar(args)
    from avatar.api import speak

    log = stderr_log(args.quiet)
    if args.command == "demo":
        image, audio, text, transcript = bundled_portrait(), None, DEMO_TEXT, None
    else:
        image, audio, text, transcript = args.image, args.audio, args.text, args.transcript
    gx, gy = args.gaze
    result = speak(image, args.output, audio=audio, text=text, transcript=transcript,
                   seed=args.seed, emotion=args.emotion, valence=args.valence, arousal=args.arousal,
                   head_motion=args.head_motion, gaze=(math.radians(gx), math.radians(gy)),
                   head_distance=args.head_distance, motion=args.motion, checkpoint=args.checkpoint,
                   fps=args.fps, max_size=args.max_size, export_motion=args.export_motion,
                   progress=not args.quiet, log=log)
    log(f"wrote {result.output} ({result.num_frames} frames, {result.motion.duration:.1f} s) "
        f"in {result.timings['total']:.1f} s")
    return 0


def _speak_avatar(args: argparse.Namespace) -> int:
    from avatar.gesture.speak import speak_avatar

    log = stderr_log(args.quiet)
    if args.motion != "rules" or args.checkpoint:
        log("note: with --avatar, --motion/--checkpoint drive the lips only; gestures come from the video")
    result = speak_avatar(args.avatar, args.output, audio=args.audio, text=args.text,
                          transcript=args.transcript, seed=args.seed, lips=args.motion,
                          checkpoint=args.checkpoint, progress=not args.quiet, log=log)
    log(f"wrote {result.output} ({result.plan.num_frames} frames, {result.plan.jumps} jump(s)) "
        f"in {result.timings['total']:.1f} s")
    return 0
