"""An HTTP double of the Kubeflow Pipelines v2beta1 REST API (the part kfp.Client uses).

No KFP server can run on this machine (it needs Kubernetes, MySQL and object storage), so
tests point the real `kfp.Client` (kfp 2.17, kfp_server_api) at this double, served by
`http.server` on 127.0.0.1 in a thread. It follows the behaviour of the KFP API server
(backend/src/apiserver/server/pipeline_upload_server.go and the v2beta1 protos):

- GET  /apis/v2beta1/healthz
- GET  /apis/v2beta1/pipelines                 (filter on display_name/name EQUALS, sort_by,
                                                page_size/page_token)
- GET/DELETE /apis/v2beta1/pipelines/{id}      (DELETE refuses while versions remain, as the
                                                server does without cascade)
- POST /apis/v2beta1/pipelines/upload          (multipart `uploadfile`; query name, display_name,
                                                description; creates the pipeline AND its first
                                                version, which takes the pipeline's name and
                                                description; 409 on a duplicate name)
- POST /apis/v2beta1/pipelines/upload_version  (query name, pipelineid, description; 409 on a
                                                duplicate version name in the pipeline)
- GET  /apis/v2beta1/pipelines/{id}/versions   (sort_by "created_at desc", paging)
- GET/DELETE /apis/v2beta1/pipelines/{id}/versions/{vid}
- GET/POST /apis/v2beta1/experiments, GET /experiments/{id}   (list filters on display_name)
- GET/POST /apis/v2beta1/recurringruns, GET/DELETE /recurringruns/{id}, POST {id}:enable|:disable
                                               (list: `experiment_id`, filter; the JSON list key
                                               is `recurringRuns`, as the server's proto names it)
- GET/POST /apis/v2beta1/runs, GET /runs/{id}  (a created run stays PENDING: nothing executes)

`pipeline_spec` comes back as the uploaded YAML parsed to JSON (a second document, the
platform spec, makes it {"pipeline_spec": ..., "platform_spec": ...} as on the server).
`fail(n, method, path)` may return an HTTP status to answer the n-th request with (503/429
injection); `hits` counts requests by path. With `token`, the double stands behind an
authenticating proxy (IAP, Istio, oauth2-proxy in front of the API server): a request without
`Authorization: Bearer <token>` is answered 401, healthz included. `authorizations` counts the
Authorization headers received (None: no header).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

import yaml

API = "/apis/v2beta1"
_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


class KfpDouble:
    def __init__(self, fail: Callable[[int, str, str], int | None] | None = None, token: str | None = None):
        self.token = token
        self.authorizations: Counter[str | None] = Counter()
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}  # pipeline id -> versions, oldest first
        # experiments, recurringruns, runs: id -> object as the server returns it
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"experiments": {}, "recurringruns": {}, "runs": {}}
        self.fail = fail
        self.count = 0
        self.hits: Counter[str] = Counter()
        self._tick = 0
        self.lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                with double.lock:
                    double.count += 1
                    double.hits[f"{self.command} {url.path}"] += 1
                    status = double.fail(double.count, self.command, url.path) if double.fail else None
                    auth = self.headers.get("Authorization")
                    double.authorizations[auth] += 1
                    if double.token is not None and auth != f"Bearer {double.token}":
                        code, doc = 401, {"error": "unauthenticated", "code": 16, "message": "unauthenticated"}
                    elif status:
                        code, doc = status, {"error": "injected failure", "code": 14, "message": "unavailable"}
                    else:
                        code, doc = double.route(self.command, url.path, query, body, self.headers)
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "KfpDouble":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- state --------------------------------------------------------------------------------

    def _now(self) -> str:
        # Strictly increasing creation times, so "newest" is well defined.
        self._tick += 1
        return (_EPOCH + timedelta(seconds=self._tick)).strftime("%Y-%m-%dT%H:%M:%SZ")

    @staticmethod
    def _spec(data: bytes) -> Any:
        docs = [d for d in yaml.safe_load_all(data) if d is not None]
        if len(docs) == 2:
            return {"pipeline_spec": docs[0], "platform_spec": docs[1]}
        return docs[0] if docs else None

    def add_version(self, pipeline_id: str, name: str, data: bytes, description: str = "") -> dict[str, Any]:
        """Also used by tests to play someone uploading a version behind specops's back."""
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": str(uuid.uuid4()), "name": name,
                   "display_name": name, "description": description, "created_at": self._now(),
                   "pipeline_spec": self._spec(data)}
        self.versions.setdefault(pipeline_id, []).append(version)
        return version

    # ---- routing ------------------------------------------------------------------------------

    @staticmethod
    def _error(code: int, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"error": message, "message": message, "code": {400: 3, 404: 5, 409: 6}.get(code, 2)}

    @staticmethod
    def _file(body: bytes, headers: Any) -> bytes | None:
        ctype = headers.get("Content-Type", "")
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        for part in msg.iter_parts() if msg.is_multipart() else ():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                return part.get_payload(decode=True)
        return None

    @staticmethod
    def _page(items: list[dict[str, Any]], query: dict[str, str], key: str) -> dict[str, Any]:
        flt = json.loads(query["filter"]) if query.get("filter") else {}
        for pred in flt.get("predicates", []):
            if pred.get("operation") not in ("EQUALS", 1):
                raise ValueError(f"unsupported filter operation {pred.get('operation')}")
            items = [i for i in items if i.get(pred["key"]) == pred.get("stringValue", pred.get("string_value"))]
        sort = query.get("sort_by", "")
        if sort:
            field, _, order = sort.partition(" ")
            items = sorted(items, key=lambda i: i.get(field) or "", reverse=order == "desc")
        start = int(query.get("page_token") or 0)
        size = int(query.get("page_size") or 10)
        page = items[start:start + size]
        doc: dict[str, Any] = {key: page, "total_size": len(items)}
        if start + size < len(items):
            doc["next_page_token"] = str(start + size)
        if not page:
            doc.pop(key)  # the server omits empty lists
        return doc

    def route(self, method: str, path: str, query: dict[str, str], body: bytes,
              headers: Any) -> tuple[int, dict[str, Any]]:
        if not path.startswith(API):
            return self._error(404, f"no route {path}")
        parts = path[len(API):].strip("/").split("/")
        if parts == ["healthz"] and method == "GET":
            return 200, {"multi_user": False, "pipeline_store": "database"}
        if parts[0] in self.objects:
            return self._objects(method, parts, query, body)
        if parts[0] != "pipelines":
            return self._error(404, f"no route {path}")
        if parts == ["pipelines"] and method == "GET":
            try:
                return 200, self._page(list(self.pipelines.values()), query, "pipelines")
            except ValueError as e:
                return self._error(400, str(e))
        if parts == ["pipelines", "upload"] and method == "POST":
            data = self._file(body, headers)
            name = query.get("name") or query.get("display_name")
            if data is None or not name:
                return self._error(400, "Failed to read pipeline from file")
            if any(p["name"] == name for p in self.pipelines.values()):
                return self._error(409, "Failed to create a pipeline and a pipeline version")
            pid = str(uuid.uuid4())
            desc = query.get("description", "")
            pipeline = {"pipeline_id": pid, "name": name, "display_name": query.get("display_name") or name,
                        "description": desc, "created_at": self._now()}
            self.pipelines[pid] = pipeline
            self.add_version(pid, name, data, desc)
            return 200, pipeline
        if parts == ["pipelines", "upload_version"] and method == "POST":
            data = self._file(body, headers)
            pid, name = query.get("pipelineid", ""), query.get("name") or query.get("display_name")
            if data is None or not name or pid not in self.pipelines:
                return self._error(400, "Failed to create a pipeline version")
            if any(v["name"] == name for v in self.versions.get(pid, [])):
                return self._error(409, "Failed to create a pipeline version")
            return 200, self.add_version(pid, name, data, query.get("description", ""))
        pid = parts[1]
        if pid not in self.pipelines:
            return self._error(404, f"pipeline {pid} not found")
        if len(parts) == 2:
            if method == "GET":
                return 200, self.pipelines[pid]
            if method == "DELETE":
                if self.versions.get(pid):
                    return self._error(400, f"pipeline {pid} has versions; delete them first")
                del self.pipelines[pid]
                return 200, {}
        if len(parts) == 3 and parts[2] == "versions" and method == "GET":
            return 200, self._page(list(self.versions.get(pid, [])), query, "pipeline_versions")
        if len(parts) == 4 and parts[2] == "versions":
            versions = self.versions.get(pid, [])
            found = [v for v in versions if v["pipeline_version_id"] == parts[3]]
            if not found:
                return self._error(404, f"pipeline version {parts[3]} not found")
            if method == "GET":
                return 200, found[0]
            if method == "DELETE":
                versions.remove(found[0])
                return 200, {}
        return self._error(404, f"no route {method} {path}")

    _ID = {"experiments": "experiment_id", "recurringruns": "recurring_run_id", "runs": "run_id"}
    _LIST = {"experiments": "experiments", "recurringruns": "recurringRuns", "runs": "runs"}

    def _objects(self, method: str, parts: list[str], query: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        kind = parts[0]
        store = self.objects[kind]
        if len(parts) == 1 and method == "GET":
            items = list(store.values())
            if query.get("experiment_id"):
                items = [i for i in items if i.get("experiment_id") == query["experiment_id"]]
            try:
                return 200, self._page(items, query, self._LIST[kind])
            except ValueError as e:
                return self._error(400, str(e))
        if len(parts) == 1 and method == "POST":
            obj = json.loads(body or b"{}")
            if not obj.get("display_name"):
                return self._error(400, f"{kind}: display_name is required")
            if kind == "experiments" and any(e["display_name"] == obj["display_name"] for e in store.values()):
                return self._error(409, "experiment already exists")
            if kind != "experiments" and obj.get("experiment_id") not in self.objects["experiments"]:
                return self._error(400, f"{kind}: unknown experiment_id {obj.get('experiment_id')!r}")
            obj[self._ID[kind]] = str(uuid.uuid4())
            obj["created_at"] = self._now()
            if kind == "recurringruns":
                obj["status"] = "ENABLED" if obj.get("mode", "ENABLE") == "ENABLE" else "DISABLED"
            if kind == "runs":
                obj["state"] = "PENDING"
            store[obj[self._ID[kind]]] = obj
            return 200, obj
        oid, _, verb = parts[1].partition(":") if len(parts) == 2 else ("", "", "")
        if oid not in store:
            return self._error(404, f"{kind} {oid} not found")
        if method == "GET" and not verb:
            return 200, store[oid]
        if method == "DELETE" and not verb and kind != "experiments":
            del store[oid]
            return 200, {}
        if method == "POST" and kind == "recurringruns" and verb in ("enable", "disable"):
            store[oid].update(mode=verb.upper(), status="ENABLED" if verb == "enable" else "DISABLED")
            return 200, {}
        return self._error(404, f"no route {method} /{'/'.join(parts)}")
