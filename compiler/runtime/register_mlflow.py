"""The register step's MLflow side: track the run and register the version with its lineage.

Called by `registry.run` when the step has a `tracking` param (every compiled pipeline has
one). In the model's experiment it logs one run: params (the training recipe), metrics (the
evaluation), artifacts (the model files under `model/`, each gate's decision and a prompt
gate's row outcomes under `gates/<env>/`, each dataset's check report under `data/`, the
model card). Then it registers a version of the registered model whose source is that run's
`model/`, tagged with its lineage (see tracking.py), and points this environment's aliases at
it: the step runs only after every gate of the pipeline passed.

Idempotent: a version with the same spec digest and file digest is reused, not registered
twice. A pinned environment (`pin`) registers nothing: the pinned version must exist with the
pinned digest; the gates this environment ran are recorded on it, and its aliases move to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from specops.runtime import tracking
from specops.runtime.common import Params
from specops.runtime.errors import StepError
from specops.runtime.modelcard import CARD_PATH

MAX_PARAMS = 100  # MLflow logs params in batches of 100; a recipe has far fewer


def commit_of(repo_root: Path) -> str | None:
    """The commit the run was made from: CI's variables, else git in the repo, else None."""
    for var in ("SPECOPS_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def gate_decisions(inputs: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """{gate: {passed, metrics, rows?}} from the gate inputs' decision.json."""
    out = {}
    for name, d in sorted(inputs.items()):
        if name != "gate" and not name.startswith("gate_"):
            continue
        doc = _read(d / "decision.json")
        if not isinstance(doc, dict) or "gate" not in doc:
            continue
        metrics = {c["metric"]: c["observed"] for c in doc.get("checks") or []
                   if isinstance(c, dict) and isinstance(c.get("observed"), (int, float)) and not isinstance(c.get("observed"), bool)}
        rec: dict[str, Any] = {"passed": bool(doc.get("passed")), "metrics": dict(sorted(metrics.items()))}
        if isinstance(doc.get("row_outcomes"), dict):
            rec["rows"] = dict(sorted(doc["row_outcomes"].items()))
        out[str(doc["gate"])] = rec
    return out


def dataset_lineage(inputs: dict[str, Path]) -> list[dict[str, Any]]:
    """[{name, version, digest, license, pii, checks}] from the data inputs (data_check outputs)."""
    out = []
    for name, d in sorted(inputs.items()):
        if name != "data" and not name.startswith("data_"):
            continue
        report = _read(d / "report.json") or {}
        ds = _read(d / "dataset.json") or {}
        if not report and not ds:
            continue
        out.append({"name": report.get("dataset") or ds.get("name"), "version": report.get("version") or ds.get("version"),
                    "digest": report.get("digest"), "license": report.get("license"), "pii": report.get("pii"),
                    "rows": report.get("rows"),
                    "checks": [{"type": c.get("type") or c.get("check"), "passed": c.get("passed"),
                                "message": c.get("message")} for c in report.get("checks") or [] if isinstance(c, dict)]})
    return sorted(out, key=lambda x: str(x["name"]))


def _recipe(src: Path) -> dict[str, Any]:
    """The training recipe to log as params: the trained model's own description."""
    for f in ("model.json", "finetune.json", "base.json"):
        doc = _read(src / f)
        if isinstance(doc, dict):
            flat: dict[str, Any] = {}
            for k, v in sorted(doc.items()):
                if isinstance(v, dict):
                    flat.update({f"{k}.{kk}": vv for kk, vv in sorted(v.items())})
                else:
                    flat[k] = v
            return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in list(flat.items())[:MAX_PARAMS]}
    return {}


def _aliases(env: str, declared: list[str]) -> list[str]:
    return sorted({tracking.env_alias(env), *(tracking.label_alias(env, a) for a in declared)})


def _gates_tag(env: str, gates: dict[str, dict[str, Any]], rows_paths: dict[str, str]) -> str:
    doc = {g: {"passed": r["passed"], "metrics": r["metrics"], **({"rows_artifact": rows_paths[g]} if g in rows_paths else {})}
           for g, r in sorted(gates.items())}
    return json.dumps(doc, sort_keys=True)


def record(p: Params, inputs: dict[str, Path], src: Path, digest: str, metrics: dict[str, Any] | None,
           repo_root: Path) -> dict[str, Any]:
    """Track the run and register (or reuse, or, pinned, confirm) the MLflow version."""
    t = Params(p.dict("tracking"), "register: tracking", ("uri",))
    uri = t.str("uri", None)
    registry, env = p.str("registry"), p.str("env")
    spec_digest = p.str("spec_digest")
    declared = [str(a) for a in p.list("aliases", [])]
    client = tracking.connect(uri, repo_root, token=os.environ.get("MLFLOW_TRACKING_TOKEN"))
    resolved_uri = tracking.resolve_uri(uri, repo_root)
    gates = gate_decisions(inputs)
    pin = p.dict("pin", None)
    if pin is not None:
        if f"sha256:{digest}" != pin.get("digest"):
            raise StepError(f"register: the fetched files have digest sha256:{digest}, not the pinned {pin.get('digest')}")
        return _pinned(client, p, pin, registry, env, gates, declared)
    sha = f"sha256:{digest}"
    mv = tracking.find_version(client, registry, spec_digest=spec_digest, digest=sha)
    changed = False
    if mv is None:
        mv = _register(client, p, inputs, src, sha, metrics, gates, resolved_uri, repo_root)
        changed = True
    move = p.raw("move_aliases", True)
    if not isinstance(move, bool):
        raise p.error("move_aliases", f"must be true or false (got {move!r})")
    aliases = _aliases(env, declared) if move else []
    have = tracking.registered_aliases(client, registry) or {}
    if any(have.get(a) != str(mv.version) for a in aliases):
        tracking.set_aliases(client, registry, str(mv.version), aliases, [])
        changed = True
    return {"mlflow_version": str(mv.version), "run_id": mv.run_id, "registry_uri": tracking.display(resolved_uri),
            "mlflow_aliases": aliases, "mlflow_changed": changed}


def _register(client: Any, p: Params, inputs: dict[str, Path], src: Path, sha: str, metrics: dict[str, Any] | None,
              gates: dict[str, dict[str, Any]], uri: str, repo_root: Path) -> Any:
    registry, model, env = p.str("registry"), p.str("model"), p.str("env")
    spec_digest = p.str("spec_digest")
    commit = commit_of(repo_root)
    datasets = dataset_lineage(inputs)
    exp = tracking.ensure_experiment(client, model, uri, repo_root)
    run_tags = {tracking.TAG + "env": env, tracking.TAG + "spec_digest": spec_digest, tracking.TAG + "digest": sha,
                "mlflow.runName": f"{env}-{sha[7:19]}"}
    if commit:
        run_tags["mlflow.source.git.commit"] = commit
    run = tracking.guarded("starting the run", lambda: client.create_run(exp, tags=run_tags))
    rid = run.info.run_id
    from mlflow.entities import Metric, Param

    params = [Param(k, str(v)[:6000]) for k, v in _recipe(src).items()]
    numeric = {k: float(v) for k, v in sorted((metrics or {}).items())
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for g, rec in gates.items():
        numeric.update({f"{g}.{k}": float(v) for k, v in rec["metrics"].items()})
    batch = [Metric(k, v, 0, 0) for k, v in sorted(numeric.items())]
    tracking.guarded("logging params and metrics", lambda: client.log_batch(rid, metrics=batch, params=params))
    rows_paths: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="specops-register-") as tmp:
        gdir = Path(tmp) / "gates" / env
        gdir.mkdir(parents=True)
        for g, rec in gates.items():
            (gdir / f"{g}.json").write_text(json.dumps(rec, sort_keys=True, indent=2) + "\n", encoding="utf-8")
            if "rows" in rec:
                rows_paths[g] = f"gates/{env}/{g}.json"
        ddir = Path(tmp) / "data"
        ddir.mkdir()
        for d in datasets:
            (ddir / f"{d['name']}.json").write_text(json.dumps(d, sort_keys=True, indent=2) + "\n", encoding="utf-8")
        tracking.guarded("logging artifacts", lambda: client.log_artifacts(rid, str(Path(tmp)), None))
    tracking.guarded("logging the model files", lambda: client.log_artifacts(rid, str(src), "model"))
    tracking.ensure_registered_model(client, registry, model)
    tags = {tracking.TAG + "digest": sha, tracking.TAG + "spec_digest": spec_digest, tracking.TAG + "env": env,
            tracking.TAG + "model": model,
            tracking.TAG + "datasets": json.dumps([{k: d[k] for k in ("name", "version", "digest")} for d in datasets],
                                                  sort_keys=True),
            tracking.TAG + "gates." + env: _gates_tag(env, gates, rows_paths),
            tracking.TAG + "model_card": CARD_PATH}
    if commit:
        tags[tracking.TAG + "commit"] = commit
    mv = tracking.guarded("registering the version", lambda: client.create_model_version(
        registry, source=f"{run.info.artifact_uri}/model", run_id=rid, tags=tags,
        description=p.str("description", None) or f"{model}, registered by specops in {env}"))
    tracking.write_model_card(client, registry, mv, description=p.str("description", None))
    tracking.guarded("closing the run", lambda: client.set_terminated(rid, "FINISHED"))
    return mv


def _pinned(client: Any, p: Params, pin: dict[str, Any], registry: str, env: str,
            gates: dict[str, dict[str, Any]], declared: list[str]) -> dict[str, Any]:
    version, digest = str(pin.get("version")), str(pin.get("digest"))
    mv = tracking.get_version(client, registry, version)
    if mv is None:
        raise StepError(f"register: pinned version {registry} {version} is not in the registry")
    have = (mv.tags or {}).get(tracking.TAG + "digest")
    if have != digest:
        raise StepError(f"register: {registry} version {version} has digest {have}, not the pinned {digest}")
    tracking.guarded("recording the gates", lambda: client.set_model_version_tag(
        registry, version, tracking.TAG + "gates." + env, _gates_tag(env, gates, {})))
    aliases = _aliases(env, declared)
    tracking.set_aliases(client, registry, version, aliases, [])
    return {"mlflow_version": version, "run_id": mv.run_id, "mlflow_aliases": aliases, "mlflow_changed": True}
