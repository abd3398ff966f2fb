"""`dfer-edge serve`: a local HTTP service and a kiosk page (the optional `serve` extra: FastAPI + uvicorn).

One Recognizer serves every request; a lock lets one request at a time use it (the TFLite
interpreter is not thread-safe, and on a 2-4 core Pi parallel inference would only contend). Bodies
are read asynchronously against a size limit and a deadline, so a slow or huge upload holds no
worker thread and no model time.
"""


import asyncio
import hmac
import ipaddress
import logging
import threading
import time
from importlib import resources
from typing import Any

from .errors import DferError
from .recognizer import Recognizer, result_record

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
BODY_TIMEOUT_S = 30.0  # a client that needs longer than this to send its image is dropped (408)
# curl --data-binary sends application/x-www-form-urlencoded unless told otherwise: take it as raw bytes.
IMAGE_TYPES = ("image/", "application/octet-stream", "application/x-www-form-urlencoded")


# Routes anyone may load with a token set: the kiosk page itself (static; it then sends the token it was
# opened with, see kiosk.html). Everything else, the API and its docs included, needs the token.
PUBLIC_PATHS = frozenset({"/"})
TOKEN_ENV = "DFER_SERVE_TOKEN"
log = logging.getLogger("dfer_edge.serve")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authorised(header: str | None, token: str) -> bool:
    """An `Authorization: Bearer <token>` header with the token, compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class HTTPProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def kiosk_page() -> str:
    return resources.files("dfer_edge").joinpath("kiosk.html").read_text(encoding="utf-8")


async def read_body(request: Any, max_bytes: int, timeout: float = BODY_TIMEOUT_S) -> bytes:
    """The whole body, refused early when it says or turns out to be larger than `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise HTTPProblem(413, f"body of {int(declared)} bytes is over the limit of {max_bytes} bytes")
        except ValueError:
            raise HTTPProblem(400, "invalid Content-Length header") from None

    async def collect() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise HTTPProblem(413, f"body is over the limit of {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise HTTPProblem(408, f"the body took longer than {timeout:g} s to arrive") from None


async def image_bytes(request: Any, max_bytes: int) -> tuple[bytes, str]:
    """The image in a raw body (image/*, application/octet-stream or no type) or in the first file
    of a multipart form, and a name for it."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, max_bytes)
    if not body:
        raise HTTPProblem(400, "empty body: send the image bytes, or a multipart form with an image file")
    if ctype == "multipart/form-data":
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return {"type": "http.request", "body": b"", "more_body": False}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form()
        except Exception as e:  # the multipart parser's errors have no common base class
            raise HTTPProblem(400, f"malformed multipart body ({e})") from None
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        if not files:
            raise HTTPProblem(400, "multipart form without a file: send the image as a file field")
        data = await files[0].read()
        if not data:
            raise HTTPProblem(400, "empty file in the multipart form")
        return data, files[0].filename or "upload"
    if ctype and not ctype.startswith(IMAGE_TYPES):
        raise HTTPProblem(415, f"unsupported content type {ctype!r}: send image/* or application/octet-stream, "
                               "or multipart/form-data")
    return body, "body"


def create_app(recognizer: Recognizer, max_bytes: int = DEFAULT_MAX_BYTES, token: str | None = None):
    """The FastAPI app: POST /predict, GET /health, GET / (the kiosk page). With `token`, every route but
    the page answers 401 unless the request carries `Authorization: Bearer <token>`."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="dfer-edge", description="Facial expressions, offline", version=_version())
    lock = threading.Lock()
    stats = {"requests": 0, "errors": 0, "internal_errors": 0, "unauthorised": 0, "started": time.time()}
    page = kiosk_page()

    if token:
        @app.middleware("http")
        async def require_token(request: Request, call_next):
            if request.url.path in PUBLIC_PATHS or authorised(request.headers.get("authorization"), token):
                return await call_next(request)
            stats["unauthorised"] += 1
            return JSONResponse({"error": "this server needs its token: send the header "
                                          "'Authorization: Bearer <token>' (the kiosk page: open /#token=<token>)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})

    def predict_locked(data: bytes, largest: bool) -> list:
        with lock:
            if largest:
                f = recognizer.predict_largest(data)
                return [f] if f else []
            return recognizer.predict(data)

    def problem(status: int, name: str, message: str) -> JSONResponse:
        stats["errors"] += 1
        return JSONResponse(result_record(name, None, message), status_code=status)

    @app.post("/predict", summary="Expressions of the faces in one image")
    async def predict(request: Request, largest: bool = False) -> Any:
        """The image is the raw body (image/* or application/octet-stream) or the first file of a
        multipart form. The answer is the object `dfer-edge predict --json` gives per input."""
        stats["requests"] += 1
        name = "body"
        t0 = time.perf_counter()
        try:
            data, name = await image_bytes(request, max_bytes)
            faces = await run_in_threadpool(predict_locked, data, largest)
        except HTTPProblem as e:
            return problem(e.status, name, str(e))
        except DferError as e:  # not an image, too many pixels, ...
            return problem(422, name, str(e))
        except Exception as e:  # noqa: BLE001 - a bug of ours: a JSON answer like any other, counted, logged
            stats["internal_errors"] += 1
            log.exception("POST /predict (%s) failed", name)
            return problem(500, name, f"internal error ({type(e).__name__}: {e}); the server log has the details")
        return {**result_record(name, faces, None), "ms": round(1000 * (time.perf_counter() - t0), 2)}

    @app.get("/health", summary="Liveness and what is loaded")
    def health() -> dict:
        m = recognizer.model
        return {"status": "ok", "model": str(m.path), "interpreter": f"{m.interpreter_name} {m.interpreter_version}",
                "labels": list(recognizer.labels), "requests": stats["requests"], "errors": stats["errors"],
                "internal_errors": stats["internal_errors"], "unauthorised": stats["unauthorised"],
                "token_required": bool(token), "uptime_s": round(time.time() - stats["started"], 1), "max_bytes": max_bytes}

    @app.get("/", response_class=HTMLResponse, summary="The kiosk page")
    def kiosk() -> str:
        return page

    return app


def _version() -> str:
    from . import __version__

    return __version__
