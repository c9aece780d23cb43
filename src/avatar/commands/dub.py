"""``avatar dub VIDEO (--audio FILE | --text "...") -o OUT.mp4``."""

from __future__ import annotations

import argparse

from avatar.commands import add_quiet_and_debug, seed, stderr_log
from avatar.generators import registry


def add_parser(sub) -> None:
    p = sub.add_parser("dub", help="re-do the lips of any talking video of one person for new speech",
                       description="Dub a video: every frame stays the video's own (head, eyes, expression, "
                                   "background); only the lower face is re-rendered to the new speech, "
                                   "with the mouth interior taken from the person's own frames. The "
                                   "output has the video's size and frame rate and the new audio. Longer "
                                   "speech plays the video forward and back; shorter speech cuts it.",
                       epilog="Example:\n  avatar dub interview.mp4 --audio french.wav -o interview_fr.mp4",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", metavar="VIDEO", help="a video of one person talking (mp4, mov, mkv, webm, ...)")
    speech = p.add_mutually_exclusive_group(required=True)
    speech.add_argument("--audio", metavar="FILE", help="the new speech (wav, mp3, flac, ogg, m4a, ...)")
    speech.add_argument("--text", help="text to speak with the built-in offline voice")
    p.add_argument("--transcript", metavar="TEXT", help="the words of --audio, for exact lip timing")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="video to write")
    p.add_argument("--motion", default="rules", metavar="NAME",
                   help="generator of the mouth motion (default: rules): " + ", ".join(registry.GENERATORS))
    p.add_argument("--checkpoint", metavar="CKPT", help="trained model of a learned generator")
    p.add_argument("--avatar", metavar="NAME", help="the person's enrolled avatar (avatar enroll): speech longer "
                                                    "than the video continues from its motion graph instead of "
                                                    "playing the video forward and back")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    add_quiet_and_debug(p)


def run(args: argparse.Namespace) -> int:
    from avatar.dub import dub_video

    log = stderr_log(args.quiet)
    result = dub_video(args.video, args.output, audio=args.audio, text=args.text, transcript=args.transcript,
                       seed=args.seed, motion=args.motion, checkpoint=args.checkpoint, avatar=args.avatar,
                       progress=not args.quiet, log=log)
    seconds = result.timings["total"]
    log(f"wrote {result.output} ({result.num_frames} frames) in {seconds:.1f} s "
        f"({result.num_frames / max(seconds, 1e-9):.1f} frames/s)")
    return 0
