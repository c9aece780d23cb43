"""``avatar serve [--host 127.0.0.1] [--port 8000]``: the live server and its web page."""

from __future__ import annotations

import argparse

from avatar.commands import add_quiet_and_debug, stderr_log
from avatar.config import LIVE, VIDEO
from avatar.errors import AvatarError
from avatar.generators import registry


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="a live server: the web page, a WebSocket and a WebRTC endpoint",
                       description="Serve live sessions: a photo that speaks text (the bundled voice, "
                                   "sentence by sentence) or streamed audio as it arrives, idling between "
                                   "utterances. Open the printed address in a browser, or connect a voice "
                                   "agent with avatar.live.client (protocol: docs/live-protocol.md). "
                                   "It binds to 127.0.0.1: to reach it from other machines, put a TLS "
                                   "reverse proxy (nginx, Caddy) in front of it rather than --host 0.0.0.0.",
                       epilog="Example:\n  avatar serve\n  avatar serve --port 9000 --motion vasa "
                              "--checkpoint vasa.safetensors",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=LIVE.host, help=f"address to bind (default {LIVE.host}: this machine only)")
    p.add_argument("--port", type=int, default=LIVE.port, help=f"port (default {LIVE.port})")
    p.add_argument("--motion", action="append", metavar="NAME", default=None,
                   help="generators offered to sessions (repeatable; default: rules). Learned ones need "
                        "--checkpoint: " + ", ".join(registry.GENERATORS))
    p.add_argument("--checkpoint", action="append", metavar="CKPT", default=[],
                   help="checkpoint of each learned --motion, in the same order")
    p.add_argument("--fps", type=float, default=VIDEO.fps, help=f"frames per second (default {VIDEO.fps:g})")
    p.add_argument("--max-sessions", type=int, default=LIVE.max_sessions,
                   help=f"open sessions before new ones are refused as busy (default {LIVE.max_sessions})")
    add_quiet_and_debug(p)


def generator_table(motions: list[str] | None, checkpoints: list[str]) -> dict[str, dict]:
    """{motion name: constructor options}, every learned one paired with its checkpoint."""
    table: dict[str, dict] = {"rules": {}}
    learned = [m for m in (motions or []) if m != "rules"]
    if len(checkpoints) != len(learned):
        raise AvatarError(f"{len(learned)} learned generator(s) but {len(checkpoints)} checkpoint(s)",
                          "--checkpoint", "give one --checkpoint after each learned --motion")
    for name, checkpoint in zip(learned, checkpoints):
        registry.entry(name)
        table[name] = {"checkpoint": checkpoint}
    return table


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import uvicorn

    from avatar.server.app import create_app

    if args.max_sessions < 1:
        raise AvatarError("must be at least 1", "--max-sessions", "e.g. --max-sessions 2")
    log = stderr_log(args.quiet)
    config = dataclasses.replace(LIVE, max_sessions=args.max_sessions)
    app = create_app(config, args.fps, generator_table(args.motion, args.checkpoint))
    log(f"serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info",
                ws_max_size=config.max_message_bytes + 1024)
    return 0
