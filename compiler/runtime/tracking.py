"""MLflow as the model and prompt registry and the run tracker: the one place specops talks to
it (the step runtime registers versions and reads baselines here; the registry provider,
`promote` and `gate run` use the same helpers).

Where the registry is, first found wins:
  1. a tracking server named by the target (`targets.<t>.registry.trackingUri`), passed as a
     step param or to `connect()`;
  2. `MLFLOW_TRACKING_URI` in the environment (a SageMaker step gets it this way);
  3. the embedded store: SQLite at `<repo>/.specops/mlflow/mlflow.db`, artifacts under
     `<repo>/.specops/mlflow/artifacts/`.

Names specops uses in MLflow:
  experiment           one per Model, named after the Model; each pipeline run is a run in it
  registered model     the Model's registry name
  model aliases        `<env>`: the version that environment serves; `<env>-<alias>` for each
                       alias the Model declares there (one registry can hold every env)
  prompt               the Prompt's name, each spec version an MLflow prompt version; aliases
                       `<env>` and `<env>-<label>` for each label of that environment
Tags (all `specops.*`):
  on a model version   digest (sha256 of its files), spec_digest (of the compiled pipeline
                       that made it), env (where it was registered), commit, datasets (JSON:
                       name, version, digest), gates.<env> (JSON: gate -> passed, metrics),
                       model_card (artifact path of the Hugging Face model card)
  on a prompt version  version (the spec's), content (sha256 of the canonical body), format
                       (jinja2: MLflow's own `format()` only substitutes {{var}} and is NOT the
                       renderer), model, variables, parameters (JSON)

`import mlflow` is slow (seconds): it happens only inside these functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from specops.runtime.modelcard import CARD_PATH, card_text

EMBEDDED_DIR = ".specops/mlflow"
CARD_TAG_PATH = CARD_PATH
TAG = "specops."
JINJA2 = "jinja2"
ATTEMPTS = 2  # an unreachable store is tried this many times, then one line
RETRY_WAIT_S = 1.0

T = TypeVar("T")
# One checked client per store and process: MLflow verifies a SQLite store's schema each time
# a client opens it, which costs seconds.
_CLIENTS: dict[str, Any] = {}


class RegistryError(Exception):
    """One human line about the registry (unreachable, a version that is not there...)."""


def embedded_uri(repo_root: Path) -> str:
    return "sqlite:///" + str(Path(repo_root).resolve() / EMBEDDED_DIR / "mlflow.db")


def artifact_root(repo_root: Path) -> str:
    return (Path(repo_root).resolve() / EMBEDDED_DIR / "artifacts").as_uri()


def resolve_uri(uri: str | None, repo_root: Path) -> str:
    """The tracking URI in force: the one given, else $MLFLOW_TRACKING_URI, else the embedded store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or embedded_uri(repo_root)


def env_alias(env: str) -> str:
    """The alias naming the version an environment serves."""
    return env


def label_alias(env: str, label: str) -> str:
    """The alias of a declared model alias or prompt label in one environment."""
    return f"{env}-{label}"


def display(uri: str) -> str:
    """A URI for messages: the embedded store as a repo-relative path, never credentials."""
    if uri.startswith("sqlite:///"):
        tail = uri[len("sqlite:///"):]
        i = tail.find(EMBEDDED_DIR)
        return f"the embedded store {tail[i:] if i >= 0 else Path(tail).name}"
    head, sep, rest = uri.partition("://")
    return f"{head}{sep}{rest.split('@')[-1]}" if sep else uri


def _quiet() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # MLflow's own HTTP retries back off for minutes; specops retries once, then says so.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def store_exists(uri: str | None, repo_root: Path) -> bool:
    """False only for an embedded store that was never created (nothing registered yet)."""
    uri = resolve_uri(uri, repo_root)
    return not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).is_file()


def _empty_store(db: Path) -> None:
    """Create the embedded SQLite store. MLflow builds a new one by running every schema
    migration (~15 s); an empty store made once per MLflow version is kept in the user's cache
    (`$XDG_CACHE_HOME/specops/`) and copied, so later repos start at once."""
    import mlflow
    from mlflow import MlflowClient

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "specops"
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{template.name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments(max_results=1)
        os.replace(tmp, template)  # atomic: a racing process finds a whole file or none
    part = db.with_name(f".{db.name}.{os.getpid()}")
    shutil.copyfile(template, part)
    os.replace(part, db)


def connect(uri: str | None, repo_root: Path, *, token: str | None = None, attempts: int = ATTEMPTS) -> Any:
    """An `MlflowClient` for the registry, checked reachable: tried `attempts` times, then a
    RegistryError naming the store."""
    _quiet()
    uri = resolve_uri(uri, repo_root)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        (db.parent / "artifacts").mkdir(parents=True, exist_ok=True)
        if not db.is_file():
            try:
                _empty_store(db)
            except OSError as e:
                raise RegistryError(f"MLflow registry at {display(uri)} cannot be created ({e})") from None
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    if uri in _CLIENTS:
        return _CLIENTS[uri]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    last = ""
    for i in range(attempts):
        try:
            client.search_experiments(max_results=1)
            _CLIENTS[uri] = client
            return client
        except Exception as e:  # noqa: BLE001 - any failure to reach it is the same one line
            last = _reason(e)
            if i + 1 < attempts:
                time.sleep(RETRY_WAIT_S)
    raise RegistryError(f"MLflow registry at {display(uri)} cannot be reached ({last}; tried {attempts} times)")


def _reason(e: Exception) -> str:
    text = " ".join(str(e).split())
    for marker in ("Connection refused", "Name or service not known", "timed out", "Max retries exceeded"):
        if marker in text:
            return marker.lower() if marker != "Max retries exceeded" else "no answer"
    return (text[:160] + "…") if len(text) > 160 else (text or type(e).__name__)


def _missing(e: Exception) -> bool:
    code = getattr(e, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") and (
        "not found" in str(e) or code == "RESOURCE_DOES_NOT_EXIST")


def guarded(what: str, fn: Callable[[], T]) -> T:
    """Run one registry call; an MLflow error becomes one RegistryError line."""
    try:
        return fn()
    except RegistryError:
        raise
    except Exception as e:  # noqa: BLE001 - MLflow raises MlflowException and requests' errors
        raise RegistryError(f"MLflow: {what} failed: {_reason(e)}") from None


# ---- models ---------------------------------------------------------------------------------


def alias_version(client: Any, registry: str, alias: str) -> Any | None:
    """The model version an alias points at, or None (no such model or alias)."""
    try:
        return client.get_model_version_by_alias(registry, alias)
    except Exception as e:  # noqa: BLE001
        if _missing(e):
            return None
        raise RegistryError(f"MLflow: reading alias {registry}@{alias} failed: {_reason(e)}") from None


def registered_aliases(client: Any, registry: str) -> dict[str, str] | None:
    """{alias: version} of a registered model, or None when the model does not exist."""
    try:
        rm = client.get_registered_model(registry)
    except Exception as e:  # noqa: BLE001
        if _missing(e):
            return None
        raise RegistryError(f"MLflow: reading registered model {registry!r} failed: {_reason(e)}") from None
    return {a: str(v) for a, v in sorted((rm.aliases or {}).items())}


def find_version(client: Any, registry: str, **tags: str) -> Any | None:
    """The newest version of `registry` carrying every `specops.<key>` = value given."""
    if registered_aliases(client, registry) is None:
        return None
    terms = [f"name='{_q(registry)}'"] + [f"tags.`{TAG}{k}` = '{_q(v)}'" for k, v in sorted(tags.items())]
    found = guarded(f"searching versions of {registry!r}", lambda: client.search_model_versions(" and ".join(terms)))
    return max(found, key=lambda v: int(v.version)) if found else None


def get_version(client: Any, registry: str, version: str | int) -> Any | None:
    try:
        return client.get_model_version(registry, str(version))
    except Exception as e:  # noqa: BLE001
        if _missing(e):
            return None
        raise RegistryError(f"MLflow: reading {registry} version {version} failed: {_reason(e)}") from None


def _q(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("'", "\\'")


def version_tag_json(mv: Any, key: str) -> Any:
    raw = (mv.tags or {}).get(TAG + key)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def gate_records(mv: Any) -> dict[str, dict[str, Any]]:
    """{env: {gate: record}} recorded on a model version."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in sorted((mv.tags or {}).items()):
        if k.startswith(TAG + "gates."):
            try:
                doc = json.loads(v)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out[k[len(TAG + "gates."):]] = doc
    return out


def served_gate_record(client: Any, registry: str, env: str, gate: str) -> tuple[Any, dict[str, Any] | None]:
    """(the version `env` serves, the record of `gate` on it: this env's, else any env's)."""
    mv = alias_version(client, registry, env_alias(env))
    if mv is None:
        return None, None
    records = gate_records(mv)
    rec = (records.get(env) or {}).get(gate)
    if rec is None:
        rec = next((r[gate] for _, r in sorted(records.items()) if gate in r), None)
    return mv, rec


def baseline_for(client: Any, registry: str, env: str, gate: str) -> dict[str, Any]:
    """The baseline of a gate in `env`: the metrics (and a prompt gate's row outcomes) recorded
    on the version `env` serves now. {} when nothing serves there or nothing was recorded.

    Returns {"version", "metrics", "rows"?}; the metrics are the gate's record, else the
    metrics of the run that registered the version.
    """
    mv, rec = served_gate_record(client, registry, env, gate)
    if mv is None:
        return {}
    metrics = dict(rec.get("metrics") or {}) if isinstance(rec, dict) else {}
    if not metrics and mv.run_id:
        run = guarded("reading the served version's run", lambda: client.get_run(mv.run_id))
        metrics = dict(run.data.metrics)
    out: dict[str, Any] = {"version": str(mv.version), "metrics": dict(sorted(metrics.items()))}
    if isinstance(rec, dict) and rec.get("rows_artifact") and mv.run_id:
        try:
            text = client.download_artifacts(mv.run_id, rec["rows_artifact"], dst_path=None)
            rows = json.loads(Path(text).read_text(encoding="utf-8"))
            if isinstance(rows, dict):
                out["rows"] = rows
        except Exception:  # noqa: BLE001 - no rows: the significance test has no baseline
            pass
    return out


def ensure_experiment(client: Any, name: str, uri: str, repo_root: Path) -> str:
    exp = guarded(f"reading experiment {name!r}", lambda: client.get_experiment_by_name(name))
    if exp is not None:
        return exp.experiment_id
    # The embedded store keeps artifacts beside the database, never in the working directory.
    location = f"{artifact_root(repo_root)}/{name}" if uri.startswith("sqlite:") else None
    return guarded(f"creating experiment {name!r}", lambda: client.create_experiment(name, artifact_location=location))


def ensure_registered_model(client: Any, registry: str, model: str) -> None:
    if registered_aliases(client, registry) is not None:
        return
    try:
        client.create_registered_model(registry, tags={TAG + "model": model},
                                       description=f"Model '{model}' of a specops repository")
    except Exception as e:  # noqa: BLE001
        if getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise RegistryError(f"MLflow: creating registered model {registry!r} failed: {_reason(e)}") from None


def set_aliases(client: Any, registry: str, version: str, aliases: list[str], drop: list[str]) -> None:
    for a in sorted(drop):
        try:
            client.delete_registered_model_alias(registry, a)
        except Exception as e:  # noqa: BLE001
            if not _missing(e):
                raise RegistryError(f"MLflow: removing alias {registry}@{a} failed: {_reason(e)}") from None
    for a in sorted(aliases):
        guarded(f"setting alias {registry}@{a}", lambda a=a: client.set_registered_model_alias(registry, a, version))


# ---- prompts --------------------------------------------------------------------------------


def prompt_body(doc: dict[str, Any]) -> dict[str, Any]:
    """What a prompt version is: the spec's prompt document without its name and labels."""
    return {k: v for k, v in sorted(doc.items()) if k not in ("name", "labels", "aliases")}


def content_digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def prompt_versions(client: Any, name: str) -> list[Any] | None:
    """Every MLflow version of a prompt, oldest first; None when there is no such prompt."""
    info = guarded(f"reading prompt {name!r}", lambda: client.get_prompt(name))
    if info is None:
        return None
    out, token = [], None
    while True:
        page = guarded(f"listing versions of prompt {name!r}",
                       lambda: client.search_prompt_versions(name, max_results=1000, page_token=token))
        items = getattr(page, "prompt_versions", None)
        if items is None:
            items = list(page)
        out.extend(items)
        token = getattr(page, "token", None) or getattr(page, "next_page_token", None)
        if not token:
            break
    return sorted(out, key=lambda v: int(v.version))


def prompt_alias_versions(client: Any, name: str, aliases: list[str]) -> dict[str, str | None]:
    """{alias: version number or None} for the aliases asked about."""
    out: dict[str, str | None] = {}
    for a in aliases:
        try:
            pv = client.get_prompt_version_by_alias(name, a)
            out[a] = str(pv.version) if pv is not None else None
        except Exception as e:  # noqa: BLE001
            if not _missing(e) and "not found" not in str(e).lower():
                raise RegistryError(f"MLflow: reading alias {name}@{a} failed: {_reason(e)}") from None
            out[a] = None
    return out


def register_prompt_version(client: Any, name: str, doc: dict[str, Any]) -> str:
    """The MLflow version holding this spec version's content, registered when missing."""
    body = prompt_body(doc)
    digest = content_digest(body)
    for pv in reversed(prompt_versions(client, name) or []):
        if (pv.tags or {}).get(TAG + "content") == digest:
            return str(pv.version)
    template = body.get("template")
    if template is None:
        template = [{"role": m["role"], "content": m["content"]} for m in body.get("messages") or []]
    tags = {TAG + "version": str(body.get("version")), TAG + "content": digest, TAG + "format": JINJA2,
            TAG + "model": str(body.get("model")),
            TAG + "variables": json.dumps(body.get("variables") or {}, sort_keys=True),
            TAG + "parameters": json.dumps(body.get("parameters") or {}, sort_keys=True)}
    pv = guarded(f"registering prompt {name!r}", lambda: client.register_prompt(
        name=name, template=template, tags=tags,
        commit_message=f"specops: spec version {body.get('version')} (Jinja2 template, rendered by specops)"))
    return str(pv.version)


def prompt_document(pv: Any, name: str) -> dict[str, Any]:
    """A prompt version read back as the spec's prompt document (without labels)."""
    tags = pv.tags or {}
    doc: dict[str, Any] = {"name": name, "model": tags.get(TAG + "model")}
    try:
        doc["version"] = int(tags.get(TAG + "version", ""))
    except ValueError:
        doc["version"] = None
    for key in ("variables", "parameters"):
        try:
            doc[key] = json.loads(tags.get(TAG + key) or "{}")
        except ValueError:
            doc[key] = tags.get(TAG + key)
    template = pv.template
    if isinstance(template, str):
        try:  # chat prompts come back as a JSON string in some stores
            parsed = json.loads(template)
            template = parsed if isinstance(parsed, list) else template
        except ValueError:
            pass
    if isinstance(template, list):
        doc["messages"] = [{"role": m.get("role"), "content": m.get("content")} for m in template]
    else:
        doc["template"] = template
    return doc


def served_baseline(spec: dict[str, Any] | None, gate: str, repo_root: Path) -> dict[str, Any]:
    """A step's `baseline_from` ({registry, env, tracking: {uri}}) -> `baseline_for`'s answer
    ({} when nothing serves there yet, or when `spec` is None)."""
    if not spec:
        return {}
    uri = (spec.get("tracking") or {}).get("uri")
    client = connect(uri, repo_root, token=os.environ.get("MLFLOW_TRACKING_TOKEN"))
    return baseline_for(client, str(spec["registry"]), str(spec["env"]), gate)


# ---- model cards --------------------------------------------------------------------------


def _run_json_artifacts(client: Any, run_id: str, folder: str) -> list[Any]:
    import tempfile

    out = []
    with tempfile.TemporaryDirectory(prefix="specops-card-") as tmp:
        try:
            local = Path(client.download_artifacts(run_id, folder, tmp))
        except Exception:  # noqa: BLE001 - nothing logged there
            return []
        for f in sorted(local.rglob("*.json")):
            try:
                out.append(json.loads(f.read_text(encoding="utf-8")))
            except ValueError:
                continue
    return out


def write_model_card(client: Any, registry: str, mv: Any, *, description: str | None = None,
                     capacity: dict[str, Any] | None = None) -> str:
    """Write the Hugging Face model card of a registered version from what MLflow holds about
    it (its tags, its run's metrics, params and data reports), plus `capacity` when given;
    store it as the run's `model_card/README.md`. Returns the card's text."""
    tags = mv.tags or {}
    run = guarded("reading the version's run", lambda: client.get_run(mv.run_id)) if mv.run_id else None
    datasets = _run_json_artifacts(client, mv.run_id, "data") if mv.run_id else []
    if not datasets:
        datasets = version_tag_json(mv, "datasets") or []
    gates = {f"{g} ({env})": rec for env, records in gate_records(mv).items() for g, rec in sorted(records.items())}
    params = dict(run.data.params) if run is not None else {}
    text = card_text({"registry": registry, "version": mv.version, "model": tags.get(TAG + "model"),
                      "env": tags.get(TAG + "env"), "description": description or mv.description,
                      "digest": tags.get(TAG + "digest"), "spec_digest": tags.get(TAG + "spec_digest"),
                      "commit": tags.get(TAG + "commit"), "run_id": mv.run_id, "datasets": datasets,
                      "gates": gates, "metrics": dict(run.data.metrics) if run is not None else {},
                      "capacity": capacity or {}, "task": params.get("task"), "library": params.get("library")})
    if mv.run_id:
        guarded("storing the model card", lambda: client.log_text(mv.run_id, text, CARD_PATH))
    return text
