"""HTTP answers to AvatarError: the status code says which kind, the body says it in words."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from avatar.errors import AvatarError
from avatar.server.sessions import Busy, NotFound, TooLarge

STATUS = ((Busy, 503), (NotFound, 404), (TooLarge, 413))
INPUT_ERROR = 422  # no face, an unreadable image, a bad field


def error_response(error: AvatarError) -> JSONResponse:
    code = next((code for kind, code in STATUS if isinstance(error, kind)), INPUT_ERROR)
    return JSONResponse({"error": error.one_line(), "what": error.what, "where": error.where,
                         "hint": error.hint}, status_code=code)


def invalid_request(error) -> AvatarError:
    """FastAPI's validation error (a bad form field or JSON body) in our one-line form."""
    first = (error.errors() or [{}])[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")) or "request"
    return AvatarError(first.get("msg", "invalid request"), where, "see docs/live-protocol.md")
