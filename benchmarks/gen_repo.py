"""Generate a synthetic spec repo of N specs for benchmarks (deterministic).

    python benchmarks/gen_repo.py OUT_DIR [--specs 1000]

The mix mirrors a large platform repo: a quarter datasets, a quarter models (60 % classical,
40 % LoRA fine-tunes), a fifth prompts, a fifth eval gates, a tenth serving targets, spread
over nested folders, some files holding several documents, some specs with per-environment
overrides.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import yaml

PROJECT = {
    "apiVersion": "specops.dev/v1alpha1", "kind": "Project", "metadata": {"name": "bench"},
    "spec": {
        "targets": {
            "local": {"backend": "zenml"},
            "gcp": {"backend": "kfp", "provider": "gcp", "project": "bench-project", "region": "us-central1",
                    "artifactStore": "gs://bench-artifacts", "serving": {"platform": "kserve"},
                    "gpus": ["L4", "A100-80GB"]},
            "aws": {"backend": "sagemaker", "provider": "aws", "region": "us-east-1",
                    "artifactStore": "s3://bench-artifacts", "roleArn": "arn:aws:iam::123456789012:role/x",
                    "serving": {"platform": "sagemaker"}, "gpus": ["H100", "A10G"]},
        },
        "environments": {
            "dev": {"target": "local", "policy": {"drift": "reconcile", "prune": True}},
            "staging": {"target": "gcp", "policy": {"requireGates": True, "drift": "reconcile"}},
            "prod": {"target": "aws", "policy": {"requireGates": True}},
        },
    },
}


def doc(kind: str, name: str, spec: dict, **extra) -> dict:
    d = {"apiVersion": "specops.dev/v1alpha1", "kind": kind, "metadata": {"name": name, "labels": {"team": f"t{sum(map(ord, name)) % 7}"}}, "spec": spec}
    d.update(extra)
    return d


def generate(out: Path, n: int = 1000) -> Path:
    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    (out / "data" / "rows.csv").write_text("id,x,y,label\n1,0.5,a,1\n2,0.1,b,0\n")
    (out / "base").mkdir()
    (out / "specops.yaml").write_text(yaml.safe_dump(PROJECT, sort_keys=False))
    n_ds, n_models, n_prompts, n_gates = n // 4, n // 4, n // 5, n // 5
    n_serving = n - 1 - n_ds - n_models - n_prompts - n_gates
    docs: list[tuple[str, dict]] = []
    for i in range(n_ds):
        docs.append((f"datasets/group{i % 10}/ds-{i}.yaml", doc("Dataset", f"ds-{i}", {
            "source": {"uri": "file://data/rows.csv" if i % 2 else f"s3://bench-data/ds-{i}/v{i % 5}.parquet",
                       "format": "csv" if i % 2 else "parquet", "version": f"v{i % 5}"},
            "columns": [{"name": "id", "type": "int"}, {"name": "x", "type": "float"},
                        {"name": "y", "type": "category"}, {"name": "label", "type": "int"}],
            "splits": {"train": 0.8, "test": 0.2},
            "checks": [{"type": "rowCount", "min": 1}, {"type": "nullFraction", "column": "x", "max": 0.1}],
        })))
    llm_models = []
    classical_models = []
    for i in range(n_models):
        ds = f"ds-{i % n_ds}"
        if i % 5 < 3:
            classical_models.append(f"model-{i}")
            algorithm = ["random_forest", "gradient_boosting", "logistic_regression"][i % 3]
            hyper = {"C": 1.0 + i % 4} if algorithm == "logistic_regression" else {"max_depth": 3 + i % 4}
            spec = {"type": "classical", "datasets": [{"dataset": ds}],
                    "classical": {"algorithm": algorithm, "target": "label", "features": ["x", "y"]},
                    "hyperparameters": hyper, "resources": {"cpu": "2", "memory": "4Gi"}}
            extra = {"overrides": {"prod": {"resources": {"cpu": "4", "memory": "8Gi", "instanceType": "ml.m5.xlarge"}}}} if i % 3 == 0 else {}
        else:
            llm_models.append(f"model-{i}")
            spec = {"type": "llm", "datasets": [{"dataset": ds}],
                    "llm": {"base": {"model": "meta-llama/Llama-3.1-8B-Instruct", "revision": "0e9e39f249a16976918f6564b8830bc894c89659"},
                            "finetune": {"method": "lora", "lora": {"r": 8}, "epochs": 1}},
                    "resources": {"accelerator": {"type": "L4", "count": 1}}}
            extra = {"overrides": {"prod": {"resources": {"accelerator": {"type": "H100"}, "instanceType": "ml.p5.48xlarge"}},
                                   "dev": {"resources": {"accelerator": None}}}}
        docs.append((f"models/team{i % 8}/model-{i}.yaml", doc("Model", f"model-{i}", spec, **extra)))
    for i in range(n_prompts):
        m = llm_models[i % len(llm_models)]
        docs.append((f"prompts/p{i // 20}.yaml", doc("Prompt", f"prompt-{i}", {
            "model": m, "version": 1 + i % 3,
            "template": "Answer {{ question }} for {{ customer }} in {{ lang }}.",
            "variables": {"question": {"type": "string"}, "customer": {"type": "string"},
                          "lang": {"type": "string", "default": "en"}},
            "parameters": {"temperature": 0.2, "maxTokens": 256},
            "labels": {"prod": ["production"], "staging": ["latest"]},
        })))
    gates: dict[str, str] = {}  # LLM model -> a gate that evaluates it
    for i in range(n_gates):
        if i % 2:
            m = classical_models[i % len(classical_models)]
            metrics = [{"metric": "auc", "threshold": ">= 0.7"}, {"metric": "accuracy", "threshold": ">= baseline - 0.01"}]
        else:
            m = llm_models[i % len(llm_models)]
            metrics = [{"metric": "rougeL", "threshold": ">= 0.4"}]
            gates.setdefault(m, f"gate-{i}")
        docs.append((f"gates/g{i // 25}.yaml", doc("EvalGate", f"gate-{i}", {
            "model": m, "dataset": f"ds-{i % n_ds}", "metrics": metrics, "blocks": ["prod"]})))
    gated = list(gates)  # environments that require gates serve only gated models
    for i in range(n_serving):
        m = gated[i % len(gated)]
        docs.append((f"serving/s-{i}.yaml", doc("ServingTarget", f"serve-{i}", {
            "model": m, "engine": {"version": "0.32.0", "args": {"max-model-len": 4096, "enable-prefix-caching": True,
                                                                 "gpu-memory-utilization": 0.9}},
            "accelerator": {"type": "L4", "count": 1}, "replicas": {"min": 1, "max": 2},
            "gates": [gates[m]]},  # a rollout gate evaluates the served model
            environments=["staging", "prod"],
            overrides={"prod": {"accelerator": {"type": "H100"}, "instanceType": "ml.p5.48xlarge"}})))
    by_file: dict[str, list[dict]] = {}
    for path, d in docs:
        by_file.setdefault(path, []).append(d)
    for path, ds in by_file.items():
        p = out / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump_all(ds, sort_keys=False))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--specs", type=int, default=1000)
    a = ap.parse_args()
    generate(a.out, a.specs)
    print(f"wrote {a.specs} specs under {a.out}")
