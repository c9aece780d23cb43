"""``avatar serve``: the ASGI app. Small routers over the one SessionManager.

    GET  /                          the web page (static, works offline)
    GET  /api/info                  generators, emotions, limits
    POST /api/sessions              open a session (multipart: photo + controls)
    DELETE /api/sessions/{id}       close it
    GET  /api/sessions/{id}/last.mp4  the last utterance played, as an mp4
    WS   /api/sessions/{id}/stream  the streaming protocol (docs/live-protocol.md)
    POST /api/sessions/{id}/webrtc  SDP offer -> answer (video + audio tracks)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask

from avatar.config import LIVE, VIDEO, LiveConfig
from avatar.errors import AvatarError
from avatar.generators.base import EMOTIONS
from avatar.server.responses import error_response, invalid_request
from avatar.server.sessions import NotFound, SessionManager, SessionOptions, TooLarge
from avatar.server.stream import session_fields

log = logging.getLogger("avatar.server")
SWEEP_SECONDS = 2.0  # how often idle sessions are looked for
STATIC = "static"  # folder of the web page inside avatar.server
FORM_FIELDS_BYTES = 64_000  # room for the controls next to the photo in an upload

api = APIRouter(prefix="/api")


def _manager(request: Request) -> SessionManager:
    return request.app.state.sessions


@api.get("/info")
def info(request: Request) -> dict:
    manager = _manager(request)
    c = manager.config
    return {"generators": list(manager.generators), "emotions": list(EMOTIONS), "fps": manager.fps,
            "audio_rate": c.audio_rate, "sessions": len(manager), "max_sessions": c.max_sessions,
            "limits": {"max_upload_bytes": c.max_upload_bytes, "max_image_side": c.max_image_side,
                       "max_text_chars": c.max_text_chars, "idle_timeout_seconds": c.idle_timeout_seconds,
                       "max_message_bytes": c.max_message_bytes}}


@api.post("/sessions")
async def open_session(request: Request, photo: UploadFile | None = File(None),
                       motion: str = Form("rules"), seed: int = Form(0), emotion: str | None = Form(None),
                       valence: float | None = Form(None, ge=-1, le=1),
                       arousal: float | None = Form(None, ge=-1, le=1),
                       head_motion: float = Form(1.0, ge=0, le=3),
                       gaze_x: float = Form(0.0, ge=-45, le=45), gaze_y: float = Form(0.0, ge=-45, le=45),
                       head_distance: float = Form(1.0, ge=0.5, le=2)):
    manager = _manager(request)
    data = None
    if photo is not None and photo.filename:
        data = await photo.read(manager.config.max_upload_bytes + 1)
    options = SessionOptions(motion, seed, emotion or None, valence, arousal, head_motion, (gaze_x, gaze_y),
                             head_distance)
    loop = asyncio.get_running_loop()
    session = await loop.run_in_executor(request.app.state.executor, manager.create, data, options)
    return {"id": session.id, **session_fields(session), "stream": f"/api/sessions/{session.id}/stream"}


@api.delete("/sessions/{session_id}")
def close_session(request: Request, session_id: str) -> dict:
    manager = _manager(request)
    manager.get(session_id)
    manager.close(session_id, "closed by the client")
    return {"closed": session_id}


@api.get("/sessions/{session_id}/last.mp4")
def last_utterance(request: Request, session_id: str):
    from avatar.audio.types import Speech
    from avatar.pipeline import render_video

    session = _manager(request).get(session_id)
    last = session.live.last_utterance()
    if last is None:
        raise NotFound("nothing has been said to the end yet", "last.mp4", "send some text and let it play")
    motion, audio = last
    folder = tempfile.mkdtemp(prefix="avatar-last-")
    path = Path(folder) / "last.mp4"
    render_video(session.live.portrait, motion, Speech(audio), path, progress=False)
    cleanup = BackgroundTask(lambda: (path.unlink(missing_ok=True), Path(folder).rmdir()))
    return FileResponse(path, media_type="video/mp4", filename=f"avatar-{session_id[:6]}.mp4",
                        background=cleanup)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413) before they are read into memory."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.limit:
            return await self._refuse(send, int(length))
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await self._refuse(send, seen)

    async def _refuse(self, send, size: int) -> None:
        error = TooLarge(f"the upload is over {(self.limit - FORM_FIELDS_BYTES) / 1e6:g} MB", "photo",
                         "use a smaller photo (it is resized to 512 px anyway)")
        response = error_response(error)
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _BodyTooLarge(Exception):
    pass


async def _sweep(manager: SessionManager) -> None:
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        for session_id in manager.idle():
            manager.close(session_id, f"closed after {manager.config.idle_timeout_seconds:g} s without input")


def _warm_up() -> None:
    """Load the voice before the first session: otherwise its first sentence waits ~2 s."""
    from avatar.audio.tts import synthesize

    with contextlib.suppress(AvatarError):
        synthesize("Hello.")


def create_app(config: LiveConfig = LIVE, fps: float = VIDEO.fps, generators: dict[str, dict] | None = None,
               default_image=None, warm_up: bool = True) -> FastAPI:
    """The server app; ``generators`` maps motion names to options (e.g. a checkpoint)."""
    from avatar.image import bundled_portrait
    from avatar.server import webrtc, ws

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        from threadpoolctl import threadpool_limits

        # The renderer's many small matrix products: with OpenBLAS's default pool one idle
        # session spun ~1.1 cores (0.2 with one thread), as the file path also found.
        threadpool_limits(limits=1, user_api="blas")
        app.state.executor = ThreadPoolExecutor(max_workers=2 * config.max_sessions + 2,
                                                thread_name_prefix="avatar-serve")
        sweeper = asyncio.create_task(_sweep(app.state.sessions))
        if warm_up:
            await asyncio.get_running_loop().run_in_executor(app.state.executor, _warm_up)
        try:
            yield
        finally:
            sweeper.cancel()
            app.state.sessions.close_all()
            await webrtc.close_all(app)
            app.state.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="avatar", lifespan=lifespan, docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.sessions = SessionManager(config, fps, generators, default_image or bundled_portrait())
    app.add_exception_handler(AvatarError, lambda request, error: error_response(error))
    app.add_exception_handler(RequestValidationError, lambda request, error: error_response(invalid_request(error)))
    app.include_router(api)
    app.include_router(ws.router)
    app.include_router(webrtc.router)
    app.add_api_route("/api/bundled.jpg", lambda: FileResponse(bundled_portrait(), media_type="image/jpeg"),
                      methods=["GET"])
    app.mount("/", StaticFiles(directory=str(resources.files("avatar.server") / STATIC), html=True), name="page")
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes + FORM_FIELDS_BYTES)
    return app
