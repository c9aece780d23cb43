"""Command line: ``avatar COMMAND``; the bigger subcommands live in avatar.commands.

Errors are one line on stderr (what, which file, what to do) with a non-zero exit code;
``--debug`` adds the traceback and native library logs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from avatar import __version__
from avatar.commands import batch as batch_command
from avatar.commands import dub as dub_command
from avatar.commands import speak as speak_command
from avatar.commands import serve as serve_command
from avatar.commands import FPS_RANGE, add_quiet_and_debug, number, seed, stderr_log as _log
from avatar.errors import EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED, EXIT_USER_ERROR, AvatarError
from avatar.generators import registry
from avatar.native import VERBOSE_ENV, native_logs_hidden


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line like every other error (not usage + message)."""

    def error(self, message: str):
        message = message.removeprefix("argument ")
        self.exit(EXIT_USER_ERROR, f"avatar: error: {message} - see '{self.prog} --help'\n")


def _positive(kind):
    return number(kind, positive=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="avatar", description="Speech in, a talking video of a person out. Offline, on a CPU.",
        epilog="Examples:\n  avatar demo\n  avatar speak --image me.jpg --text \"Hello there.\" -o hello.mp4\n"
               "  avatar speak --image me.jpg --audio talk.mp3 --emotion happy -o talk.mp4\n"
               "  avatar enroll my_talk.mp4 --name me\n"
               "  avatar speak --avatar me --audio new_talk.wav -o gestures.mp4\n"
               "  avatar dub interview.mp4 --audio new_speech.wav -o dubbed.mp4",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"avatar {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and native logs on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    speak_command.add_parser(sub)
    speak_command.add_demo_parser(sub)
    pp = sub.add_parser("prepare", help="track talking-face videos into a dataset for learning motion",
                        description="Track each video (face mesh fitted into the motion space, audio "
                                    "features, phones, voice activity) into one clip file per shot in "
                                    "DATASET; unsuitable videos are skipped with the reason "
                                    "(see DATASET/report.json). Runs resume where they stopped.")
    pp.add_argument("videos", nargs="+", metavar="VIDEO", help="talking-face videos (mp4, mov, mkv, ...)")
    pp.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder (created if needed)")
    pp.add_argument("--force", action="store_true", help="prepare again videos that are already in the dataset")
    pp.add_argument("--fps", type=number(float, *FPS_RANGE), help="frame rate of the clips (default: each video's own)")
    pp.add_argument("--val-fraction", type=float, default=0.15, metavar="F",
                    help="share of each clip held out for validation (default 0.15)")
    pp.add_argument("--body", choices=("auto", "yes", "no"), default="auto",
                    help="also track the upper body (shoulders, elbows, wrists, hips) with the MediaPipe "
                         "pose: auto (default) for shots that show both shoulders in most frames, yes for "
                         "every shot, no never")
    pp.add_argument("--workers", type=number(int, 1, 256), metavar="N",
                    help="track N videos at once in local worker processes (default: one after another here)")
    pp.add_argument("--ray", metavar="ADDRESS", help="track the videos on a Ray cluster, one video a task: auto, "
                                                     "or the head's HOST:PORT (videos at the same paths on every "
                                                     "node; the dataset is written here)")
    pp.add_argument("--retries", type=number(int, 0, batch_command.MAX_RETRIES), default=2, metavar="K",
                    help="with --workers/--ray: times a video is tried again when its worker dies (default 2)")
    add_quiet_and_debug(pp)
    tp = sub.add_parser("train", help="train a learned motion generator on a prepared dataset",
                        description="Train a motion generator on a dataset made by `avatar prepare` and write "
                                    "the model to -o. Every 100 steps it prints the loss on a selection block "
                                    "(the end of each clip's training time, never trained on) and on the "
                                    "held-out ranges (information only). By default it trains a fixed number "
                                    "of steps and keeps the last model: on small datasets the generated motion "
                                    "keeps improving after those losses are lowest.")
    tp.add_argument("--method", default="vasa", choices=registry.trainable(),
                    help="generator to train (default vasa): " + "; ".join(
                        f"{n}: {registry.entry(n).summary}" for n in registry.trainable()))
    tp.add_argument("--data", required=True, metavar="DATASET", help="dataset folder from `avatar prepare`")
    tp.add_argument("-o", "--output", required=True, metavar="CKPT", help="checkpoint to write (.safetensors)")
    tp.add_argument("--steps", type=_positive(int), metavar="N",
                    help="training steps (default: the method's own, " + ", ".join(
                        f"{n} {registry.entry(n).steps}" for n in registry.trainable()) + ")")
    tp.add_argument("--minutes", type=_positive(float), default=30.0,
                    help="stop after this long even if the steps are not done (default 30)")
    tp.add_argument("--keep", choices=["last", "best"], default="last",
                    help="the last model (default), or the one with the lowest selection loss, stopping early "
                         "when it no longer improves")
    tp.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    tp.add_argument("--init", metavar="CKPT", help="fine-tune this trained checkpoint on the dataset (e.g. a few "
                                                   "minutes of one person) instead of training from scratch; "
                                                   "methods: " + ", ".join(
                                                       n for n in registry.trainable() if registry.entry(n).fine_tunes))
    add_quiet_and_debug(tp)
    _add_evaluate(sub)
    _add_enroll(sub)
    dub_command.add_parser(sub)
    serve_command.add_parser(sub)
    batch_command.add_parser(sub)
    return parser


def _add_enroll(sub) -> None:
    np_ = sub.add_parser("enroll", help="learn an avatar from a video of a person talking (with gestures)",
                         description="Track a video of one person talking (body pose, hands, person mask, "
                                     "face), build the motion graph of its 4-frame clips, train the "
                                     "audio-motion embedding, and save it all as an avatar bundle for "
                                     "`avatar speak --avatar NAME`. Use at least 20 s of video.")
    np_.add_argument("video", metavar="VIDEO", help="video of the person talking (mp4, mov, mkv, ...)")
    np_.add_argument("--name", required=True, help="name of the avatar (saved under $AVATAR_HOME/avatars, "
                                                   "default ~/.local/share/avatar/avatars) or a folder path")
    np_.add_argument("--force", action="store_true", help="replace an existing avatar of that name")
    np_.add_argument("--minutes", type=_positive(float), metavar="M",
                     help="cap on the training time of the audio-motion embedding (default 4; "
                          "its steps grow with the video's length)")
    np_.add_argument("--also", nargs="+", default=[], metavar="NAME",
                     help="other enrolled avatars whose videos the embedding also trains on")
    np_.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    add_quiet_and_debug(np_)


def _enroll(args: argparse.Namespace) -> int:
    from avatar.gesture.enroll import EnrollOptions, enroll

    log = _log(args.quiet)
    options = EnrollOptions(name=Path(args.name).name, folder=_avatar_folder(args.name), force=args.force,
                            train_minutes=args.minutes, also=args.also, seed=args.seed,
                            progress=not args.quiet)
    enroll(args.video, options, log=log)
    return 0


def _avatar_folder(name: str) -> Path:
    from avatar.gesture.bundle import bundle_folder

    return bundle_folder(name)


def _checkpoint_arg(value: str) -> tuple[str, str]:
    """'METHOD=CKPT' -> (method, path)."""
    method, sep, path = value.partition("=")
    if not sep or not method or not path:
        raise argparse.ArgumentTypeError("expected METHOD=CHECKPOINT, e.g. vasa=vasa.safetensors")
    return method, path


def _add_evaluate(sub) -> None:
    ep = sub.add_parser("evaluate", help="compare motion generators on held-out time of a prepared dataset",
                        description="Run every generator on the held-out (validation) ranges of a dataset "
                                    "from `avatar prepare` and measure lip sync, head motion, blinks, "
                                    "CAPP, diversity and Frechet distance against the real motion; writes "
                                    "metrics.md/.csv, results.json and PNG plots to OUTDIR.")
    ep.add_argument("--data", required=True, metavar="DATASET", help="dataset folder from `avatar prepare`")
    ep.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for tables and plots")
    ep.add_argument("--methods", nargs="+", default=["rules"], metavar="NAME", help="generators (default: rules)")
    ep.add_argument("--checkpoint", type=_checkpoint_arg, action="append", default=[], metavar="METHOD=CKPT",
                    help="checkpoint of a learned generator, e.g. vasa=vasa.safetensors (repeatable)")
    ep.add_argument("--seeds", type=_positive(int), default=3, help="seeds per generator and segment (default 3)")
    ep.add_argument("--capp", metavar="CKPT", help="trained CAPP model (default: train one on the dataset's "
                                                    "training frames, cached in OUTDIR)")
    ep.add_argument("--capp-steps", type=_positive(int), default=1500, metavar="N",
                    help="training steps of the CAPP model when it is trained (default 1500)")
    add_quiet_and_debug(ep)


def _evaluate(args: argparse.Namespace) -> int:
    from avatar.eval import evaluate
    from avatar.metrics.capp import TrainOptions

    checkpoints = dict(args.checkpoint)
    unknown = sorted(set(checkpoints) - set(args.methods))
    if unknown:
        raise AvatarError(f"checkpoint given for {', '.join(unknown)}, which is not among --methods",
                          "--checkpoint", f"add it to --methods ({' '.join(args.methods)})")
    generators = [(m, {"checkpoint": checkpoints[m]}) if m in checkpoints else m for m in args.methods]
    result = evaluate(args.data, generators, args.output, seeds=args.seeds, capp_checkpoint=args.capp,
                      capp_options=TrainOptions(steps=args.capp_steps), log=_log(args.quiet))
    _log(args.quiet)(f"table: {Path(args.output) / 'metrics.md'} ({len(result.files)} files)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from avatar.training.dataset import load_dataset
    from avatar.training.loop import TrainSettings

    log = _log(args.quiet)
    train = registry.trainer(args.method)
    if args.init is not None and not registry.entry(args.method).fine_tunes:
        raise AvatarError(f"the {args.method} trainer cannot start from a checkpoint", "--init",
                          "fine-tune with --method " + " or ".join(
                              n for n in registry.trainable() if registry.entry(n).fine_tunes))
    if args.init is not None and not Path(args.init).is_file():
        raise AvatarError("checkpoint to fine-tune not found", args.init, "check the path of --init")
    if args.init is not None:
        from avatar.diffusion.checkpoint import read_spec

        read_spec(args.init)  # a damaged or foreign file fails now, not after loading the dataset
    clips = load_dataset(args.data)
    steps = args.steps or registry.entry(args.method).steps
    log(f"training {args.method} on {len(clips)} clip(s): {steps} steps or {args.minutes:g} min")
    settings = TrainSettings(max_steps=steps, minutes=args.minutes, keep=args.keep, seed=args.seed, init=args.init)
    report = train(clips, args.output, settings=settings, log=log)
    kept, low, held = report.kept, report.lowest_select, report.best_held_out
    log(f"trained {report.steps} steps in {report.minutes:.1f} min; kept step {kept.step} (selection loss "
        f"{kept.select:.4f}, held-out {kept.held_out:.4f}); lowest selection loss at step {low.step}, lowest "
        f"held-out loss at step {held.step} ({held.minutes:.1f} min); wrote {args.output}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from avatar.data.prepare import prepare_videos

    for video in map(Path, args.videos):  # a wrong path is a typo, not an unsuitable video
        if not video.is_file():
            raise AvatarError("is a folder, not a video" if video.is_dir() else "video not found", str(video),
                              "check the path (nothing was prepared)")
    new_folder = not Path(args.output).exists()
    parallel = args.ray or args.workers
    pool = batch_command.make_pool(args.ray, args.workers, args.retries) if parallel else None
    with contextlib.closing(pool) if pool else contextlib.nullcontext():
        report = prepare_videos(args.videos, args.output, fps=args.fps, val_fraction=args.val_fraction,
                                force=args.force, progress=not args.quiet, log=_log(args.quiet), body=args.body,
                                pool=pool)
    if not report.prepared:
        _nothing_prepared(report, new_folder)
    _log(args.quiet)(f"{len(report.prepared)} video(s) in the dataset ({len(report.clips)} clip(s)), "
                     f"{len(report.skipped)} skipped; see {report.path}")
    return 0


def _nothing_prepared(report, new_folder: bool) -> None:
    """Every video was skipped: an error naming why; a dataset folder made by this run is
    removed again rather than left holding only the report."""
    if new_folder:
        report.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty after all: leave it
            report.path.parent.rmdir()
    first = report.skipped[0]
    what = (f"not prepared: {first.reason}" if len(report.skipped) == 1 else
            f"none of the {len(report.skipped)} videos could be prepared (first: {first.reason})")
    see = "" if new_folder else f"; see {report.path}"
    raise AvatarError(what, first.source, f"give videos of one person talking, face in view{see}")


def run(args: argparse.Namespace) -> int:
    if args.command == "prepare":
        return _prepare(args)
    if args.command == "train":
        return _train(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "enroll":
        return _enroll(args)
    if args.command == "dub":
        return dub_command.run(args)
    if args.command == "serve":
        return serve_command.run(args)
    if args.command == "batch":
        return batch_command.run(args)
    return speak_command.run(args)


class _NoteHandler(logging.Handler):
    """The engine's warnings (e.g. "no voice activity found") as ``avatar: note: ...`` on
    the sys.stderr of the moment, like every other line, instead of logging's bare
    last-resort output."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"avatar: note: {record.getMessage()}", file=sys.stderr)


def _show_notes() -> None:
    engine = logging.getLogger("avatar")
    if not any(isinstance(h, _NoteHandler) for h in engine.handlers):  # main() may run many times
        engine.addHandler(_NoteHandler(logging.WARNING))


def main(argv=None) -> int:
    _show_notes()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = getattr(args, "debug", False)
    if args.debug:
        os.environ[VERBOSE_ENV] = "1"
    # Native libraries' chatter is hidden for the whole run (--debug shows it); the server
    # keeps its own stderr handling.
    hide = not args.debug and args.command != "serve"
    try:
        with native_logs_hidden() if hide else contextlib.nullcontext():
            return run(args)
    except AvatarError as e:
        print(f"avatar: error: {e.one_line()}", file=sys.stderr)
        if args.debug:
            raise
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        kept = ("the jobs that finished are kept; run it again to go on" if args.command in ("batch", "prepare")
                else "no output was written")
        print(f"avatar: interrupted; {kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # anything else is our bug: say so in one line
        if args.debug:
            raise
        print(f"avatar: internal error: {e.__class__.__name__}: {e} "
              "(run again with --debug for details)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
