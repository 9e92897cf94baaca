"""A stand-in for the Hugging Face hub on 127.0.0.1: the resolve protocol as hf_hub_download
(huggingface_hub 2.x) speaks it, and the two API answers snapshot_download reads first (the
revision's commit, the file list), no more.

`HEAD /{repo}/resolve/{revision}/{filename}` answers the metadata the library reads
(X-Repo-Commit, ETag and X-Linked-Etag: the LFS SHA-256, X-Linked-Size, Content-Length);
`GET` serves the bytes, honouring `Range: bytes=N-` with a 206. (The hub redirects an LFS
file to its storage host; here the first answer carries what the redirect's would.) An
unknown file is a 404 with `X-Error-Code: EntryNotFound`, as the hub sends it. `point_hub`
sets the environment a user would (HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE) and has
huggingface_hub read it again, as at import. Loaded by path (tests have no package).
"""

import hashlib
import importlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = hashlib.sha1(b"segvit test commit").hexdigest()  # what `main` resolves to


@dataclass
class HubFile:
    body: bytes
    sha256: str = ""  # the digest the server states; defaults to the body's own
    cut_after: int | None = None  # drop the connection after this many body bytes
    cuts: int = 1  # of that many GETs; the ones after get the whole answer

    def __post_init__(self) -> None:
        self.sha256 = self.sha256 or hashlib.sha256(self.body).hexdigest()


@dataclass
class Hub:
    """What the server holds and what it was asked (method, path, Range header)."""

    repo: str
    files: dict[str, HubFile] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    endpoint: str = ""


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one connection per request, so a stopped server answers nothing (a kept-alive
    # connection would outlive `stop`); the protocol is the same otherwise.
    protocol_version = "HTTP/1.0"

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        hub: Hub = self.server.hub
        wanted = self.headers.get("Range")
        hub.requests.append((self.command, self.path, wanted))
        if self.path.startswith(f"/api/models/{hub.repo}/"):
            self._answer_api(body=body)
            return
        name = None
        for revision in ("main", COMMIT):  # snapshot_download asks by the resolved commit
            prefix = f"/{hub.repo}/resolve/{revision}/"
            if self.path.startswith(prefix):
                name = self.path[len(prefix) :]
        item = hub.files.get(name) if name is not None else None
        if item is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = len(item.body)
        start = int(wanted.split("=")[1].split("-")[0]) if body and wanted else 0
        data = item.body[start:]
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{item.sha256}"')
        self.send_header("X-Linked-Etag", f'"{item.sha256}"')
        self.send_header("X-Linked-Size", str(size))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        name = self.path.rsplit("/", 1)[1]  # the hub's storage names the file (progress bar)
        self.send_header("Content-Disposition", f'inline; filename="{name}";')
        self.end_headers()
        if not body:
            return
        if item.cut_after is not None and item.cuts > 0:
            item.cuts -= 1
            self.wfile.write(data[: item.cut_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-body
            return
        self.wfile.write(data)

    def _answer_api(self, *, body: bool) -> None:
        """snapshot_download's two questions: the revision's commit (repo_info) and the
        file list at that commit (list_repo_tree), as JSON."""
        hub: Hub = self.server.hub
        route = self.path.split("?")[0].removeprefix(f"/api/models/{hub.repo}/")
        if route == "revision/main":
            siblings = [{"rfilename": name} for name in hub.files]
            answer = {"id": hub.repo, "sha": COMMIT, "siblings": siblings, "private": False}
        elif route == f"tree/{COMMIT}":
            answer = [
                {
                    "type": "file",
                    "path": name,
                    "size": len(item.body),
                    "oid": hashlib.sha1(item.body).hexdigest(),
                    "lfs": {"oid": item.sha256, "size": len(item.body), "pointerSize": 130},
                }
                for name, item in hub.files.items()
            ]
        else:
            answer = None
        data = json.dumps(answer).encode() if answer is not None else b""
        self.send_response(200 if answer is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


class HubServer:
    """Serves `files` of `repo` on a free loopback port from `start()` until `stop()`."""

    def __init__(self, files: dict[str, HubFile], repo: str = "Akide/SegViTv1") -> None:
        self.hub = hub = Hub(repo, files)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = hub
        hub.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self.running = False

    def start(self) -> None:
        self._thread.start()
        self.running = True

    def stop(self) -> None:
        """Stop serving and close the port: later requests are refused."""
        if self.running:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=10)
            self.running = False


def point_hub(monkeypatch, *, endpoint: str, home: Path, offline: bool = False) -> None:
    """huggingface_hub as a user with these variables set would run it. The library reads them
    into `huggingface_hub.constants` at import, so that module is read again (the caller
    reads it once more after `monkeypatch.undo()`); a fresh HTTP client drops kept
    connections and proxies are cleared, so nothing leaves 127.0.0.1."""
    from huggingface_hub import close_session, constants

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    importlib.reload(constants)
    close_session()


@contextmanager
def serving(
    monkeypatch, tmp_path: Path, files: dict[str, HubFile], repo: str = "Akide/SegViTv1"
) -> Iterator[HubServer]:
    """A running stand-in hub with huggingface_hub pointed at it (HF_HOME: tmp_path/hf) and
    $SEGVIT_WEIGHTS at tmp_path/weights; afterwards the environment and the library's
    constants are those of outside again."""
    from huggingface_hub import constants

    server = HubServer(files, repo)
    server.start()
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path / "weights"))
    point_hub(monkeypatch, endpoint=server.hub.endpoint, home=tmp_path / "hf")
    try:
        yield server
    finally:
        server.stop()
        monkeypatch.undo()
        importlib.reload(constants)
