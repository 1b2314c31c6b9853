"""Test double for a pipeline orchestrator (documented in ops_fixtures.py: a real ZenML run
costs ~15 s, so only the slow tests use it). It keeps "live" pipelines in
`<root>/.specops/fake/<env>.json` and logs every create in `<env>.log`, so tests can see
duplicates. Behaviour knobs (env vars, so a subprocess apply obeys them too):

    SPECOPS_FAKE_GATES="gate=pass,gate2=fail"   gate verdicts a run reports
    SPECOPS_FAKE_FAIL="<name>"                  apply of that pipeline fails (hard error)
    SPECOPS_FAKE_THROTTLE="<n>"                 the first n calls of each apply are throttled
    SPECOPS_FAKE_SLOW="<seconds>"               pause after the live object was created and
                                                before apply returns (a crash window: the
                                                object exists, the state does not know yet)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from specops.backends.provider import Live, ProviderError, RetryableError

_calls: dict[str, int] = {}


class FakePipelineProvider:
    TYPE = "zenml_pipeline"

    def __init__(self, env: str, root: Path) -> None:
        self.root = root
        self.path = root / ".specops" / "fake" / f"{env}.json"
        self.log = root / ".specops" / "fake" / f"{env}.log"

    def _load(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def _save(self, doc: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp, self.path)

    def read(self, desired, current) -> Live:
        name = desired.name if desired is not None else current.name
        obj = self._load().get(name)
        return Live(exists=False) if obj is None else Live(exists=True, content_hash=obj["hash"], ids={"id": obj["id"]})

    def apply(self, desired, current):
        n = int(os.environ.get("SPECOPS_FAKE_THROTTLE", "0"))
        _calls[desired.address] = _calls.get(desired.address, 0) + 1
        if _calls[desired.address] <= n:
            raise RetryableError("ThrottlingException: rate exceeded")
        gates = {}
        for item in filter(None, os.environ.get("SPECOPS_FAKE_GATES", "").split(",")):
            g, verdict = item.split("=")
            gates[g] = {"model": desired.name, "version": f"v-{desired.content_hash[:8]}",
                        "passed": verdict == "pass", "metrics": {"rougeL": 0.5}, "message": "", "source": "run"}
        if os.environ.get("SPECOPS_FAKE_FAIL") == desired.name:
            raise ProviderError(f"run of {desired.name} failed: boom", outputs={"gates": gates})
        doc = self._load()
        obj = doc.get(desired.name)
        if obj is None or obj["hash"] != desired.content_hash:  # idempotent: same content, no new object
            obj = {"id": f"{desired.name}-{desired.content_hash[:8]}", "hash": desired.content_hash}
            doc[desired.name] = obj
            self._save(doc)
            with open(self.log, "a") as f:
                f.write(f"create {desired.name} {desired.content_hash[:8]}\n")
        if all(g["passed"] for g in gates.values()):
            self._register(desired, gates)
        if os.environ.get("SPECOPS_FAKE_SLOW"):
            import time

            time.sleep(float(os.environ["SPECOPS_FAKE_SLOW"]))
        return {"id": obj["id"]}, {"model_version": f"v-{desired.content_hash[:8]}", "gates": gates}

    def _register(self, desired, gates) -> None:
        """What the pipeline's register step does (runtime/register_mlflow.py), in the real
        MLflow store: a version tagged with the compiled spec digest, this env's aliases on it."""
        import yaml

        from specops.runtime import tracking

        run = yaml.safe_load(desired.files["run.yaml"])
        params = run["steps"]["register"]["parameters"]["params"]
        client = tracking.connect((params.get("tracking") or {}).get("uri"), self.root)
        registry, env = params["registry"], params["env"]
        if tracking.find_version(client, registry, spec_digest=params["spec_digest"]) is not None:
            return
        tracking.ensure_registered_model(client, registry, params["model"])
        tags = {"specops.spec_digest": params["spec_digest"], "specops.digest": f"sha256:{desired.content_hash}",
                "specops.env": env, "specops.gates." + env: json.dumps(
                    {g: {"passed": r["passed"], "metrics": r["metrics"]} for g, r in gates.items()})}
        mv = client.create_model_version(registry, f"s3://specops-fake/{desired.content_hash[:8]}", tags=tags)
        aliases = [tracking.env_alias(env)] + [tracking.label_alias(env, a) for a in params.get("aliases") or []]
        tracking.set_aliases(client, registry, str(mv.version), aliases, [])

    def delete(self, current) -> None:
        doc = self._load()
        doc.pop(current.name, None)
        self._save(doc)


def provider(type: str, *, env: str, target: Any, root: Path, options: dict) -> FakePipelineProvider:
    return FakePipelineProvider(env, Path(root))
