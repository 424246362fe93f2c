"""`python -m search dashboard`: optuna-dashboard over the study storage and the trials' artifacts.

Checked before anything starts (one `error: ...` line each): the port (1..65535, free on the
host), the host (resolvable, bindable) and the artifact folder. Text artifacts (config.yaml,
build.log, eval.txt, the JSON files) are served with a text content type, so a browser shows
them instead of downloading them: `artifact_mimetype` names the type by file name; trials
uploaded before it existed (stored as application/octet-stream) get it when served too.
"""
from __future__ import annotations

import errno
import re
import socket
import socketserver
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from search.errors import SearchError
from search.trial_objective import artifact_mimetype

_TRIAL_ARTIFACT = re.compile(r"^/artifacts/(\d+)/(\d+)/([0-9a-fA-F-]+)$")


def check_listen(host: str, port: int) -> None:
    """The dashboard can listen on host:port: a port in 1..65535, a host that resolves, nothing else there."""
    if not 1 <= port <= 65535:
        raise SearchError(f"--port {port}: need a port number in 1..65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise SearchError(f"--host {host}: cannot resolve it ({getattr(exc, 'strerror', None) or exc})") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # as the server will
        try:
            s.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SearchError(f"--port {port}: already in use on {host} (pick another --port)") from None
            raise SearchError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def text_artifacts(app: Callable, storage: Any) -> Callable:
    """WSGI middleware: a trial artifact whose name says text is served with a text content type."""
    import optuna

    def typed(environ: dict, start_response: Callable) -> Iterable[bytes]:
        m = _TRIAL_ARTIFACT.match(environ.get("PATH_INFO", ""))
        if not m:
            return app(environ, start_response)
        _, trial_id, artifact_id = m.groups()

        def start(status: str, headers: list, exc_info=None):
            try:
                trial = storage.get_trial(int(trial_id))
                meta = {a.artifact_id: a for a in optuna.artifacts.get_all_artifact_meta(trial, storage=storage)}
                kind = artifact_mimetype(meta[artifact_id].filename) if artifact_id in meta else None
            except Exception:          # an unknown trial: the dashboard answers 404 itself
                kind = None
            if kind and status.startswith("200"):
                headers = [(k, v) for k, v in headers if k.lower() != "content-type"] + [("Content-Type", kind)]
            return start_response(status, headers, exc_info)
        return app(environ, start)
    return typed


def serve(storage: Any, artifacts: Path, host: str, port: int) -> None:
    """Serve until interrupted (wsgiref, as optuna_dashboard.run_server, but threaded)."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    import optuna
    import optuna_dashboard

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:     # no line per request on stderr
            pass

    store = optuna.artifacts.FileSystemArtifactStore(base_path=str(artifacts))
    app = text_artifacts(optuna_dashboard.wsgi(storage, artifact_store=store), storage)

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        """A thread per connection: a browser's idle pre-opened connection must not stall the others."""
        daemon_threads = True
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    with make_server(host, port, app, server_class=Server, handler_class=Quiet) as httpd:
        print(f"optuna-dashboard on http://{host}:{port}", file=sys.stderr, flush=True)
        httpd.serve_forever()
