"""Provider for Kubeflow Pipelines: `kfp_pipeline` (plan/apply, live side) through kfp.Client.

Talks to the KFP v2beta1 REST API with kfp 2.17's own client (`kfp.Client(host=target.host)`,
imported inside functions; it calls /apis/v2beta1/healthz when constructed).

Credentials: the target's `credentials` secretRef (options["credentials"], a reference) is read
when the client is made (specops.runtime.secrets: env, a mounted Kubernetes Secret or AWS
Secrets Manager; `key` picks a JSON field, or names the mounted file) and sent as kfp's
`existing_token`: `Authorization: Bearer <token>` on every request, as a KFP behind an
authenticating proxy (IAP, Istio, oauth2-proxy) wants. The value is never printed or recorded.
A missing or refused credential (HTTP 401/403 on healthz) is one line at once.

- Live identity: the pipeline whose display name is `<model>-<env>` (`kfp.pipeline_name`).
  KFP ids are server UUIDs with no content in them, so the content hash travels with each
  version: the version name is `<pipeline>-<hash[:16]>` (`-N` appended if that name is taken
  by an older upload of the same content) and its description holds the full hash
  (`specops content-hash <sha256>`). The first apply uses `upload_pipeline`, whose first
  version takes the pipeline's name and description (KFP server behaviour), so the full hash
  is read from descriptions.
- read(): the newest version (created_at) says what runs. If it carries a specops hash, that
  is `Live.content_hash`; if someone uploaded a version behind specops's back, the hash of
  its pipeline spec is reported instead, which no desired hash equals (drift).
  `Live.attributes` is the newest version's pipeline_spec as the server returns it.
- apply(): create the pipeline, or add a version when the newest one is not the desired
  content; a no-op when it is (so a retry after a crash before state was written creates
  nothing). delete(): every version, then the pipeline (the server refuses otherwise).
- Throttling / 5xx / connection errors (`ApiException` 429 or >= 500, urllib3 errors) are
  `RetryableError`s retried with `provider.retrying()` (tenacity, jittered exponential
  backoff); other API errors are one-line `ProviderError`s.

- Schedules: `schedule.json` is a recurring run named `<pipeline>-schedule` in the experiment
  `specops-<env>`, on the version apply just made the newest (cron with KFP's seconds field,
  max_concurrency, no_catchup, enabled). KFP has no update for recurring runs: one that differs
  is deleted and created again. read() projects the live recurring run onto the recorded
  `schedule.json`, so one edited, disabled or deleted behind specops's back is drift; a
  schedule the spec dropped is deleted by apply.
- start(): a monitor's retrain run (specops.ops.monitor) as one run in that experiment, named
  `retrain-<run id>`; a run already named so is returned instead of starting a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import tempfile
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from specops.backends import kfp as kfp_backend
from specops.backends.provider import (
    Desired,
    Live,
    ProviderError,
    RetryableError,
    retrying,
)
from specops.runtime.secrets import SecretError, read_secret

if TYPE_CHECKING:
    from specops import ir
    from specops.state import ResourceState

HASH_NOTE = "specops content-hash "
_HASH_IN_DESCRIPTION = re.compile(r"specops content-hash ([0-9a-f]{64})")
PAGE_SIZE = 100
T = TypeVar("T")


def provider(type: str, *, env: str, target: "ir.Target", root: Path, options: dict) -> "KfpPipelineProvider":
    if type != "kfp_pipeline":
        raise ProviderError(f"specops.backends.kfp_provider has no resource type '{type}'")
    return KfpPipelineProvider(env=env, target=target, root=root, options=options)


def pipeline_name_for(name: str, env: str) -> str:

    return kfp_backend.pipeline_name(SimpleNamespace(name=name, env=env))  # type: ignore[arg-type]


def version_name(pipeline: str, content_hash: str, n: int = 1) -> str:
    base = f"{pipeline}-{content_hash[:16]}"
    return base if n <= 1 else f"{base}-{n}"


def version_hash(version: Any) -> str | None:
    """The full specops content hash a version carries (its description), or None."""
    m = _HASH_IN_DESCRIPTION.search(getattr(version, "description", None) or "")
    return m.group(1) if m else None


def spec_hash(spec: Any) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _translate(err: BaseException, what: str) -> ProviderError:
    if isinstance(err, ProviderError):
        return err
    status = getattr(err, "status", None)
    if status is not None and type(err).__name__ == "ApiException":
        reason = (getattr(err, "reason", "") or "").strip()
        body = getattr(err, "body", "") or ""
        try:
            detail = json.loads(body).get("message") or json.loads(body).get("error") or ""
        except (ValueError, AttributeError):
            detail = str(body)[:200]
        line = f"{what}: HTTP {status} {reason}{': ' + str(detail).splitlines()[0] if detail else ''}"
        if status == 429 or status >= 500:
            return RetryableError(line)
        return ProviderError(line)
    mod = type(err).__module__
    if mod.startswith("urllib3") or isinstance(err, (ConnectionError, TimeoutError)):
        return RetryableError(f"{what}: cannot reach the KFP API ({type(err).__name__})")
    if isinstance(err, ValueError):  # kfp's own checks (e.g. two pipelines with one name)
        return ProviderError(f"{what}: {err}")
    raise err


class KfpPipelineProvider:
    TYPE = "kfp_pipeline"

    def __init__(self, *, env: str, target: "ir.Target", root: Path, options: dict | None = None):
        self.env, self.target, self.root = env, target, Path(root)
        self.options = dict(options or {})
        self.host = self.options.get("host") or target.host
        self._client: Any = None
        self._lock = threading.Lock()

    # ---- plumbing -------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """One API call: RetryableError retried by tenacity, the rest one line."""
        def once() -> T:
            try:
                return fn()
            except Exception as err:
                raise _translate(err, what) from None

        return retrying(once, attempts=int(self.options.get("max_attempts", 5)),
                        max_wait=float(self.options.get("max_wait", 20.0)))

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                if not self.host:
                    raise ProviderError(f"target '{self.target.name}' has no host: kfp_pipeline needs the "
                                        "KFP API address (targets.<name>.host)")

                token = self._token()
                self._refused(token)

                def make() -> Any:
                    import kfp

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", FutureWarning)
                        return kfp.Client(host=self.host, existing_token=token)

                self._client = self.call(f"connect to KFP at {self.host}", make)
            return self._client

    def _token(self) -> str | None:
        """The target's credential, read from where its secretRef says (None: none declared)."""
        ref = self.options.get("credentials")
        if not ref:
            return None
        try:
            return read_secret(ref, f"target '{self.target.name}' credentials")
        except SecretError as e:
            raise ProviderError(str(e)) from None

    def _refused(self, token: str | None) -> None:
        """One GET of healthz first: a 401/403 (no or a wrong token) is one line now. kfp.Client
        would retry its healthz call 5 times 5 s apart, log each failure with a traceback, and
        end in a TimeoutError that reads like a network problem. Anything else is left to it."""
        import urllib3

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = urllib3.request("GET", f"{self.host.rstrip('/')}/apis/v2beta1/healthz", headers=headers,
                                timeout=10.0, retries=False, redirect=False)
        except (urllib3.exceptions.HTTPError, OSError, ValueError, TypeError):
            return  # unreachable, a bad URL, an old urllib3: kfp.Client reports it as before
        if r.status in (401, 403):
            what = "was refused" if token else "is needed"
            raise ProviderError(f"KFP at {self.host} answered HTTP {r.status}: a credential {what} "
                                f"(targets.{self.target.name}.credentials)")

    def _quiet(self, fn: Callable[[], T]) -> Callable[[], T]:
        # kfp prints "Pipeline details: <link>" on every upload; the CLI owns stdout.
        def run() -> T:
            with contextlib.redirect_stdout(io.StringIO()):
                return fn()
        return run

    def find_pipeline(self, name: str) -> Any | None:
        c = self.client()
        flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
        resp = self.call(f"list pipelines named {name}", lambda: c.list_pipelines(filter=flt, page_size=10))
        found = list(resp.pipelines or [])
        if len(found) > 1:
            raise ProviderError(f"KFP at {self.host} has {len(found)} pipelines named '{name}'; "
                                "specops needs the name to be unique")
        return found[0] if found else None

    def versions(self, pipeline_id: str) -> list[Any]:
        """Every version of the pipeline, newest first."""
        c = self.client()
        out: list[Any] = []
        token = ""
        while True:
            resp = self.call(f"list versions of pipeline {pipeline_id}", lambda: c.list_pipeline_versions(
                pipeline_id=pipeline_id, page_token=token, page_size=PAGE_SIZE, sort_by="created_at desc"))
            out.extend(resp.pipeline_versions or [])
            token = resp.next_page_token or ""
            if not token:
                break
        # Sorted here too: the order is the contract read() relies on.
        return sorted(out, key=lambda v: (str(v.created_at or ""), v.pipeline_version_id or ""), reverse=True)

    def _name(self, desired: Desired | None, current: "ResourceState | None") -> str:
        if desired is not None:
            return pipeline_name_for(desired.name, desired.env)
        if current is not None:
            return current.outputs.get("pipeline_name") or pipeline_name_for(current.name, self.env)
        raise ProviderError("kfp_pipeline: read() needs a desired resource or a state entry")

    def _pipeline(self, name: str, current: "ResourceState | None") -> Any | None:
        pid = current.ids.get("pipeline_id") if current is not None else None
        if pid:
            c = self.client()
            try:
                return self.call(f"get pipeline {pid}", lambda: c.get_pipeline(pid))
            except ProviderError as e:
                if "HTTP 404" not in str(e):
                    raise
        return self.find_pipeline(name)

    # ---- Provider ------------------------------------------------------------------------------

    def read(self, desired: Desired | None, current: "ResourceState | None") -> Live:
        name = self._name(desired, current)
        pipeline = self._pipeline(name, current)
        if pipeline is None:
            return Live(exists=False)
        versions = self.versions(pipeline.pipeline_id)
        ids = {"pipeline_id": pipeline.pipeline_id}
        if not versions:
            return Live(exists=True, content_hash=None, attributes={}, ids=ids)
        newest = versions[0]
        spec = newest.pipeline_spec if isinstance(newest.pipeline_spec, dict) else {"pipeline_spec": newest.pipeline_spec}
        ids.update(version_id=newest.pipeline_version_id, version_name=newest.display_name or newest.name or "")
        content = version_hash(newest) or spec_hash(spec)
        recorded = (current.attributes or {}).get("schedule.json") if current is not None else None
        if not isinstance(recorded, dict) or "recurring_run" not in recorded:
            return Live(exists=True, content_hash=content, attributes=spec, ids=ids)
        # The recurring run beside the version: edited, disabled or deleted behind specops's
        # back is drift, shown field by field.
        live = self._named("recurring", recorded["recurring_run"])
        seen = _schedule_seen(live, recorded) if live is not None else {}
        if seen != _schedule_want(recorded):
            content = hashlib.sha256(("schedule " + json.dumps(seen, sort_keys=True)).encode()).hexdigest()
        if live is not None:
            ids["recurring_run_id"] = live.recurring_run_id
        return Live(exists=True, content_hash=content, attributes={"pipeline.yaml": spec, "schedule.json": seen},
                    ids=ids)

    def apply(self, desired: Desired, current: "ResourceState | None") -> tuple[dict[str, str], dict[str, Any]]:
        try:
            return self._apply(desired, current)
        except ProviderError as e:
            # 409: an upload we retried had landed (or a concurrent apply won); look again once.
            if "HTTP 409" not in str(e):
                raise
            return self._apply(desired, current)

    def _apply(self, desired: Desired, current: "ResourceState | None") -> tuple[dict[str, str], dict[str, Any]]:
        name = pipeline_name_for(desired.name, desired.env)
        package = _file(desired, "pipeline.yaml")
        description = f"{HASH_NOTE}{desired.content_hash} ({desired.spec})"
        c = self.client()
        outputs: dict[str, Any] = {"pipeline_name": name, "host": self.host}
        with tempfile.TemporaryDirectory(prefix="specops-kfp-") as tmp:
            path = str(Path(tmp) / "pipeline.yaml")
            Path(path).write_bytes(package)
            pipeline = self._pipeline(name, current)
            if pipeline is None:
                pipeline = self.call(f"upload pipeline {name}", self._quiet(lambda: c.upload_pipeline(
                    path, pipeline_name=name, description=description)))
                newest = self.versions(pipeline.pipeline_id)[0]
                outputs["action"] = "create"
            else:
                versions = self.versions(pipeline.pipeline_id)
                if versions and version_hash(versions[0]) == desired.content_hash:
                    newest = versions[0]
                    outputs["action"] = "noop"
                else:
                    taken = {v.display_name or v.name for v in versions}
                    n = 1
                    while version_name(name, desired.content_hash, n) in taken:
                        n += 1  # same content uploaded before, not the newest now (a rollback)
                    vname = version_name(name, desired.content_hash, n)
                    newest = self.call(f"upload version {vname} of {name}", self._quiet(
                        lambda: c.upload_pipeline_version(path, vname, pipeline_id=pipeline.pipeline_id,
                                                          description=description)))
                    outputs["action"] = "update"
        outputs["version_name"] = newest.display_name or newest.name
        ids = {"pipeline_id": pipeline.pipeline_id, "version_id": newest.pipeline_version_id}
        schedule = _maybe_file(desired, "schedule.json")
        if schedule is not None:
            ids["recurring_run_id"], outputs["schedule"] = self._upsert_schedule(
                json.loads(schedule), pipeline.pipeline_id, newest.pipeline_version_id)
        elif current is not None and current.ids.get("recurring_run_id"):
            # The spec dropped its schedule: the old one must not keep starting runs.
            self._delete_recurring(current.ids["recurring_run_id"])
            outputs["schedule"] = "delete"
        return ids, outputs

    # ---- schedules and runs --------------------------------------------------------------------

    def experiment_id(self) -> str:
        """The id of the experiment `specops-<env>` (created on first use) that holds this
        environment's recurring runs and retrain runs."""
        c = self.client()
        name = f"specops-{self.env}"
        flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
        found = self.call(f"list experiments named {name}", lambda: c.list_experiments(filter=flt, page_size=10))
        if found.experiments:
            return found.experiments[0].experiment_id
        return self.call(f"create experiment {name}", self._quiet(lambda: c.create_experiment(name))).experiment_id

    def _named(self, kind: str, display: str) -> Any | None:
        c = self.client()
        flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": display}]})
        if kind == "recurring":
            resp = self.call(f"list recurring runs named {display}", lambda: c.list_recurring_runs(
                filter=flt, page_size=10))
            found = list(resp.recurring_runs or [])
        else:
            resp = self.call(f"list runs named {display}", lambda: c.list_runs(filter=flt, page_size=10))
            found = list(resp.runs or [])
        return found[0] if found else None

    def _upsert_schedule(self, doc: dict[str, Any], pipeline_id: str, version_id: str) -> tuple[str, str]:
        live = self._named("recurring", doc["recurring_run"])
        if live is not None:
            ref = live.pipeline_version_reference
            if _schedule_seen(live, doc) == _schedule_want(doc) and ref is not None \
                    and ref.pipeline_version_id == version_id:
                return live.recurring_run_id, "noop"
            self._delete_recurring(live.recurring_run_id)
        c = self.client()
        exp = self.experiment_id()
        made = self.call(f"create recurring run {doc['recurring_run']}", self._quiet(lambda: c.create_recurring_run(
            exp, doc["recurring_run"], cron_expression=doc["kfp_cron"], max_concurrency=doc["max_concurrency"],
            no_catchup=doc["no_catchup"], pipeline_id=pipeline_id, version_id=version_id,
            enabled=doc["enabled"])))
        return made.recurring_run_id, "update" if live is not None else "create"

    def _delete_recurring(self, rid: str) -> None:
        c = self.client()
        try:
            self.call(f"delete recurring run {rid}", lambda: c.delete_recurring_run(rid))
        except ProviderError as e:
            if "HTTP 404" not in str(e):
                raise

    def start(self, desired: Desired, run_id: str, uploads: dict[str, bytes] | None = None) -> dict[str, Any]:
        """Upload the pipeline (as apply) and start one run for `run_id`, once."""
        if uploads:
            raise ProviderError(f"{desired.address}: the breached window is a file on this machine; a KFP run "
                                f"cannot read it and specops does not upload to {self.target.artifact_store}: put the "
                                "window where the Dataset's source points and run the monitor without --data")
        ids, _ = self.apply(desired, None)
        display = f"retrain-{run_id[:12]}"
        name = pipeline_name_for(desired.name, desired.env)
        found = self._named("run", display)
        if found is not None:
            return {"pipeline": name, "execution": found.run_id, "action": "existing"}
        c = self.client()
        exp = self.experiment_id()
        run = self.call(f"start run {display} of {name}", self._quiet(lambda: c.run_pipeline(
            exp, display, pipeline_id=ids["pipeline_id"], version_id=ids["version_id"])))
        return {"pipeline": name, "execution": run.run_id, "action": "started"}

    def delete(self, current: "ResourceState") -> None:
        if current.ids.get("recurring_run_id"):
            self._delete_recurring(current.ids["recurring_run_id"])
        pipeline = self._pipeline(self._name(None, current), current)
        if pipeline is None:
            return
        c = self.client()
        pid = pipeline.pipeline_id
        for v in self.versions(pid):
            vid = v.pipeline_version_id
            self.call(f"delete version {vid}", lambda: c.delete_pipeline_version(pid, vid))
        self.call(f"delete pipeline {pid}", lambda: c.delete_pipeline(pid))


_SCHEDULE_KEYS = ("kfp_cron", "enabled", "max_concurrency", "no_catchup")


def _schedule_want(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in _SCHEDULE_KEYS}


def _schedule_seen(live: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """The live recurring run in schedule.json's terms (the fields specops sets)."""
    cron = live.trigger.cron_schedule.cron if live.trigger and live.trigger.cron_schedule else None
    mode = str(live.mode or "").rsplit(".", 1)[-1].upper()
    return {"kfp_cron": cron, "enabled": mode != "DISABLE",
            "max_concurrency": int(live.max_concurrency) if live.max_concurrency is not None else None,
            "no_catchup": bool(live.no_catchup)}


def _file(desired: Desired, suffix: str) -> bytes:
    data = _maybe_file(desired, suffix)
    if data is None:
        raise ProviderError(f"{desired.address}: no {suffix} among its compiled artifacts "
                            f"({', '.join(sorted(desired.files)) or 'none'})")
    return data


def _maybe_file(desired: Desired, suffix: str) -> bytes | None:
    hits = sorted(p for p in desired.files if p == suffix or p.endswith("/" + suffix))
    return desired.files[hits[0]] if hits else None
