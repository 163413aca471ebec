"""A stand-in for the Hugging Face Hub API: the few endpoints `srlm release` calls through the real
huggingface_hub client, served on 127.0.0.1 from a thread. It is not the Hub: repos live in memory,
every file is a regular (inline, base64) git blob (no LFS/Xet), commit ids are sha1s of our own making.

Routes (as called by huggingface_hub 1.x/2.x hf_api.py and _commit_api.py):
  POST /api/repos/create                              {name, organization, visibility, type}
  POST /api/validate-yaml                             {content, repoType}
  GET  /api/datasets/{org}/{name}[/revision/{rev}]    repo info; ?blobs=True adds blobId/size per sibling
  GET  /api/datasets/{org}/{name}/refs                branches and tags
  POST /api/datasets/{org}/{name}/preupload/{rev}     {files: [{path, sample, size}]} -> uploadMode, oid
  POST /api/datasets/{org}/{name}/commit/{rev}        NDJSON: header, file (base64), deletedFile, deletedFolder
  POST /api/datasets/{org}/{name}/tag/{rev}           {tag, message}

`faults[route] = n` makes the next n requests of that route ("commit", "tag", ...) drop the connection
without an answer, like a network failure mid-upload.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


def git_blob_sha1(data: bytes) -> str:
    """git's object id of a blob: what the Hub reports as a regular file's oid."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    summary: str
    description: str
    files: dict[str, bytes]


@dataclass
class Repo:
    private: bool
    commits: list[Commit] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # name -> commit oid

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def resolve(self, rev: str) -> Commit | None:
        oid = self.head.oid if rev == "main" else self.tags.get(rev, rev)
        return next((c for c in self.commits if c.oid == oid), None)


class HubStandIn:
    def __init__(self, token: str | None = None):
        self.token, self.repos, self.faults, self.requests = token, {}, {}, []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def commit(self, repo: Repo, files: dict[str, bytes], summary: str, description: str = "") -> Commit:
        blob = json.dumps(
            [
                repo.commits[-1].oid if repo.commits else None,
                summary,
                sorted((p, git_blob_sha1(b)) for p, b in files.items()),
            ]
        ).encode()
        c = Commit(hashlib.sha1(blob).hexdigest(), summary, description, files)
        repo.commits.append(c)
        return c

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet test output
                pass

            def _send(self, status: int, body: dict | None = None, error_code: str | None = None):
                data = json.dumps(body if body is not None else {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if error_code:
                    self.send_header("X-Error-Code", error_code)
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str):
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                route = parts[4] if len(parts) > 4 and parts[:2] == ["api", "datasets"] else "/".join(parts[:3])
                auth = self.headers.get("Authorization", "")
                hub.requests.append({"method": method, "route": route, "path": url.path, "auth": auth})
                if hub.faults.get(route, 0) > 0:
                    hub.faults[route] -= 1
                    self.close_connection = True  # no status line: the client sees a dropped connection
                    return
                if hub.token and auth != f"Bearer {hub.token}":
                    return self._send(401, {"error": "Invalid credentials in Authorization header"})
                with hub.lock:
                    return self._dispatch(method, parts, parse_qs(url.query), body)

            def _dispatch(self, method, parts, query, body):
                if method == "POST" and parts == ["api", "repos", "create"]:
                    req = json.loads(body)
                    repo_id = f"{req['organization']}/{req['name']}"
                    if req.get("type") != "dataset":
                        return self._send(400, {"error": "stand-in serves dataset repos only"})
                    if repo_id in hub.repos:
                        return self._send(
                            409,
                            {"error": "You already created this dataset repo", "url": f"{hub.url}/datasets/{repo_id}"},
                        )  # the client reads it
                    repo = hub.repos[repo_id] = Repo(private=req.get("visibility", "private") != "public")
                    hub.commit(
                        repo, {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}, "initial commit"
                    )
                    return self._send(200, {"url": f"{hub.url}/datasets/{repo_id}"})
                if method == "POST" and parts == ["api", "validate-yaml"]:
                    content = json.loads(body)["content"]
                    try:
                        yaml.safe_load(content.split("---")[1])
                    except (yaml.YAMLError, IndexError) as e:
                        return self._send(400, {"errors": [{"message": str(e)}], "warnings": []})
                    return self._send(200, {"errors": [], "warnings": []})
                if parts[:2] != ["api", "datasets"] or len(parts) < 4:
                    return self._send(404, {"error": "not found"})
                repo_id, rest = "/".join(parts[2:4]), parts[4:]
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._send(404, {"error": "Repository not found"}, "RepoNotFound")
                if method == "GET" and rest == ["refs"]:
                    ref = lambda name, kind, oid: {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}
                    return self._send(
                        200,
                        {
                            "branches": [ref("main", "heads", repo.head.oid)],
                            "converts": [],
                            "tags": [ref(t, "tags", oid) for t, oid in repo.tags.items()],
                        },
                    )
                rev = rest[1] if len(rest) > 1 else "main"
                commit = repo.resolve(rev)
                if commit is None:
                    return self._send(404, {"error": f"Invalid rev id: {rev}"}, "RevisionNotFound")
                if method == "GET" and rest[:1] in ([], ["revision"]):
                    blobs = query.get("blobs", ["false"])[0].lower() == "true"
                    siblings = [
                        {"rfilename": p, **({"blobId": git_blob_sha1(b), "size": len(b)} if blobs else {})}
                        for p, b in sorted(commit.files.items())
                    ]
                    return self._send(
                        200, {"id": repo_id, "sha": commit.oid, "private": repo.private, "siblings": siblings}
                    )
                if method == "POST" and rest[0] == "preupload":
                    files = json.loads(body)["files"]
                    return self._send(
                        200,
                        {
                            "files": [
                                {
                                    "path": f["path"],
                                    "uploadMode": "regular",
                                    "shouldIgnore": False,
                                    "oid": git_blob_sha1(commit.files[f["path"]])
                                    if f["path"] in commit.files
                                    else None,
                                }
                                for f in files
                            ]
                        },
                    )
                if method == "POST" and rest[0] == "commit":
                    return self._commit(repo_id, repo, commit, body)
                if method == "POST" and rest[0] == "tag":
                    req = json.loads(body)
                    if req["tag"] in repo.tags:
                        return self._send(409, {"error": f"Tag {req['tag']} already exists"})
                    repo.tags[req["tag"]] = commit.oid
                    return self._send(200, {})
                return self._send(404, {"error": "not found"})

            def _commit(self, repo_id: str, repo: Repo, parent: Commit, body: bytes):
                if parent is not repo.head:
                    return self._send(400, {"error": "stand-in commits to main only"})
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                files, header = dict(parent.files), lines[0]["value"]
                for item in lines[1:]:
                    key, value = item["key"], item["value"]
                    if key == "file":
                        files[value["path"]] = base64.b64decode(value["content"])
                    elif key == "deletedFile":
                        files.pop(value["path"], None)
                    elif key == "deletedFolder":
                        files = {p: b for p, b in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
                    else:
                        return self._send(400, {"error": f"stand-in does not implement {key}"})
                c = hub.commit(repo, files, header["summary"], header.get("description", ""))
                return self._send(
                    200,
                    {
                        "commitUrl": f"{hub.url}/datasets/{repo_id}/commit/{c.oid}",
                        "commitOid": c.oid,
                        "pullRequestUrl": None,
                    },
                )

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

        return Handler
