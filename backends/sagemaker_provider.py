"""Providers for SageMaker: `sagemaker_pipeline` and `sagemaker_endpoint` (plan/apply, live side).

Both talk to SageMaker through boto3 (imported inside functions) with botocore's own retry
handling: `Config(retries={"mode": "adaptive", "max_attempts": N})` retries throttling
(ThrottlingException, 429) and 5xx with backoff and client-side rate limiting. What still
fails after those attempts is raised as `RetryableError` (throttling / 5xx / connection) or
`ProviderError` (everything else), one human line each, never a botocore traceback.
`AWS_ENDPOINT_URL` (boto3 honours it itself) or `options["endpoint_url"]` points the
clients elsewhere (moto in tests).

sagemaker_pipeline (artifacts from `backends/sagemaker.py`: definition.json, params/*.json,
schedule.json):
- live identity: the pipeline `<model>-<env>`; tags `specops:content-hash` (sha256 of the
  definition text, written by `sagemaker.upsert`) and `specops:resource-hash` (the Desired's
  content hash over all its artifacts). `read()` reports `specops:resource-hash` only while the
  live definition still hashes to `specops:content-hash`; a definition changed behind
  specops's back reports the live definition's own sha256, which no desired hash equals, so
  plan shows drift (`Live.attributes` = the parsed live definition for the field diff).
- apply: params files are uploaded to the content-addressed S3 keys the definition reads
  (skipped when already there), then `sagemaker.upsert` (create, update or no-op, with a
  deterministic ClientRequestToken, so a retried create cannot duplicate), then the
  EventBridge Scheduler schedule when `schedule.json` is present (create or update).

sagemaker_endpoint (artifact `<name>/endpoint.json` from `backends/sagemaker_endpoint.py`):
- model and endpoint config names carry a hash of their content and are immutable, so apply
  creates each only when no object of that name exists (a retry after a crash reuses them);
  the endpoint (stable name) is created, or moved to the new config with `update_endpoint`
  (with the emitted DeploymentConfig, e.g. a canary), or left alone when already on it.
- the endpoint carries the tags `specops:resource-hash` and `specops:endpoint-config`; read()
  reports the resource hash only while the live endpoint still runs that config.
- moto 5.2.5 does not implement `update_endpoint`; a backend without it gets a ProviderError
  naming the operation (no fallback to delete + create, which would drop live traffic).
  The update path is tested against a small stub client (tests/backends/
  test_sagemaker_provider.py says so); create, read, drift and delete run on moto.
- autoscaling (RegisterScalableTarget + PutScalingPolicy in endpoint.json, any engine) is
  upserted after the endpoint through application-autoscaling, and removed when the spec
  drops it; read() compares the live target and policy with the recorded requests, so a
  min/max or policy changed outside specops is drift.
- a classical model's container code (sourcedir.tar.gz) is uploaded, content-addressed, to
  where the model's SAGEMAKER_SUBMIT_DIRECTORY names it, before CreateModel.
- adapters.json (LoRA adapters for LMI): before CreateModel, and only when that model does not
  exist yet, every object under each trained adapter's registered S3 prefix is copied into
  `adapters/<name>/` of the model's ModelDataSource prefix (server-side copy_object).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from specops.backends import sagemaker as sm
from specops.backends import sagemaker_autoscaling as autoscaling
from specops.backends import sagemaker_classical as sklearn_container
from specops.backends.sagemaker_endpoint import ADAPTERS_FILE
from specops.backends.provider import Desired, Live, ProviderError, RetryableError

if TYPE_CHECKING:
    from specops import ir
    from specops.state import ResourceState

CONTENT_HASH_TAG = "specops:content-hash"  # same key as sagemaker.CONTENT_HASH_TAG
RESOURCE_HASH_TAG = "specops:resource-hash"
ENDPOINT_CONFIG_TAG = "specops:endpoint-config"
DEFAULT_MAX_ATTEMPTS = 8

# botocore error codes that mean "slow down" (the standard retry mode's own list, plus SageMaker's).
_THROTTLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException", "ServiceUnavailable",
    "InternalFailure", "InternalError", "InternalServerError",
})
_PARAMS_FILE = re.compile(r"(?:^|/)params/([^/]+)\.json$")
T = TypeVar("T")


def provider(type: str, *, env: str, target: "ir.Target", root: Path, options: dict) -> Any:
    """Factory used by `specops.backends.provider.make_provider`."""
    if type == "sagemaker_pipeline":
        return SageMakerPipelineProvider(env=env, target=target, root=root, options=options)
    if type == "sagemaker_endpoint":
        return SageMakerEndpointProvider(env=env, target=target, root=root, options=options)
    raise ProviderError(f"specops.backends.sagemaker_provider has no resource type '{type}'")


# ---- AWS plumbing ------------------------------------------------------------------------------


def error_code(err: BaseException) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", "") or "")


def _status(err: BaseException) -> int:
    return int(getattr(err, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_not_found(err: BaseException) -> bool:
    """SageMaker's 'no such object' answers, as AWS and moto spell them."""
    code = error_code(err)
    msg = str(getattr(err, "response", {}).get("Error", {}).get("Message", ""))
    if code in ("ResourceNotFound", "ResourceNotFoundException", "NoSuchKey", "404", "NotFound"):
        return True
    return code == "ValidationException" and ("Could not find" in msg or "does not exist" in msg)


def translate(err: BaseException, what: str) -> ProviderError:
    """A botocore exception -> one-line ProviderError (RetryableError for throttling / 5xx)."""
    from botocore import exceptions as bx

    if isinstance(err, ProviderError):
        return err
    if isinstance(err, bx.NoCredentialsError):
        return ProviderError(f"{what}: no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID)")
    if isinstance(err, (bx.EndpointConnectionError, bx.ConnectionError, bx.ReadTimeoutError,
                        bx.ConnectTimeoutError)):
        return RetryableError(f"{what}: cannot reach AWS ({err})")
    if isinstance(err, bx.ClientError):
        code, status = error_code(err), _status(err)
        msg = str(err.response.get("Error", {}).get("Message", "")).splitlines()[0:1]
        line = f"{what}: {code or status}: {msg[0] if msg else ''}".rstrip(": ")
        if code in _THROTTLE_CODES or status == 429 or status >= 500:
            return RetryableError(f"{line} (still failing after retries)")
        return ProviderError(line)
    if isinstance(err, bx.BotoCoreError):
        return ProviderError(f"{what}: {err}")
    raise err


def aws_call(what: str, fn: Callable[[], T]) -> T:
    """Run one boto3 call; botocore already retried; translate what is left."""
    try:
        return fn()
    except Exception as err:  # botocore exceptions are imported lazily
        raise translate(err, what) from None


class _AwsBase:
    """Lazily built, thread-safe boto3 clients (one per service) for a target's region."""

    TYPE = ""

    def __init__(self, *, env: str, target: "ir.Target", root: Path, options: dict | None = None):
        self.env, self.target, self.root = env, target, Path(root)
        self.options = dict(options or {})
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        given = (self.options.get("clients") or {}).get(service)
        if given is not None:  # tests hand in a stub where no real backend can serve an operation
            return given
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._make_client(service)
            return self._clients[service]

    def _make_client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            # total_max_attempts counts the first try (botocore's max_attempts counts retries only).
            retries={"mode": "adaptive",
                     "total_max_attempts": int(self.options.get("max_attempts", DEFAULT_MAX_ATTEMPTS))},
            # read() runs in a thread pool during refresh: one connection per worker.
            max_pool_connections=int(self.options.get("max_pool_connections", 32)),
            connect_timeout=float(self.options.get("connect_timeout", 10)),
            read_timeout=float(self.options.get("read_timeout", 60)),
        )
        region = self.target.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        kwargs: dict[str, Any] = {"region_name": region, "config": config}
        if self.options.get("endpoint_url"):
            kwargs["endpoint_url"] = self.options["endpoint_url"]
        try:
            # A session per provider: boto3's default session is not thread-safe to create clients on.
            return boto3.session.Session().client(service, **kwargs)
        except Exception as err:
            raise translate(err, f"{service} client") from None

    def preflight(self, desired: list[Desired]) -> list[str]:
        """The target's S3 artifact store exists (apply uploads to it first thing); else one line."""
        store = getattr(self.target, "artifact_store", "") or ""
        if not store.startswith("s3://") or not desired:
            return []
        bucket = store[len("s3://"):].split("/", 1)[0]
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=bucket)
            return []
        except Exception as err:
            code, status = error_code(err), _status(err)
            if code in ("404", "NoSuchBucket", "NotFound") or status == 404:
                return [f"artifact store {store} of target '{self.target.name}': bucket '{bucket}' does not exist; "
                        "create it (or fix artifactStore) before apply"]
            if code in ("403", "AccessDenied", "Forbidden") or status == 403:
                return [f"artifact store {store} of target '{self.target.name}': no access to bucket '{bucket}'"]
            raise translate(err, f"head_bucket {bucket}") from None

    def tags(self, arn: str) -> dict[str, str]:
        sm = self.client("sagemaker")
        out: dict[str, str] = {}
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"ResourceArn": arn}
            if token:
                kw["NextToken"] = token
            page = aws_call(f"list_tags {arn}", lambda: sm.list_tags(**kw))
            out.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
            token = page.get("NextToken")
            if not token:
                return out

    def set_tags(self, arn: str, want: dict[str, str], have: dict[str, str] | None = None) -> None:
        """Make `want` hold on `arn` (other tags untouched)."""
        sm = self.client("sagemaker")
        have = self.tags(arn) if have is None else have
        stale = sorted(k for k, v in want.items() if k in have and have[k] != v)
        if stale:
            # AddTags overwrites on AWS but appends on moto: remove first, then add.
            aws_call(f"delete_tags {arn}", lambda: sm.delete_tags(ResourceArn=arn, TagKeys=stale))
        missing = sorted(k for k, v in want.items() if have.get(k) != v)
        if missing:
            aws_call(f"add_tags {arn}", lambda: sm.add_tags(
                ResourceArn=arn, Tags=[{"Key": k, "Value": want[k]} for k in missing]))


def _file(desired: Desired, suffix: str) -> bytes:
    hits = sorted(p for p in desired.files if p == suffix or p.endswith("/" + suffix))
    if not hits:
        raise ProviderError(f"{desired.address}: no {suffix} among its compiled artifacts "
                            f"({', '.join(sorted(desired.files)) or 'none'})")
    return desired.files[hits[0]]


def _maybe_file(desired: Desired, suffix: str) -> bytes | None:
    hits = sorted(p for p in desired.files if p == suffix or p.endswith("/" + suffix))
    return desired.files[hits[0]] if hits else None


def _strings(doc: Any) -> list[str]:
    """Every string value in a JSON document (to find the S3 URIs a definition reads)."""
    out: list[str] = []
    stack = [doc]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            out.append(o)
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return out


def _project(have: Any, want: Any) -> Any:
    """`have` (a describe/get answer) cut to the shape of `want` (the request it should match):
    the fields the request named, so server-side additions never read as a difference."""
    if isinstance(want, dict):
        return {k: _project(have.get(k), v) for k, v in want.items()} if isinstance(have, dict) else have
    if isinstance(want, list) and isinstance(have, list) and len(have) == len(want):
        return [_project(h, w) for h, w in zip(have, want)]
    return have


def _covers(have: Any, want: Any) -> bool:
    """Whether `have` (a describe/get answer) holds every value of `want` (a request).

    Answers add server-side defaults (RetryPolicy, ARNs, dates) the request never named.
    """
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_covers(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(_covers, have, want))
    return have == want


# ---- sagemaker_pipeline ---------------------------------------------------------------------------


def pipeline_name_for(name: str, env: str) -> str:
    """The live SageMaker pipeline name, by the backend's own rule (`sagemaker.pipeline_name`)."""

    return sm.pipeline_name(SimpleNamespace(name=name, env=env))  # type: ignore[arg-type]


def params_uploads(desired: Desired, definition: dict[str, Any]) -> dict[str, bytes]:
    """S3 URI -> bytes of each params file, at the content-addressed key the definition reads."""
    uris = [s for s in _strings(definition) if s.startswith("s3://") and "/sagemaker/params/" in s]
    out: dict[str, bytes] = {}
    for path, data in sorted(desired.files.items()):
        m = _PARAMS_FILE.search(path)
        if not m:
            continue
        key = f"/sagemaker/params/{m.group(1)}-{hashlib.sha256(data).hexdigest()[:16]}.json"
        for uri in uris:
            if uri.endswith(key):
                out[uri] = data
    return out


def read_pipeline_live(prov: "_AwsBase", name: str) -> Live:
    """describe_pipeline + list_tags -> Live (see the module docstring for the hash rule)."""
    sm = prov.client("sagemaker")
    try:
        live = sm.describe_pipeline(PipelineName=name)
    except Exception as err:
        if is_not_found(err):
            return Live(exists=False)
        raise translate(err, f"describe_pipeline {name}") from None
    arn = live["PipelineArn"]
    tags = prov.tags(arn)
    text = live.get("PipelineDefinition") or ""
    def_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    untouched = tags.get(CONTENT_HASH_TAG) == def_hash
    content = tags.get(RESOURCE_HASH_TAG) if untouched and tags.get(RESOURCE_HASH_TAG) else def_hash
    try:
        attrs: dict[str, Any] = json.loads(text)
    except ValueError:
        attrs = {"PipelineDefinition": text}
    return Live(exists=True, content_hash=content, attributes=attrs,
                ids={"arn": arn, "name": name, "definition_hash": def_hash})


class SageMakerPipelineProvider(_AwsBase):
    TYPE = "sagemaker_pipeline"

    def _name(self, desired: Desired | None, current: "ResourceState | None") -> str:
        if current is not None and current.ids.get("name"):
            return current.ids["name"]
        if desired is not None:
            return pipeline_name_for(desired.name, desired.env)
        if current is not None:
            return pipeline_name_for(current.name, self.env)
        raise ProviderError("sagemaker_pipeline: read() needs a desired resource or a state entry")

    def read(self, desired: Desired | None, current: "ResourceState | None") -> Live:
        live = read_pipeline_live(self, self._name(desired, current))
        recorded = (current.attributes or {}).get("schedule.json") if current is not None else None
        if not live.exists or not isinstance(recorded, dict) or "Name" not in recorded:
            return live
        return self._with_schedule(live, recorded)

    def _with_schedule(self, live: Live, recorded: dict[str, Any]) -> Live:
        """The pipeline's EventBridge schedule next to its definition: a schedule edited or deleted
        behind specops's back (another cron, disabled, another role) is drift, shown field by field."""
        sched = self.client("scheduler")
        group = recorded.get("GroupName", "default")
        try:
            got = sched.get_schedule(Name=recorded["Name"], GroupName=group)
        except Exception as err:
            if not is_not_found(err):
                raise translate(err, f"get_schedule {recorded['Name']}") from None
            got = None
        # Apply points the schedule at the live pipeline's ARN (the account's own), not the compiled one.
        want = {**{k: v for k, v in recorded.items() if k != "ClientToken"},
                "Target": {**(recorded.get("Target") or {}), "Arn": live.ids.get("arn")}}
        seen = _project(got, want) if got is not None else {}
        same = seen == want
        if isinstance(seen.get("Target"), dict) and seen["Target"].get("Arn") == live.ids.get("arn"):
            seen["Target"]["Arn"] = (recorded.get("Target") or {}).get("Arn")  # shown as recorded
        attrs = {"definition.json": live.attributes or {}, "schedule.json": seen}
        content = live.content_hash if same else \
            hashlib.sha256(("schedule " + json.dumps(seen, sort_keys=True, default=str)).encode()).hexdigest()
        return Live(exists=True, content_hash=content, attributes=attrs,
                    ids={**live.ids, "schedule": f"{group}/{recorded['Name']}"})

    def apply(self, desired: Desired, current: "ResourceState | None") -> tuple[dict[str, str], dict[str, Any]]:

        # An imported pipeline keeps its own name (state ids); otherwise the backend's naming rule.
        name = (current.ids.get("name") if current is not None else None) or pipeline_name_for(desired.name, desired.env)
        role = desired.target.role_arn
        if not role:
            raise ProviderError(f"{desired.address}: target '{desired.target.name}' has no role_arn")
        body = _file(desired, "definition.json")
        try:
            definition = json.loads(body)
        except ValueError as e:
            raise ProviderError(f"{desired.address}: definition.json is not JSON ({e})") from None
        if self.options.get("upload_params", True):
            self._upload(desired, params_uploads(desired, definition))
        tags = {"specops:model": desired.name, "specops:env": desired.env, "specops:managed-by": "specops",
                RESOURCE_HASH_TAG: desired.content_hash}
        client = self.client("sagemaker")
        result = aws_call(f"upsert pipeline {name}", lambda: sm.upsert(
            client, name, body, role, tags, description=f"specops {desired.spec}"))
        ids = {"arn": result["arn"], "name": name}
        outputs: dict[str, Any] = {"action": result["action"], "definition_hash": result["content_hash"]}
        schedule = _maybe_file(desired, "schedule.json")
        if schedule is not None:
            req = json.loads(schedule)
            req.setdefault("Target", {})["Arn"] = result["arn"]  # the real account's ARN
            outputs["schedule"] = self._upsert_schedule(req)
            ids["schedule"] = f"{req.get('GroupName', 'default')}/{req['Name']}"
        elif current is not None and current.ids.get("schedule"):
            # The spec dropped its schedule: the old one must not keep starting the pipeline.
            self._delete_schedule(current.ids["schedule"])
            outputs["schedule"] = "delete"
        return ids, outputs

    def start(self, desired: Desired, run_id: str, uploads: dict[str, bytes] | None = None) -> dict[str, Any]:
        """Upsert the pipeline and start one execution for `run_id` (a retrain's trigger id),
        once: an execution already named after the run is returned instead of a second start
        (a re-run after kill -9), and the start carries the run id as SageMaker's idempotency
        token. `uploads` (S3 URI -> bytes) go up first: the data the run reads."""
        self._upload(desired, dict(uploads or {}))
        ids, _ = self.apply(desired, None)
        name, display = ids["name"], f"retrain-{run_id[:12]}"
        client = self.client("sagemaker")
        pages = aws_call(f"list_pipeline_executions {name}", lambda: list(
            client.get_paginator("list_pipeline_executions").paginate(PipelineName=name)))
        for page in pages:
            for ex in page.get("PipelineExecutionSummaries", []):
                if ex.get("PipelineExecutionDisplayName") == display:
                    return {"pipeline": name, "execution": ex["PipelineExecutionArn"], "action": "existing"}
        arn = aws_call(f"start_pipeline_execution {name}", lambda: client.start_pipeline_execution(
            PipelineName=name, PipelineExecutionDisplayName=display, ClientRequestToken=run_id[:64],
            PipelineExecutionDescription=f"specops retrain {run_id}")["PipelineExecutionArn"])
        return {"pipeline": name, "execution": arn, "action": "started"}

    def _upload(self, desired: Desired, uploads: dict[str, bytes]) -> None:
        if not uploads:
            return
        s3 = self.client("s3")
        for uri, data in sorted(uploads.items()):
            bucket, key = uri.removeprefix("s3://").split("/", 1)
            try:
                s3.head_object(Bucket=bucket, Key=key)
                continue  # content-addressed: present means identical
            except Exception as err:
                if not (is_not_found(err) or _status(err) == 404):
                    raise translate(err, f"{desired.address}: s3 head {uri}") from None
            aws_call(f"{desired.address}: s3 put {uri}", lambda: s3.put_object(Bucket=bucket, Key=key, Body=data))

    def _upsert_schedule(self, req: dict[str, Any]) -> str:
        sched = self.client("scheduler")
        group = req.get("GroupName", "default")
        try:
            live = sched.get_schedule(Name=req["Name"], GroupName=group)
        except Exception as err:
            if not is_not_found(err):
                raise translate(err, f"get_schedule {req['Name']}") from None
            aws_call(f"create_schedule {req['Name']}", lambda: sched.create_schedule(**req))
            return "create"
        if _covers(live, {k: v for k, v in req.items() if k != "ClientToken"}):
            return "noop"
        aws_call(f"update_schedule {req['Name']}", lambda: sched.update_schedule(**req))
        return "update"

    def _delete_schedule(self, sched_id: str) -> None:
        group, _, sname = sched_id.partition("/")
        try:
            self.client("scheduler").delete_schedule(Name=sname, GroupName=group)
        except Exception as err:
            if not is_not_found(err):
                raise translate(err, f"delete_schedule {sname}") from None

    def delete(self, current: "ResourceState") -> None:
        name = self._name(None, current)
        client = self.client("sagemaker")
        if current.ids.get("schedule"):
            self._delete_schedule(current.ids["schedule"])
        try:
            client.delete_pipeline(PipelineName=name,
                                   ClientRequestToken=hashlib.sha256(f"delete\n{name}".encode()).hexdigest())
        except Exception as err:
            if not is_not_found(err):
                raise translate(err, f"delete_pipeline {name}") from None


# ---- sagemaker_endpoint -------------------------------------------------------------------------


def _scaling_live(prov: "_AwsBase", recorded: dict[str, Any] | None) -> dict[str, Any]:
    """Live autoscaling of the endpoint, in the shape the recorded requests had."""
    if not recorded or "RegisterScalableTarget" not in recorded:
        return {}
    try:
        return autoscaling.read_scaling(prov.client("application-autoscaling"), recorded)
    except Exception as err:
        raise translate(err, "describe scaling of the endpoint") from None


def _endpoint_requests(desired: Desired) -> dict[str, dict[str, Any]]:
    try:
        doc = json.loads(_file(desired, "endpoint.json"))
        for op in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint"):
            doc[op]  # noqa: B018 - presence check
    except (ValueError, KeyError) as e:
        raise ProviderError(f"{desired.address}: endpoint.json is not the emitted request set ({e})") from None
    return doc


def read_endpoint_live(prov: "_AwsBase", endpoint_name: str) -> Live:
    """describe_endpoint (+ its config, model and tags) -> Live, attributes in endpoint.json's shape."""
    sm = prov.client("sagemaker")
    try:
        ep = sm.describe_endpoint(EndpointName=endpoint_name)
    except Exception as err:
        if is_not_found(err):
            return Live(exists=False)
        raise translate(err, f"describe_endpoint {endpoint_name}") from None
    arn = ep["EndpointArn"]
    config_name = ep.get("EndpointConfigName", "")
    tags = prov.tags(arn)
    attrs: dict[str, Any] = {"CreateEndpoint": {"EndpointName": endpoint_name, "EndpointConfigName": config_name},
                             "EndpointStatus": ep.get("EndpointStatus")}
    ids = {"arn": arn, "endpoint": endpoint_name, "endpoint_config": config_name}
    try:
        cfg = sm.describe_endpoint_config(EndpointConfigName=config_name)
        variants = [{k: v for k, v in pv.items()} for pv in cfg.get("ProductionVariants", [])]
        attrs["CreateEndpointConfig"] = {"EndpointConfigName": config_name, "ProductionVariants": variants}
        models = sorted({pv.get("ModelName", "") for pv in variants if pv.get("ModelName")})
        if models:
            ids["model"] = models[0]
            m = sm.describe_model(ModelName=models[0])
            attrs["CreateModel"] = {"ModelName": models[0], "ExecutionRoleArn": m.get("ExecutionRoleArn"),
                                    "PrimaryContainer": m.get("PrimaryContainer")}
    except Exception as err:
        if not is_not_found(err):
            raise translate(err, f"describe endpoint config {config_name}") from None
    on_recorded_config = tags.get(ENDPOINT_CONFIG_TAG) == config_name and tags.get(RESOURCE_HASH_TAG)
    # A config swapped behind specops's back: report a hash of what runs, which no desired hash equals.
    content = tags[RESOURCE_HASH_TAG] if on_recorded_config else \
        hashlib.sha256(f"endpoint-config {config_name}".encode()).hexdigest()
    return Live(exists=True, content_hash=content, attributes=attrs, ids=ids)


class SageMakerEndpointProvider(_AwsBase):
    TYPE = "sagemaker_endpoint"

    def _endpoint_name(self, desired: Desired | None, current: "ResourceState | None") -> str:
        if current is not None and current.ids.get("endpoint"):
            return current.ids["endpoint"]
        if desired is not None:
            return _endpoint_requests(desired)["CreateEndpoint"]["EndpointName"]
        raise ProviderError("sagemaker_endpoint: read() needs a desired resource or a state entry with ids")

    def read(self, desired: Desired | None, current: "ResourceState | None") -> Live:
        live = read_endpoint_live(self, self._endpoint_name(desired, current))
        recorded = (current.attributes or {}).get("endpoint.json") if current is not None else None
        if not live.exists or not isinstance(recorded, dict):
            return live
        scaling = _scaling_live(self, recorded)
        if not scaling:
            return live
        # Autoscaling changed behind specops's back (another min/max, policy or target) is drift.
        want = {k: recorded[k] for k in scaling}
        attrs = {**(live.attributes or {}), **scaling}
        content = live.content_hash
        if scaling != want:
            content = hashlib.sha256(("scaling " + json.dumps(scaling, sort_keys=True)).encode()).hexdigest()
        return Live(exists=True, content_hash=content, attributes=attrs, ids=live.ids)

    def _exists(self, what: str, fn: Callable[[], Any]) -> bool:
        try:
            fn()
            return True
        except Exception as err:
            if is_not_found(err):
                return False
            raise translate(err, what) from None

    def apply(self, desired: Desired, current: "ResourceState | None") -> tuple[dict[str, str], dict[str, Any]]:
        reqs = _endpoint_requests(desired)
        sm = self.client("sagemaker")
        model_req, cfg_req, ep_req = reqs["CreateModel"], reqs["CreateEndpointConfig"], reqs["CreateEndpoint"]
        model, config = model_req["ModelName"], cfg_req["EndpointConfigName"]
        # An imported endpoint keeps its own name (state ids); otherwise the emitted one.
        endpoint = (current.ids.get("endpoint") if current is not None else None) or ep_req["EndpointName"]
        ep_req = {**ep_req, "EndpointName": endpoint}
        outputs: dict[str, Any] = {}
        self._upload_code(desired, model_req)
        # Hash-named and immutable: an existing object of that name IS the desired one.
        if self._exists(f"describe_model {model}", lambda: sm.describe_model(ModelName=model)):
            outputs["model"] = "reused"
        else:
            # Staged only while no model reads the prefix yet: instances a live model starts later
            # (scale-out) must find what its first ones found.
            staged = self._stage_adapters(desired)
            if staged:
                outputs["adapters"] = staged
            aws_call(f"create_model {model}", lambda: sm.create_model(**model_req))
            outputs["model"] = "created"
        if self._exists(f"describe_endpoint_config {config}",
                        lambda: sm.describe_endpoint_config(EndpointConfigName=config)):
            outputs["endpoint_config"] = "reused"
        else:
            aws_call(f"create_endpoint_config {config}", lambda: sm.create_endpoint_config(**cfg_req))
            outputs["endpoint_config"] = "created"
        try:
            live = sm.describe_endpoint(EndpointName=endpoint)
        except Exception as err:
            if not is_not_found(err):
                raise translate(err, f"describe_endpoint {endpoint}") from None
            live = None
        want_tags = {RESOURCE_HASH_TAG: desired.content_hash, ENDPOINT_CONFIG_TAG: config,
                     "specops:env": desired.env, "specops:managed-by": "specops"}
        if live is None:
            create = {**ep_req, "Tags": [*ep_req.get("Tags", []),
                                         *({"Key": k, "Value": v} for k, v in sorted(want_tags.items()))]}
            # DeploymentConfig applies to updates only; CreateEndpoint accepts it, so it is kept.
            arn = aws_call(f"create_endpoint {endpoint}", lambda: sm.create_endpoint(**create))["EndpointArn"]
            outputs["endpoint"] = "created"
            have: dict[str, str] | None = None
        else:
            arn = live["EndpointArn"]
            if live.get("EndpointConfigName") == config:
                outputs["endpoint"] = "noop"
            else:
                self._update_endpoint(endpoint, config, ep_req.get("DeploymentConfig"))
                outputs["endpoint"] = "updated"
            have = None
        self.set_tags(arn, want_tags, have)
        if self.options.get("wait", False):
            self._wait(endpoint)
        scaling = {k: reqs[k] for k in ("RegisterScalableTarget", "PutScalingPolicy") if k in reqs}
        aas = self.client("application-autoscaling")
        if aws_call("register autoscaling", lambda: autoscaling.apply_scaling(aas, scaling)):
            outputs["autoscaling"] = f"{scaling['RegisterScalableTarget']['MinCapacity']}.." \
                                     f"{scaling['RegisterScalableTarget']['MaxCapacity']}"
        elif current is not None and "RegisterScalableTarget" in ((current.attributes or {}).get("endpoint.json") or {}):
            old_target = current.attributes["endpoint.json"]["RegisterScalableTarget"]
            old_policy = (current.attributes["endpoint.json"].get("PutScalingPolicy") or {}).get("PolicyName")
            aws_call("remove autoscaling", lambda: autoscaling.remove_scaling(aas, old_target["ResourceId"], old_policy))
        status = aws_call(f"describe_endpoint {endpoint}",
                          lambda: sm.describe_endpoint(EndpointName=endpoint)).get("EndpointStatus")
        outputs["status"] = status
        return {"arn": arn, "endpoint": endpoint, "endpoint_config": config, "model": model}, outputs

    def _upload_code(self, desired: Desired, model_req: dict[str, Any]) -> None:
        """Put the container's user module (sourcedir.tar.gz, content-addressed) where the
        model's SAGEMAKER_SUBMIT_DIRECTORY names it, unless it is there already."""
        code = desired.files.get(sklearn_container.SOURCEDIR)
        uri = ((model_req.get("PrimaryContainer") or {}).get("Environment") or {}).get("SAGEMAKER_SUBMIT_DIRECTORY")
        if code is None or not uri or not uri.startswith("s3://"):
            return
        bucket, _, key = uri[len("s3://"):].partition("/")
        s3 = self.client("s3")
        if self._exists(f"head_object {uri}", lambda: s3.head_object(Bucket=bucket, Key=key)):
            return
        aws_call(f"put_object {uri}", lambda: s3.put_object(Bucket=bucket, Key=key, Body=code))

    def _stage_adapters(self, desired: Desired) -> str:
        """Run adapters.json's copy plan: every object under each trained adapter's registered
        prefix into its `adapters/<name>/` folder of the model directory's prefix. An adapter
        with nothing registered is an error naming it (its training has not registered it yet)."""
        plan = _maybe_file(desired, ADAPTERS_FILE)
        if plan is None:
            return ""
        try:
            copies = json.loads(plan)["Copies"]
        except (ValueError, KeyError) as e:
            raise ProviderError(f"{desired.address}: adapters.json is not the emitted copy plan ({e})") from None
        for c in copies:
            self._copy_prefix(desired, c)
        return ",".join(c["Adapter"] for c in copies)

    def _copy_prefix(self, desired: Desired, copy: dict[str, str]) -> None:
        s3 = self.client("s3")
        src_bucket, _, src_prefix = copy["Source"][len("s3://"):].partition("/")
        dst_bucket, _, dst_prefix = copy["Destination"][len("s3://"):].partition("/")
        pages = aws_call(f"list {copy['Source']}", lambda: list(
            s3.get_paginator("list_objects_v2").paginate(Bucket=src_bucket, Prefix=src_prefix)))
        keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
        if not keys:
            raise ProviderError(f"{desired.address}: adapter '{copy['Adapter']}' has nothing registered at "
                                f"{copy['Source']} (run its fine-tuning pipeline first)")
        for key in keys:
            dst = dst_prefix + key[len(src_prefix):]
            aws_call(f"copy {copy['Source']} -> {copy['Destination']}", functools.partial(
                s3.copy_object, Bucket=dst_bucket, Key=dst, CopySource={"Bucket": src_bucket, "Key": key}))

    def _update_endpoint(self, endpoint: str, config: str, deployment: dict[str, Any] | None) -> None:
        sm = self.client("sagemaker")
        kwargs: dict[str, Any] = {"EndpointName": endpoint, "EndpointConfigName": config}
        if deployment:
            kwargs["DeploymentConfig"] = deployment
        try:
            sm.update_endpoint(**kwargs)
        except Exception as err:
            code, status = error_code(err), _status(err)
            # A backend without the operation (moto 5.2.5) answers 501/NotImplemented or 404 on the action.
            if code in ("NotImplemented", "NotImplementedError", "InvalidAction", "UnknownOperationException") \
                    or status == 501:
                raise ProviderError(f"update_endpoint {endpoint}: this SageMaker API does not implement "
                                    f"UpdateEndpoint ({code or status}); the endpoint still runs its old "
                                    f"config, the new config {config} is created") from None
            raise translate(err, f"update_endpoint {endpoint}") from None

    def _wait(self, endpoint: str) -> None:
        sm = self.client("sagemaker")
        delay = int(self.options.get("wait_delay", 30))
        attempts = int(self.options.get("wait_attempts", 120))
        try:
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName=endpoint, WaiterConfig={"Delay": delay, "MaxAttempts": attempts})
        except Exception as err:
            raise ProviderError(f"endpoint {endpoint} did not reach InService: {err}") from None

    def delete(self, current: "ResourceState") -> None:
        sm = self.client("sagemaker")
        endpoint = current.ids.get("endpoint") or ""
        steps: list[tuple[str, Callable[[], Any]]] = []
        recorded = (current.attributes or {}).get("endpoint.json") or {}
        if "RegisterScalableTarget" in recorded:  # scaling goes first, or it outlives the endpoint
            aas = self.client("application-autoscaling")
            rid = recorded["RegisterScalableTarget"]["ResourceId"]
            policy = (recorded.get("PutScalingPolicy") or {}).get("PolicyName")
            aws_call("remove autoscaling", lambda: autoscaling.remove_scaling(aas, rid, policy))
        if endpoint:
            steps.append((f"delete_endpoint {endpoint}", lambda: sm.delete_endpoint(EndpointName=endpoint)))
        if current.ids.get("endpoint_config"):
            cfg = current.ids["endpoint_config"]
            steps.append((f"delete_endpoint_config {cfg}", lambda: sm.delete_endpoint_config(EndpointConfigName=cfg)))
        if current.ids.get("model"):
            mdl = current.ids["model"]
            steps.append((f"delete_model {mdl}", lambda: sm.delete_model(ModelName=mdl)))
        for what, fn in steps:
            try:
                fn()
            except Exception as err:
                if not is_not_found(err):
                    raise translate(err, what) from None
