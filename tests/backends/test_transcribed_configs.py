"""Real public serving configs, transcribed into specs, compile to the same flags and values.

Sources (tests/fixtures/transcribed/, see ORIGIN.md): production-stack's Helm tutorials
values-02 (basic config), values-04 (two models), values-09 (LoRA) and values-25 (V100, TP 4);
KServe's Hugging Face runtime sample; a 70B launch at tensor parallel 4. Each test writes the
spec repo a new user would write for the source, compiles it, and compares element by element:
model, adapter, revision, CPU/memory, env, shm, strategy, volume, GPUs, vLLM flags. The
plaintext `hf_token` placeholders of the tutorials are transcribed as secret references and
compile to the chart's `{secretName, secretKey}` form.

The chart's vLLM command line is derived from its values by `chart_flags`, which mirrors
templates/deployment-vllm-multi.yaml of chart 0.1.12 (a stand-in for `helm template`, which
cannot run here); the values themselves are also validated against the chart's own
values.schema.json.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from specops.backends import crd, kserve
from specops.build.compile import compile_repo
from specops.checks import analyze

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SRC = FIX / "transcribed"
REV = "0e9e39f249a16976918f6564b8830bc894c89659"
ADAPTER_REV = "2" * 40


def project(platform: str, gpus: list[str], provider: str = "onprem") -> str:
    return f"""apiVersion: specops.dev/v1alpha1
kind: Project
metadata: {{name: transcribed}}
spec:
  targets:
    cluster:
      backend: zenml
      provider: {provider}
      serving: {{platform: {platform}, namespace: llm}}
      gpus: {json.dumps(gpus)}
  environments:
    prod: {{target: cluster}}
  # The tutorials serve `latest` images without eval gates; transcribed as they are, so the
  # built-in rules that refuse both in a production environment are off here.
  rules: {{disable: [prod-serving-names-gates, no-mutable-images-in-prod]}}
"""


def model(name: str, hub: str, rev: str = REV) -> str:
    return f"""---
apiVersion: specops.dev/v1alpha1
kind: Model
metadata: {{name: {name}}}
spec:
  type: llm
  llm:
    base: {{model: {hub}, revision: "{rev}"}}
"""


def compile_specs(tmp_path: Path, files: dict[str, str]) -> dict[str, Any]:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    resolved = analyze(tmp_path)
    assert not resolved.diagnostics.has_errors, [d.headline() for d in resolved.diagnostics.sorted()]
    build = compile_repo(resolved)
    assert not build.diagnostics.has_errors, [d.headline() for d in build.diagnostics.sorted()]
    return {p: (yaml.safe_load(d) if p.endswith((".yaml", ".json")) else d) for p, d in build.files().items()}


def chart_flags(spec: dict[str, Any]) -> dict[str, Any]:
    """The vLLM flags the chart puts on the command line for one modelSpec (its template's
    vllmConfig mapping plus extraArgs and modelRevision), as {flag: value or True/False}."""
    out: dict[str, Any] = {"model": spec["modelURL"]}
    if spec.get("enableLoRA"):
        out["enable-lora"] = True
    vc = spec.get("vllmConfig") or {}
    if "enableChunkedPrefill" in vc:
        out["enable-chunked-prefill"] = bool(vc["enableChunkedPrefill"])
    out["enable-prefix-caching"] = bool(vc.get("enablePrefixCaching"))
    for key, flag in (("maxModelLen", "max-model-len"), ("dtype", "dtype"), ("tensorParallelSize", "tensor-parallel-size"),
                      ("maxNumSeqs", "max-num-seqs"), ("gpuMemoryUtilization", "gpu-memory-utilization"),
                      ("maxLoras", "max-loras")):
        if key in vc:
            out[flag] = str(vc[key])
    args = [str(a) for a in vc.get("extraArgs") or []]
    i = 0
    while i < len(args):
        word = args[i].lstrip("-")
        name, eq, value = word.partition("=")
        if eq:
            out[name] = value
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            out[name] = args[i + 1]
            i += 1
        else:
            out[name] = not name.startswith("no-")
        i += 1
    if spec.get("modelRevision"):
        out["revision"] = spec["modelRevision"]
    return out


def chart_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((FIX / "production-stack" / "values.schema.json").read_text())
    return jsonschema.Draft202012Validator(crd.strict_structural(schema))


def original(name: str) -> dict[str, Any]:
    return yaml.safe_load((SRC / f"{name}.yaml").read_text())


def same_flags(orig: dict[str, Any], ours: dict[str, Any], pinned: bool = True) -> None:
    """Every flag the original passes, ours passes with the same value; ours adds only the pin."""
    o, c = chart_flags(orig), chart_flags(ours)
    for flag, value in o.items():
        assert c.get(flag) == value, (flag, value, c.get(flag))
    extra = set(c) - set(o)
    assert extra <= {"revision", "tokenizer-revision", "lora-modules", "max-lora-rank"}, extra
    if pinned:
        assert c["revision"] == REV


def same_resources(orig: dict[str, Any], ours: dict[str, Any]) -> None:
    for key in ("requestCPU", "requestMemory", "requestGPU", "pvcStorage", "pvcAccessMode", "replicaCount",
                "repository", "tag", "shmSize"):
        if key in orig:
            assert str(ours.get(key)) == str(orig[key]), (key, orig[key], ours.get(key))


# ---- production-stack ------------------------------------------------------------------------


def test_values_02_basic_config(tmp_path: Path) -> None:
    st = """---
apiVersion: specops.dev/v1alpha1
kind: ServingTarget
metadata: {name: llama3}
spec:
  model: llama3
  image: vllm/vllm-openai:latest
  accelerator: {type: L4}
  engine:
    args: {enable-chunked-prefill: false, enable-prefix-caching: false, max-model-len: 4096, dtype: bfloat16,
           gpu-memory-utilization: 0.8}
  resources: {requests: {cpu: 10, memory: 16Gi}}
  modelCache: {size: 50Gi, accessMode: ReadWriteOnce}
  hfToken: {secretRef: {name: hf-token, key: token}}
"""
    files = compile_specs(tmp_path, {"specops.yaml": project("helm", ["L4"]),
                                     "serving.yaml": model("llama3", "meta-llama/Llama-3.1-8B-Instruct") + st})
    values = files["prod/serving/llama3/values.yaml"]
    assert [e.message for e in chart_validator().iter_errors(values)] == []
    (orig,) = original("values-02-basic-config")["servingEngineSpec"]["modelSpec"]
    (ours,) = values["servingEngineSpec"]["modelSpec"]
    same_flags(orig, ours)
    same_resources(orig, ours)
    assert ours["hf_token"] == {"secretName": "hf-token", "secretKey": "token"}  # not the plaintext


def test_values_04_two_models_in_one_release(tmp_path: Path) -> None:
    def target(name: str, util: float) -> str:
        return f"""---
apiVersion: specops.dev/v1alpha1
kind: ServingTarget
metadata: {{name: {name}}}
spec:
  model: {name}
  release: stack
  image: vllm/vllm-openai:latest
  accelerator: {{type: L4}}
  # The chart passes --no-enable-prefix-caching when vllmConfig leaves it out: written out here.
  engine: {{args: {{max-model-len: 4096, max-num-seqs: 32, max-loras: 4, gpu-memory-utilization: {util},
                   enable-prefix-caching: false}}}}
  resources: {{requests: {{cpu: 10, memory: 16Gi}}}}
  modelCache: {{size: 50Gi, accessMode: ReadWriteOnce}}
  hfToken: {{secretRef: {{name: hf-token-{name}, key: token}}}}
"""
    files = compile_specs(tmp_path, {
        "specops.yaml": project("helm", ["L4"]),
        "llama3.yaml": model("llama3", "meta-llama/Llama-3.1-8B-Instruct") + target("llama3", 0.8),
        "mistral.yaml": model("mistral", "mistralai/Mistral-7B-Instruct-v0.2") + target("mistral", 0.95),
    })
    values = files["prod/serving/stack/values.yaml"]
    assert [e.message for e in chart_validator().iter_errors(values)] == []
    origs = original("values-04-multiple-models")["servingEngineSpec"]["modelSpec"]
    ours = values["servingEngineSpec"]["modelSpec"]
    assert [m["name"] for m in ours] == [m["name"] for m in origs]
    for o, c in zip(origs, ours):
        same_flags(o, c)
        same_resources(o, c)


def test_values_09_lora(tmp_path: Path) -> None:
    st = f"""---
apiVersion: specops.dev/v1alpha1
kind: Model
metadata: {{name: llama-3-1-nemoguard-8b-topic-control}}
spec:
  type: llm
  llm:
    base: {{model: meta-llama/Llama-3.1-8B-Instruct, revision: "{REV}"}}
    adapter: {{model: nvidia/llama-3.1-nemoguard-8b-topic-control, revision: "{ADAPTER_REV}", rank: 16}}
---
apiVersion: specops.dev/v1alpha1
kind: ServingTarget
metadata: {{name: llama3}}
spec:
  model: llama3
  adapters: [llama-3-1-nemoguard-8b-topic-control]
  image: vllm/vllm-openai:latest
  accelerator: {{type: L4}}
  replicas: {{min: 2, max: 2}}
  strategy: Recreate
  engine: {{args: {{enable-prefix-caching: true, max-model-len: 4096, dtype: bfloat16, gpu-memory-utilization: 0.8}}}}
  resources: {{requests: {{cpu: 8, memory: 32Gi}}}}
  modelCache: {{size: 10Gi, accessMode: ReadWriteOnce}}
  hfToken: {{secretRef: {{name: huggingface-credentials, key: HUGGING_FACE_HUB_TOKEN}}}}
"""
    files = compile_specs(tmp_path, {"specops.yaml": project("helm", ["L4"]),
                                     "serving.yaml": model("llama3", "meta-llama/Llama-3.1-8B-Instruct") + st})
    values = files["prod/serving/llama3/values.yaml"]
    assert [e.message for e in chart_validator().iter_errors(values)] == []
    orig_values = original("values-09-lora-helm")
    (orig,) = orig_values["servingEngineSpec"]["modelSpec"]
    (ours,) = values["servingEngineSpec"]["modelSpec"]
    same_flags(orig, ours)
    same_resources(orig, ours)
    assert ours["enableLoRA"] is True and orig["env"][0] in ours["env"]
    assert values["servingEngineSpec"]["strategy"] == orig_values["servingEngineSpec"]["strategy"]
    assert values["loraController"]["enableLoraController"] is True
    (entry,) = values["loraAdapters"]
    (orig_entry,) = orig_values["loraAdapters"]
    assert entry["baseModel"] == orig_entry["baseModel"]
    # The chart's Hub source has no revision: ours is pre-fetched at the pinned commit instead.
    assert entry["adapterSource"]["type"] == "local"
    assert ours["initContainer"]["command"][:5] == ["hf", "download", orig_entry["adapterSource"]["repository"],
                                                  "--revision", ADAPTER_REV]
    assert ours["hf_token"] == {"secretName": "huggingface-credentials", "secretKey": "HUGGING_FACE_HUB_TOKEN"}


def test_values_25_v100_tp4(tmp_path: Path) -> None:
    st = """---
apiVersion: specops.dev/v1alpha1
kind: ServingTarget
metadata: {name: qwen14b}
spec:
  model: qwen14b
  image: vllm/vllm-openai:v0.8.5
  engine:
    version: 0.8.5
    args: {dtype: half, tensor-parallel-size: 4, max-model-len: 8192, gpu-memory-utilization: 0.9, enforce-eager: true,
           enable-prefix-caching: false}  # the chart's default when vllmConfig leaves it out
  accelerator: {type: V100, count: 4}
  resources: {requests: {cpu: 16, memory: 64Gi}}
  modelCache: {size: 80Gi, accessMode: ReadWriteOnce}
  shmSize: 4Gi
  env: [{name: VLLM_ENABLE_CUDA_COMPATIBILITY, value: "1"}]
  placement: {nodeSelector: {kubernetes.io/hostname: gpu-node-02}}
  hfToken: {secretRef: {name: hf-token, key: token}}
"""
    files = compile_specs(tmp_path, {"specops.yaml": project("helm", ["V100"]),
                                     "serving.yaml": model("qwen14b", "Qwen/Qwen2.5-14B-Instruct") + st})
    values = files["prod/serving/qwen14b/values.yaml"]
    assert [e.message for e in chart_validator().iter_errors(values)] == []
    orig_values = original("values-25-v100-multi-gpu-tp4")
    (orig,) = orig_values["servingEngineSpec"]["modelSpec"]
    (ours,) = values["servingEngineSpec"]["modelSpec"]
    orig_flags = {k: v for k, v in chart_flags(orig).items()}
    # Several GPUs per replica: Recreate by default, as the tutorial requires.
    assert values["servingEngineSpec"]["strategy"] == orig_values["servingEngineSpec"]["strategy"]
    same_flags(orig, ours)
    same_resources(orig, ours)
    assert orig_flags["tensor-parallel-size"] == "4" and ours["vllmConfig"]["tensorParallelSize"] == 4
    assert orig["env"][0] in ours["env"]
    (term,) = ours["nodeSelectorTerms"]
    assert orig["nodeSelectorTerms"][0]["matchExpressions"][0] in term["matchExpressions"]


# ---- KServe and a plain launch ---------------------------------------------------------------


def test_kserve_huggingface_runtime_sample(tmp_path: Path) -> None:
    st = """---
apiVersion: specops.dev/v1alpha1
kind: ServingTarget
metadata: {name: huggingface-llama3}
spec:
  model: llama3
  engine: {args: {served-model-name: [llama3]}}
  accelerator: {type: L4}
  resources: {requests: {cpu: 6, memory: 24Gi}, limits: {cpu: 6, memory: 24Gi}}
  hfToken: {secretRef: {name: hf-secret, key: HF_TOKEN}}
"""
    files = compile_specs(tmp_path, {"specops.yaml": project("kserve", ["L4"], provider="gcp"),
                                     "serving.yaml": model("llama3", "meta-llama/meta-llama-3-8b-instruct") + st})
    isvc = files["prod/serving/huggingface-llama3/inferenceservice.yaml"]
    schema = json.loads((FIX / "kserve" / "inferenceservice-v1beta1.schema.json").read_text())["openAPIV3Schema"]
    assert kserve.validate_inferenceservice(isvc, schema) == []
    orig = yaml.safe_load((SRC / "kserve-huggingface-llama3.yaml").read_text())["spec"]["predictor"]["model"]
    ours = isvc["spec"]["predictor"]["model"]
    assert ours["modelFormat"] == orig["modelFormat"]
    assert set(orig["args"]) <= set(ours["args"])
    assert f"--model_revision={REV}" in ours["args"]
    for kind in ("requests", "limits"):
        for key, value in orig["resources"][kind].items():
            assert str(ours["resources"][kind][key]) == str(value), (kind, key)
    env = {e["name"]: e for e in ours["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf-secret"
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "HF_TOKEN"


def test_70b_launch_at_tensor_parallel_4(tmp_path: Path) -> None:
    words = shlex.split((SRC / "vllm-70b-tp4.sh").read_text().split("exec ", 1)[1].replace("\\\n", " "))
    assert words[:2] == ["vllm", "serve"]
    hub, flags = words[2], words[3:]
    orig: dict[str, Any] = {}
    i = 0
    while i < len(flags):
        name = flags[i].lstrip("-")
        if i + 1 < len(flags) and not flags[i + 1].startswith("--"):
            orig[name], i = flags[i + 1], i + 2
        else:
            orig[name], i = True, i + 1
    st = """---
apiVersion: specops.dev/v1alpha1
kind: ServingTarget
metadata: {name: llama70b}
spec:
  model: llama70b
  platform: kubernetes
  accelerator: {type: H100, count: 4}
  engine: {args: {max-model-len: 8192, gpu-memory-utilization: 0.9, enable-prefix-caching: true}}
"""
    files = compile_specs(tmp_path, {"specops.yaml": project("kubernetes", ["H100"], provider="aws"),
                                     "serving.yaml": model("llama70b", hub) + st})
    cfg = files["prod/serving/llama70b/vllm.yaml"]
    assert cfg["model"] == hub
    for name, value in orig.items():
        assert str(cfg[name]) == str(value), (name, value, cfg.get(name))  # TP 4 from the GPU count
    dep = files["prod/serving/llama70b/deployment.yaml"]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 4


@pytest.mark.parametrize("name", ["values-02-basic-config", "values-04-multiple-models", "values-09-lora-helm",
                                  "values-25-v100-multi-gpu-tp4"])
def test_originals_are_the_tutorials_with_plaintext_tokens(name: str) -> None:
    """What the transcriptions replace: the tutorials hold plaintext hf_token placeholders."""
    values = original(name)
    tokens = [m.get("hf_token") for m in values["servingEngineSpec"]["modelSpec"] if "hf_token" in m]
    assert all(isinstance(t, str) for t in tokens)
