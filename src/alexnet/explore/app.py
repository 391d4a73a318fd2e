"""The web app: a small Starlette application serving one hand-written page (page.html, .js, .css,
shipped with the package: nothing is fetched from elsewhere, and the page's Content-Security-
Policy forbids it) and a JSON API over an Explorer.

Why Starlette and not Gradio, the field's convention for model demos: Gradio brings dozens of
packages and a front end of its own (a wheel of tens of MB), whose components would not draw two
towers of maps side by side or stream a cancellable occlusion map; Starlette is small and pure
Python (uvicorn serves it) and leaves the page to us.

Safety: the server answers only to the host names it was bound for (a web page elsewhere cannot
reach it by DNS rebinding), reads an upload up to a size limit and decodes it with the package's
own checks (a hostile file is a message, the server keeps serving), and serves from disk only
the files FOLDER was found to hold at start (folder.py)."""

from __future__ import annotations

import io
import ipaddress
import json
import secrets
import signal
import socket
import threading
from contextlib import contextmanager
from importlib import resources

# starlette and uvicorn: the explore extra. Only cli/explore.py imports this module, inside its
# handler, so `alexnet` and `alexnet.explore.Explorer` work without them.
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..data.decode import BadImage
from ..errors import BadInput, one_line
from .explorer import Explorer
from .network import picture

MAX_UPLOAD = 20 << 20  # bytes: a large camera JPEG; anything bigger is refused unread
MAX_JOBS = 4  # occlusion maps computing at once, all tabs together
PAGE = {
    "/": ("page.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript"),
    "/page.css": ("page.css", "text/css"),
}
HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
        b"base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def _error(status: int, msg) -> JSONResponse:
    return JSONResponse({"error": one_line(str(msg), 500)}, status)


def _int(q, key: str, default: int | None = None) -> int | None:
    v = q.get(key)
    if v is None or v == "":
        return default
    if not v.lstrip("-").isdigit() or len(v) > 9:
        raise BadInput(f"{key}={v[:20]!r}: expected a whole number")
    return int(v)


def create_app(ex: Explorer, hosts: list[str] | None = None, max_upload: int = MAX_UPLOAD) -> Starlette:
    here = resources.files(__package__)
    files = {path: (here.joinpath(f).read_bytes(), kind) for path, (f, kind) in PAGE.items()}
    jobs: dict[str, threading.Event] = {}
    jobs_lock = threading.Lock()

    async def page(request: Request) -> Response:
        body, kind = files[request.url.path]
        return Response(body, media_type=kind)

    def info(request: Request) -> JSONResponse:
        c, crop = ex.card, ex.pipeline.crop
        mean = "image" if isinstance(c.mean[0], list) else "per channel"
        return JSONResponse(
            dict(
                weights=ex.weights,
                model=c.model,
                source=c.source,
                classes=c.num_classes,
                input=crop,
                towers=ex.towers,
                filters=ex.filters,
                max_upload=max_upload,
                stages=[
                    dict(name=st.name, kind=st.kind, shape=list(s), field=st.size)
                    for st, s in zip(ex.plan, ex.shapes)
                ],
                preprocessing=f"shorter side to {c.stored_size}, centre {crop}x{crop} crop, "
                f"{c.channel_order}, mean {mean} subtracted, x{c.pixel_scale:g}"
                + (" / std" if c.std else ""),
                folder=None if ex.folder is None else dict(images=len(ex.folder), skipped=ex.folder.skipped),
                features=None
                if ex.index is None
                else dict(layer=str(ex.index["layer"]), images=len(ex.index["features"]), note=ex.index_note),
            )
        )

    def images(request: Request) -> JSONResponse:
        if ex.folder is None:
            return JSONResponse(dict(total=0, names=[]))
        q = request.query_params
        total, names = ex.folder.search(
            q.get("q", "")[:200], max(0, _int(q, "offset", 0)), min(500, max(1, _int(q, "limit", 200)))
        )
        status = None if ex.patches is None else dict(done=ex.patches.done, unreadable=ex.patches.unreadable)
        return JSONResponse(dict(total=total, names=names, indexing=status))

    def thumb(request: Request) -> Response:
        if ex.folder is None:
            raise LookupError("no --images folder was given")
        name = request.query_params.get("path", "")
        img = picture(ex.card.decode(ex.folder.read(name), name)).convert("RGB")
        img.thumbnail((96, 96))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        return Response(buf.getvalue(), media_type="image/jpeg", headers={"cache-control": "max-age=3600"})

    def analyze(request: Request) -> JSONResponse:
        if ex.folder is None:
            raise LookupError("no --images folder was given")
        name = request.query_params.get("path", "")
        return JSONResponse(ex.analyze(ex.open(ex.folder.read(name), name)))

    async def upload(request: Request) -> JSONResponse:
        name = request.query_params.get("name", "upload")[:200] or "upload"
        declared = request.headers.get("content-length", "")
        too_big = _error(413, f"{name}: larger than the {max_upload:,} bytes an upload may have")
        if declared.isdigit() and int(declared) > max_upload:
            return too_big
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_upload:
                return too_big
        view = await run_in_threadpool(ex.open, bytes(body), name)
        return JSONResponse(await run_in_threadpool(ex.analyze, view))

    def channel(request: Request) -> JSONResponse:
        q = request.query_params
        return JSONResponse(ex.channel(q.get("id", ""), q.get("stage", ""), _int(q, "c", 0)))

    def lrn(request: Request) -> JSONResponse:
        q = request.query_params
        return JSONResponse(ex.lrn(q.get("id", ""), q.get("stage") or None, _int(q, "c")))

    def nearest(request: Request) -> JSONResponse:
        return JSONResponse(ex.neighbours(request.query_params.get("id", "")))

    async def occlusion(request: Request) -> Response:
        q = request.query_params
        job = q.get("job", "")[:64] or secrets.token_hex(8)
        cancel = threading.Event()
        with jobs_lock:
            if len(jobs) >= MAX_JOBS:
                return _error(429, f"{MAX_JOBS} occlusion maps are being computed; wait for one to finish")
            if job in jobs:
                return _error(409, f"job {job!r} is already computing")
            jobs[job] = cancel
        try:
            steps = ex.occlusion(q.get("id", ""), _int(q, "size", 48), _int(q, "stride", 16), cancel)
            first = await run_in_threadpool(next, steps)  # bad arguments answer with an error, not a stream
        except BaseException:
            with jobs_lock:
                jobs.pop(job, None)
            raise

        async def events():
            item = first
            try:
                while item is not None:
                    yield f"event: {item['event']}\ndata: {json.dumps(item)}\n\n"
                    item = await run_in_threadpool(next, steps, None)
            except Exception as e:  # noqa: BLE001 - the page shows it; the server goes on
                yield f"event: failed\ndata: {json.dumps({'error': one_line(str(e), 500)})}\n\n"
            finally:  # the tab closed the stream, or the map is done: nothing more is computed
                cancel.set()
                with jobs_lock:
                    jobs.pop(job, None)

        return StreamingResponse(events(), media_type="text/event-stream")

    def cancel(request: Request) -> JSONResponse:
        with jobs_lock:
            event = jobs.get(request.query_params.get("job", ""))
        if event is not None:
            event.set()
        return JSONResponse(dict(cancelled=event is not None))

    async def bad_input(request: Request, e: Exception) -> JSONResponse:
        return _error(400, e)

    async def not_found(request: Request, e: Exception) -> JSONResponse:
        return _error(404, e.args[0] if e.args else "not found")

    async def failure(request: Request, e: Exception) -> JSONResponse:  # (uvicorn logs the traceback)
        return _error(500, f"{type(e).__name__}: {e}")

    routes = [Route(p, page) for p in PAGE] + [
        Route("/api/info", info),
        Route("/api/images", images),
        Route("/api/thumb", thumb),
        Route("/api/analyze", analyze, methods=["POST"]),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/channel", channel),
        Route("/api/lrn", lrn),
        Route("/api/neighbours", nearest),
        Route("/api/occlusion", occlusion),
        Route("/api/cancel", cancel, methods=["POST"]),
    ]
    handlers = {
        BadImage: bad_input,
        BadInput: bad_input,
        ValueError: bad_input,
        OSError: bad_input,
        LookupError: not_found,
        Exception: failure,
    }
    allowed = hosts or ["127.0.0.1", "localhost"]
    return Starlette(
        routes=routes,
        exception_handlers=handlers,
        middleware=[Middleware(_Headers), Middleware(TrustedHostMiddleware, allowed_hosts=allowed)],
    )


class _Headers:
    """Every response says: nothing from elsewhere, no sniffing, no referrer, no caching."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                have = {k for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in HEADERS if h[0] not in have
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def serve(ex: Explorer, host: str = "127.0.0.1", port: int = 8000, announce=print) -> None:
    """Serve the page until Ctrl-C. Port 0: any free one. The URL is announced once listening."""
    sock, url, hosts = _listen(host, port)
    if hosts == ["*"]:
        announce(
            f"warning: listening on {host}: anyone who can reach this machine sees the page "
            "and FOLDER's images"
        )
    announce(url)
    ex.start_indexing()
    try:
        _server(ex, hosts).run(sockets=[sock])
    finally:
        ex.stop.set()
        sock.close()


@contextmanager
def running(ex: Explorer, host: str = "127.0.0.1", port: int = 0):
    """The app served from a thread while the block runs; yields its URL (tests, benchmarks)."""
    sock, url, hosts = _listen(host, port)
    server = _server(ex, hosts)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.02)
    try:
        yield url.rstrip("/")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _listen(host: str, port: int):
    """(a socket bound to host:port, the page's URL, the host names requests may be addressed to)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # from now on a browser's connection waits for the server, not refused
    except OSError as e:
        sock.close()
        raise BadInput(
            f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); "
            "--port 0 takes any free port"
        ) from None
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    url = f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}/"
    return sock, url, ["127.0.0.1", "localhost", "::1", host] if local else ["*"]


def _server(ex: Explorer, hosts: list[str]):
    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self):
            """Ctrl-C (or SIGTERM) ends the server as its normal end: uvicorn's own handler raises
            the signal again afterwards, which leaves its idle worker threads waiting 10 s."""
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            old = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in old.items():
                    signal.signal(s, handler)

    return Server(
        uvicorn.Config(
            create_app(ex, hosts), log_level="warning", access_log=False, timeout_graceful_shutdown=2
        )
    )
