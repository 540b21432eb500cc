"""Request and response helpers of ``remaster serve``: :class:`HTTPError` (a refusal with its status, sent as
``{"error": {...}}``), the status of a library error, JSON responses, the ``X-Remaster-Options`` header and the
bounded request body.
"""

from __future__ import annotations

import json
from typing import Any

from remaster.errors import (
    ImageTooLargeError,
    InputError,
    OutputError,
    RemasterError,
    StageError,
    UsageError,
    WeightsError,
    spelled,
)

__all__ = ["HTTPError", "status_for", "json_response", "parse_options", "read_body", "IMAGE_TYPES", "RESULT_TYPES",
           "OPTIONS_HEADER", "claims_an_image"]

#: What a request body may be besides ``image/*`` (the bytes themselves are sniffed: any format :mod:`remaster.io`
#: decodes is taken whatever the type claims; the type only has to claim an image, or bytes).
IMAGE_TYPES = {"application/octet-stream"}
RESULT_TYPES = {"png": "image/png", "tiff": "image/tiff"}
OPTIONS_HEADER = "x-remaster-options"


def claims_an_image(content_type: str) -> bool:
    """Whether a request's ``Content-Type`` claims an image (``image/*``) or plain bytes."""
    media = content_type.split(";")[0].strip().lower()
    return media in IMAGE_TYPES or (media.startswith("image/") and len(media) > len("image/"))


class HTTPError(Exception):
    """A refusal with its status; becomes ``{"error": {...}}``."""

    def __init__(self, status: int, message: str, *, hint: str | None = None, kind: str = "RequestError",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.hint, self.kind, self.headers = status, message, hint, kind, headers or {}

    @classmethod
    def from_remaster(cls, exc: RemasterError, status: int) -> HTTPError:
        message = f"{exc.path}: {exc.message}" if exc.path else exc.message
        # The limits and choices a hint names are the server's own flags (remaster serve --max-output-pixels ...).
        hint = None if exc.hint is None else spelled(exc.hint, 1)
        return cls(status, message, hint=hint, kind=type(exc).__name__)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "hint": self.hint, "type": self.kind, "status": self.status}}


def status_for(exc: RemasterError) -> int:
    """The HTTP status of a library error raised while checking a request."""
    if isinstance(exc, ImageTooLargeError):
        return 413
    if isinstance(exc, (InputError, UsageError, StageError, WeightsError)):
        return 422  # well-formed request, but the image or pipeline cannot be used (weights missing or damaged too)
    if isinstance(exc, OutputError):
        return 422
    return 500


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    from starlette.responses import Response

    return Response(json.dumps(body), status_code=status, headers=headers, media_type="application/json")


def parse_options(raw: str | None) -> tuple[str, str, int | str]:
    """The pipeline, result format and tile from the ``X-Remaster-Options`` JSON header."""
    if not raw:
        raise HTTPError(400, "the request has no X-Remaster-Options header",
                        hint='send X-Remaster-Options: {"pipeline": "bicubic(scale=2)"}')
    try:
        options = json.loads(raw)
    except ValueError as exc:
        raise HTTPError(400, f"X-Remaster-Options is not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise HTTPError(400, "X-Remaster-Options must be a JSON object")
    unknown = sorted(set(options) - {"pipeline", "format", "tile"})
    if unknown:
        raise HTTPError(400, f"unknown option(s) {', '.join(unknown)}", hint="options are pipeline, format, tile")
    pipeline, result_format, tile = options.get("pipeline"), options.get("format", "png"), options.get("tile", "auto")
    if not isinstance(pipeline, str) or not pipeline.strip():
        raise HTTPError(400, "the option 'pipeline' must be a non-empty string", hint='e.g. "bicubic(scale=2)"')
    if result_format not in RESULT_TYPES:
        raise HTTPError(400, f"the option 'format' must be png or tiff, not {result_format!r}")
    if not (tile == "auto" or (isinstance(tile, int) and not isinstance(tile, bool) and tile >= 0)):
        raise HTTPError(400, f"the option 'tile' must be 'auto' or a size in pixels, not {tile!r}")
    return pipeline, result_format, tile


async def read_body(request: Any, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_big = HTTPError(413, f"the request is larger than the limit of {limit:,} bytes", kind="RequestTooLarge",
                        hint="send a smaller image, or restart the server with a higher --max-request-bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body that never said its length
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)
