"""A tiny stand-in for the Hugging Face Hub, serving model repos from local folders over HTTP.

It answers just what huggingface_hub's `snapshot_download` and `hf_hub_download` ask of the Hub for a
model repo (as read in huggingface_hub 2.4):

- `GET /api/models/{repo_id}` and `GET /api/models/{repo_id}/revision/{revision}`: the repo info
  (`HfApi.model_info`); the client only needs `sha`, the commit the revision points to.
- `GET /api/models/{repo_id}/tree/{revision}[/{path}]?recursive=...`: the file listing
  (`HfApi.list_repo_tree`), one JSON page (no `Link` header, so no further pages).
- `HEAD /{repo_id}/resolve/{revision}/{path}`: the file metadata (`get_hf_file_metadata`): the client
  needs `X-Repo-Commit` and `ETag` (it names the cached blob after the ETag) and uses `Content-Length`
  as the expected size. Files are answered directly (no redirect), so no `X-Linked-*` headers.
- `GET /{repo_id}/resolve/{revision}/{path}`: the file bytes (`http_get`), with `Range: bytes=N-` honoured
  so an interrupted download can resume.

No Xet headers (`X-Xet-Hash`, ...) and no `xetHash` in listings are ever sent, so the client downloads
over plain HTTP. Unknown repos answer 404 with `X-Error-Code: RepoNotFound`, unknown revisions
`RevisionNotFound` and unknown files `EntryNotFound`, as the Hub does; huggingface_hub turns those
headers into `RepositoryNotFoundError`, `RevisionNotFoundError` and `RemoteEntryNotFoundError`.

Every request is recorded as `(method, path)` in `LocalHub.requests`, so tests can check that a
download really went over HTTP.
"""

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Every served repo is at this single commit; a revision is either "main" or this hash.
COMMIT_SHA = "0123456789abcdef0123456789abcdef01234567"
DEFAULT_BRANCH = "main"

_API_ROUTE = re.compile(
    r"^/api/models/(?P<repo_id>[^/]+/[^/]+)"
    r"(?:/revision/(?P<revision>[^/]+)|/tree/(?P<tree_revision>[^/]+)(?:/(?P<tree_path>.+))?)?$"
)
_RESOLVE_ROUTE = re.compile(r"^/(?P<repo_id>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")
_RANGE = re.compile(r"^bytes=(?P<start>\d+)-(?P<end>\d*)$")


class LocalHub:
    """Serves repos added with `add_repo(repo_id, folder)` at `url` until `stop()`."""

    def __init__(self):
        self.repos: dict[str, Path] = {}
        self.requests: list[tuple[str, str]] = []
        self.commit = COMMIT_SHA
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._stopped = False

    def start(self) -> "LocalHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (safe to call twice)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def add_repo(self, repo_id: str, folder) -> None:
        """Serve the files under `folder` as the model repo `repo_id` ("namespace/name")."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"not a folder: {folder}")
        if repo_id.count("/") != 1:
            raise ValueError(f"repo ids here are 'namespace/name', got {repo_id!r}")
        self.repos[repo_id] = folder

    def requested_paths(self, method: str | None = None) -> list[str]:
        """The paths requested so far (optionally only those of one HTTP method)."""
        with self._lock:
            return [path for verb, path in self.requests if method is None or verb == method]

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def files(self, repo_id: str) -> list[str]:
        """The repo's file paths, '/'-separated, relative to its folder, sorted."""
        root = self.repos[repo_id]
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _file_entry(root: Path, relative: str) -> dict:
    data = (root / relative).read_bytes()
    return {"type": "file", "path": relative, "size": len(data), "oid": _git_blob_sha(data)}


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _make_handler(hub: LocalHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # keep test output quiet
            pass

        # -- routing ----------------------------------------------------------------------------
        def do_GET(self):
            self._dispatch()

        def do_HEAD(self):  # same headers as GET, no body (see `_send`)
            self._dispatch()

        def _dispatch(self):
            path = unquote(urlsplit(self.path).path)
            hub._record(self.command, path)
            if match := _API_ROUTE.match(path):
                if self.command != "GET":
                    return self._error(405, None, "method not allowed")
                return self._api(**match.groupdict())
            if match := _RESOLVE_ROUTE.match(path):
                return self._resolve(**match.groupdict())
            self._error(404, None, f"no route for {path}")

        # -- API ---------------------------------------------------------------------------------
        def _api(self, repo_id, revision, tree_revision, tree_path):
            if not self._check_repo_and_revision(repo_id, revision or tree_revision or DEFAULT_BRANCH):
                return
            files = hub.files(repo_id)
            root = hub.repos[repo_id]
            if tree_revision is None:
                return self._json({
                    "id": repo_id,
                    "modelId": repo_id,
                    "author": repo_id.split("/")[0],
                    "sha": COMMIT_SHA,
                    "private": False,
                    "gated": False,
                    "disabled": False,
                    "tags": [],
                    "siblings": [{"rfilename": name} for name in files],
                })
            # Tree listing: files (and, when not recursive, the folders) under tree_path.
            recursive = self._query_flag("recursive")
            prefix = f"{tree_path.strip('/')}/" if tree_path else ""
            entries, folders = [], set()
            for name in files:
                if not name.startswith(prefix):
                    continue
                rest = name[len(prefix):]
                if "/" in rest and not recursive:
                    folders.add(prefix + rest.split("/")[0])
                    continue
                if recursive:  # the Hub lists the folders too in a recursive listing
                    parts = rest.split("/")[:-1]
                    folders.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
                entries.append(_file_entry(root, name))
            if prefix and not entries and not folders:
                return self._error(404, "EntryNotFound", f"{tree_path} does not exist in {repo_id}")
            entries += [{"type": "directory", "path": folder, "oid": hashlib.sha1(folder.encode()).hexdigest()}
                        for folder in sorted(folders)]
            self._json(entries)

        # -- files -------------------------------------------------------------------------------
        def _resolve(self, repo_id, revision, path):
            if not self._check_repo_and_revision(repo_id, revision):
                return
            file = hub.repos[repo_id] / path
            if ".." in Path(path).parts or not file.is_file():
                return self._error(404, "EntryNotFound", f"{path} does not exist in {repo_id}", commit=True)
            data = file.read_bytes()
            status, body, extra = 200, data, {"Accept-Ranges": "bytes"}
            if (requested := self.headers.get("Range")) and (match := _RANGE.match(requested.strip())):
                start = int(match["start"])
                end = min(int(match["end"]) if match["end"] else len(data) - 1, len(data) - 1)
                if start >= len(data):
                    return self._error(416, None, "range not satisfiable")
                status, body = 206, data[start:end + 1]
                extra["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._send(status, body, {
                "Content-Type": "application/octet-stream",
                "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                "X-Repo-Commit": COMMIT_SHA,
                **extra,
            })

        # -- helpers -----------------------------------------------------------------------------
        def _check_repo_and_revision(self, repo_id, revision) -> bool:
            if repo_id not in hub.repos:
                self._error(404, "RepoNotFound", f"Repository not found: {repo_id}")
                return False
            if revision not in (DEFAULT_BRANCH, COMMIT_SHA):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return False
            return True

        def _query_flag(self, name: str) -> bool:
            query = dict(part.partition("=")[::2] for part in urlsplit(self.path).query.split("&") if part)
            return query.get(name, "").lower() in ("1", "true")

        def _json(self, payload) -> None:
            self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})

        def _error(self, status, error_code, message, commit=False) -> None:
            headers = {"Content-Type": "application/json"}
            if error_code:
                headers.update({"X-Error-Code": error_code, "X-Error-Message": message})
            if commit:  # the Hub names the commit even when a file is missing
                headers["X-Repo-Commit"] = COMMIT_SHA
            self._send(status, json.dumps({"error": message}).encode(), headers)

        def _send(self, status: int, body: bytes, headers: dict) -> None:
            """Answer with `body`; a HEAD request gets the same headers (Content-Length included) but no body."""
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler
