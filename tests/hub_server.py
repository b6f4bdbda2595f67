"""A local stand-in for the Hugging Face Hub's file-download API, so tests run the real ``huggingface_hub`` code.

It speaks what ``hf_hub_download`` uses, the way huggingface.co does:

* ``HEAD|GET /{owner}/{repo}/resolve/{revision}/{file}``. A regular (git) file answers 200 with its git-sha1
  ``ETag``, ``X-Repo-Commit`` and ``Content-Length``. A large (LFS) file answers ``302`` to a second server on another
  port (the CDN) with ``X-Linked-Etag`` (its sha256), ``X-Linked-Size`` and ``X-Repo-Commit``.
* ``GET /blobs/{sha256}`` on the CDN, with ``Range: bytes=N-`` answered ``206`` (what a resumed download asks).
* Errors carry the Hub's ``X-Error-Code``: an anonymous request for a missing or private repository gets ``401
  RepoNotFound`` (the Hub does not tell the two apart without a token), an authenticated one for a missing repository
  ``404 RepoNotFound``; a bad token ``401``; a missing file ``404 EntryNotFound``; an unknown revision
  ``404 RevisionNotFound``.

Faults a test can switch on: a connection cut after N bytes (once), the whole server stopping after N bytes,
altered bytes behind correct headers, a slow transfer, and answers without the Hub's headers. Every request is logged in :attr:`HubServer.requests`.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin")
TOKEN = "hf_localtesttoken"


def git_sha1(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub sends as the ETag of a file stored in git)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _altered(data: bytes) -> bytes:
    """The same number of bytes, the first half scrambled."""
    return bytes(b ^ 0x5A for b in data[: len(data) // 2]) + data[len(data) // 2:]


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str
    private: bool = False


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None
    file: str | None = None  # the repository file asked for (resolved for CDN requests)


@dataclass
class Faults:
    """Misbehaviour, by file name (the file's name inside its repository)."""

    cut_after: dict[str, int] = field(default_factory=dict)  # close the connection after N body bytes, once
    die_after: dict[str, int] = field(default_factory=dict)  # stop the whole server after N body bytes, once
    corrupt: set[str] = field(default_factory=set)  # serve altered bytes (same length) behind the true headers
    bytes_per_s: float | None = None  # slow down every CDN transfer to this rate
    not_a_hub: bool = False  # answer without the Hub's X-Repo-Commit header, like an ordinary web server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hub: "HubServer", role: str) -> None:
        self.hub = hub
        self.role = role  # "hub" or "cdn"
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[no-untyped-def]
        self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """End kept-alive connections too, so that a stopped server answers nothing at all."""
        for conn in list(self.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        hub = self.server.hub
        path = unquote(urlsplit(self.path).path)
        self.logged = Request(self.command, path, self.headers.get("Range"), self.headers.get("Authorization"))
        hub.requests.append(self.logged)
        try:
            if self.server.role == "cdn":
                self._blob(path, body)
            else:
                self._resolve(path, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- the Hub ---------------------------------------------------------------------------------------------

    def _error(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        data = message.encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _resolve(self, path: str, body: bool) -> None:
        hub = self.server.hub
        parts = path.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            self._error(404, None, "Not Found")
            return
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        self.logged.file = filename
        auth = self.headers.get("Authorization")
        repo = hub.repos.get(repo_id)
        if auth is not None and auth != f"Bearer {TOKEN}":
            self._error(401, None, "Invalid credentials in Authorization header")
            return
        if repo is None or (repo.private and auth is None):
            if auth is None:
                self._error(401, "RepoNotFound", "Invalid username or password.")
            else:
                self._error(404, "RepoNotFound", "Repository not found")
            return
        if revision not in ("main", repo.commit):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
            return
        data = repo.files.get(filename)
        if data is None:
            self._error(404, "EntryNotFound", "Entry not found", commit=repo.commit)
            return
        if hub.faults.not_a_hub:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)
            return
        if filename.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            self.send_response(302)
            self.send_header("Location", f"{hub.cdn_endpoint}/blobs/{sha}?repo={repo_id}&file={filename}")
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", f'"{git_sha1(sha.encode())}"')  # the pointer file's id, as on the Hub
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("ETag", f'"{git_sha1(data)}"')
        self.send_header("Content-Type", "application/json" if filename.endswith(".json") else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(_altered(data) if filename in hub.faults.corrupt else data)

    # -- the CDN ---------------------------------------------------------------------------------------------

    def _blob(self, path: str, body: bool) -> None:
        hub = self.server.hub
        sha = path.rsplit("/", 1)[-1]
        found = hub.blob(sha)
        if found is None:
            self._error(404, None, "NoSuchKey")
            return
        filename, data = found
        self.logged.file = filename
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
        if start >= len(data) and data:
            self._error(416, None, "Range Not Satisfiable")
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{sha}"')
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if not body:
            return
        faults = hub.faults
        if filename in faults.corrupt:
            data = _altered(data)
        cut = faults.cut_after.pop(filename, None)
        die = faults.die_after.pop(filename, None)
        stop_at = min(x for x in (cut, die, len(data)) if x is not None)
        pos = start
        step = 16 * 1024
        while pos < stop_at:
            if hub.stopping.is_set():
                break
            end = min(pos + step, stop_at)
            self.wfile.write(data[pos:end])
            self.wfile.flush()
            hub.sent[filename] = hub.sent.get(filename, 0) + (end - pos)
            pos = end
            if faults.bytes_per_s:
                time.sleep(step / faults.bytes_per_s)
        if pos < len(data):  # cut short: drop the connection without finishing the body
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if die is not None:
                threading.Thread(target=hub.stop, daemon=True).start()


class HubServer:
    """Two threaded HTTP servers on 127.0.0.1 (the Hub and its CDN), on free ports that survive a restart."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.faults = Faults()
        self.sent: dict[str, int] = {}  # body bytes the CDN sent, per file name
        self.stopping = threading.Event()
        self._servers: list[_Server] = []
        self._ports = (0, 0)
        self._lock = threading.Lock()

    # -- content ---------------------------------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: dict[str, bytes] | Path, private: bool = False) -> str:
        """Publish a repository (a folder, or file name -> bytes); returns its commit id."""
        if isinstance(files, Path):
            files = {p.name: p.read_bytes() for p in sorted(files.iterdir()) if p.is_file()}
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(name.encode() + files[name])
        self.repos[repo_id] = Repo(dict(files), digest.hexdigest(), private)
        return self.repos[repo_id].commit

    def blob(self, sha: str) -> tuple[str, bytes] | None:
        for repo in self.repos.values():
            for name, data in repo.files.items():
                if name.endswith(LFS_SUFFIXES) and hashlib.sha256(data).hexdigest() == sha:
                    return name, data
        return None

    # -- lifetime --------------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._ports[0]}"

    @property
    def cdn_endpoint(self) -> str:
        return f"http://127.0.0.1:{self._ports[1]}"

    @property
    def running(self) -> bool:
        return bool(self._servers)

    def start(self) -> "HubServer":
        """Start (or restart, on the same ports) both servers."""
        with self._lock:
            if self._servers:
                return self
            self.stopping.clear()
            for i, role in enumerate(("hub", "cdn")):
                server = _Server(("127.0.0.1", self._ports[i]), self, role)
                threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
                self._servers.append(server)
            self._ports = (self._servers[0].server_address[1], self._servers[1].server_address[1])
        return self

    def stop(self) -> None:
        """Stop both servers: new connections are refused and transfers in progress end."""
        with self._lock:
            self.stopping.set()
            for server in self._servers:
                server.shutdown()
                server.server_close()
                server.drop_connections()
            self._servers = []

    def count(self, method: str | None = None, file: str | None = None) -> int:
        """How many logged requests have this method and ask for this repository file (None: any)."""
        return sum(1 for r in self.requests if method in (None, r.method) and file in (None, r.file))
