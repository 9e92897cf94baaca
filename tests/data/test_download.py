"""Downloads against a tiny HTTP server on 127.0.0.1 (never the official hosts)."""

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from segvit.data.download import Unreachable, fetch
from segvit.data.info import Download
from segvit.errors import SegvitError

PAYLOAD = bytes(range(256)) * 400  # 100 KiB
SHA1 = hashlib.sha1(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        server.ranges.append(self.headers.get("Range"))
        if self.path != "/file.zip":
            self.send_error(404)
            return
        start = 0
        if server.honour_range and self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            self.wfile.write(body[: server.cut_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-file
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.ranges, httpd.honour_range, httpd.cut_after = [], True, None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _item(server, sha1=SHA1, path="/file.zip"):
    url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    return Download(url, "file.zip", sha1, 0.0001)


def test_download_checks_the_sha1_and_renames_when_complete(server, tmp_path):
    path = fetch(_item(server), tmp_path, progress=False)
    assert path == tmp_path / "file.zip" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "file.zip.part").exists()
    assert fetch(_item(server, path="/gone"), tmp_path, progress=False) == path  # no request


def test_an_interrupted_download_resumes_with_range(server, tmp_path):
    server.cut_after = 30_000
    with pytest.raises(Unreachable, match="run again to resume"):
        fetch(_item(server), tmp_path, progress=False)
    part = tmp_path / "file.zip.part"
    assert 0 < part.stat().st_size < len(PAYLOAD) and not (tmp_path / "file.zip").exists()
    server.cut_after = None
    path = fetch(_item(server), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges[-1] == "bytes=30000-"


def test_a_server_ignoring_range_restarts_the_file(server, tmp_path):
    (tmp_path / "file.zip.part").write_bytes(b"garbage")
    server.honour_range = False
    assert fetch(_item(server), tmp_path, progress=False).read_bytes() == PAYLOAD


def test_a_checksum_mismatch_removes_the_download(server, tmp_path):
    with pytest.raises(SegvitError, match="does not match the published 0000"):
        fetch(_item(server, sha1="0" * 40), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_and_missing_files_raise_unreachable(server, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = Download(f"http://127.0.0.1:{port}/x.zip", "x.zip", None, None)
    with pytest.raises(Unreachable, match="unreachable"):
        fetch(closed, tmp_path, progress=False, timeout=5)
    with pytest.raises(Unreachable, match="HTTP 404"):
        fetch(_item(server, path="/nope.zip"), tmp_path, progress=False)


def test_file_urls_work(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(PAYLOAD)
    item = Download(source.as_uri(), "copy.bin", SHA1, None)
    assert fetch(item, tmp_path / "out", progress=False).read_bytes() == PAYLOAD
