"""Declared is delivered: every field of every kind changes a compiled artifact, or is reported
at its line by a diagnostic; and a change to one spec changes no artifact that does not depend
on that spec (the diff's "caused by" is exact).

The fields are walked from the pydantic models of every kind (tests/specs/fieldwalk.py). Each
leaf field is in exactly one table:

- MUTATIONS: an edit of an example spec that sets the field. The test compiles the example
  before and after: some artifact must change, or a diagnostic must point into the edited
  field's block; every changed artifact must list the edited spec among its dependencies.
- COVERED_ELSEWHERE: fields whose example needs more than one edit (a published adapter Model,
  a second release mate...); the named test proves them, and this test checks it exists.
- NOT_RUN: fields that change nothing that runs, by design (documentation, the envelope), with why.
- PENDING: fields not yet proven to reach anything, each naming its issue and what is missing;
  that issue moves them into one of the tables above.

New spec fields must join MUTATIONS (or one of the other tables, with a reason).
"""

from __future__ import annotations

import functools
import importlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from specops.build.compile import compile_repo
from specops.checks import analyze
from tests.specs.fieldwalk import all_fields

ROOT = Path(__file__).resolve().parents[2]
SA = "support-assistant"
ST = "serving/support-llm.yaml"
MODEL = "models/support-llm.yaml"
REV2 = "1" * 40

# (example, file, path from the document root, value) per leaf field; "[]" indexes item 0.
MUTATIONS: dict[str, tuple[str, str, tuple, Any]] = {
    # ---- ServingTarget ------------------------------------------------------------------
    "ServingTarget:metadata.name": (SA, ST, ("metadata", "name"), "support-llm-2"),
    "ServingTarget:metadata.labels": (SA, ST, ("metadata", "labels"), {"team": "search"}),
    "ServingTarget:environments": (SA, ST, ("environments",), ["staging"]),
    "ServingTarget:overrides": (SA, ST, ("overrides", "prod", "canary"), {"traffic": 50}),
    "ServingTarget:spec.model": (SA, ST, ("spec", "model"), "missing-model"),
    "ServingTarget:spec.adapters": (SA, ST, ("spec", "adapters"), []),
    "ServingTarget:spec.engine.version": (SA, ST, ("spec", "engine", "version"), "0.11.0"),
    "ServingTarget:spec.engine.args.data-parallel-size": (SA, ST, ("spec", "engine", "args", "data-parallel-size"), 2),
    "ServingTarget:spec.engine.args.dtype": (SA, ST, ("spec", "engine", "args", "dtype"), "float16"),
    "ServingTarget:spec.engine.args.enable-chunked-prefill": (SA, ST, ("spec", "engine", "args", "enable-chunked-prefill"), False),
    "ServingTarget:spec.engine.args.enable-lora": (SA, ST, ("spec", "engine", "args", "enable-lora"), False),
    "ServingTarget:spec.engine.args.enable-prefix-caching": (SA, ST, ("spec", "engine", "args", "enable-prefix-caching"), False),
    "ServingTarget:spec.engine.args.gpu-memory-utilization": (SA, ST, ("spec", "engine", "args", "gpu-memory-utilization"), 0.8),
    "ServingTarget:spec.engine.args.kv-cache-dtype": (SA, ST, ("spec", "engine", "args", "kv-cache-dtype"), "fp8"),
    "ServingTarget:spec.engine.args.max-lora-rank": (SA, ST, ("spec", "engine", "args", "max-lora-rank"), 32),
    "ServingTarget:spec.engine.args.max-loras": (SA, ST, ("spec", "engine", "args", "max-loras"), 4),
    "ServingTarget:spec.engine.args.max-model-len": (SA, ST, ("spec", "engine", "args", "max-model-len"), 2048),
    "ServingTarget:spec.engine.args.max-num-batched-tokens": (SA, ST, ("spec", "engine", "args", "max-num-batched-tokens"), 8192),
    "ServingTarget:spec.engine.args.max-num-seqs": (SA, ST, ("spec", "engine", "args", "max-num-seqs"), 64),
    "ServingTarget:spec.engine.args.pipeline-parallel-size": (SA, ST, ("spec", "engine", "args", "pipeline-parallel-size"), 1),
    "ServingTarget:spec.engine.args.quantization": (SA, ST, ("spec", "engine", "args", "quantization"), "fp8"),
    "ServingTarget:spec.engine.args.speculative-config": (SA, ST, ("spec", "engine", "args", "speculative-config"),
                                                          {"method": "ngram", "num_speculative_tokens": 3}),
    "ServingTarget:spec.engine.args.tensor-parallel-size": (SA, ST, ("spec", "engine", "args", "tensor-parallel-size"), 1),
    "ServingTarget:spec.accelerator.type": (SA, ST, ("spec", "accelerator", "type"), "H100"),
    "ServingTarget:spec.accelerator.count": (SA, ST, ("spec", "accelerator", "count"), 2),
    "ServingTarget:spec.replicas.min": (SA, ST, ("spec", "replicas", "min"), 2),
    "ServingTarget:spec.replicas.max": (SA, ST, ("spec", "replicas", "max"), 5),
    "ServingTarget:spec.canary.traffic": (SA, ST, ("spec", "canary", "traffic"), 25),
    "ServingTarget:spec.gates": (SA, ST, ("spec", "gates"), ["support-no-regression"]),
    "ServingTarget:spec.instanceType": (SA, ST, ("overrides", "prod", "instanceType"), "ml.p5.4xlarge"),
    "ServingTarget:spec.image": (SA, ST, ("spec", "image"), "vllm/vllm-openai:v0.32.1"),
    "ServingTarget:spec.hfToken.secretRef.name": (SA, ST, ("spec", "hfToken", "secretRef", "name"), "hub-token"),
    "ServingTarget:spec.hfToken.secretRef.key": (SA, ST, ("spec", "hfToken", "secretRef", "key"), "value"),
    "ServingTarget:spec.hfToken.secretRef.provider": (SA, ST, ("spec", "hfToken", "secretRef", "provider"), "vault"),
    "ServingTarget:spec.platform": (SA, ST, ("spec", "platform"), "kubernetes"),
    "ServingTarget:spec.resources.requests.cpu": (SA, ST, ("spec", "resources"), {"requests": {"cpu": 8}}),
    "ServingTarget:spec.resources.requests.memory": (SA, ST, ("spec", "resources"), {"requests": {"memory": "32Gi"}}),
    "ServingTarget:spec.resources.limits.cpu": (SA, ST, ("spec", "resources"), {"limits": {"cpu": 8}}),
    "ServingTarget:spec.resources.limits.memory": (SA, ST, ("spec", "resources"), {"limits": {"memory": "32Gi"}}),
    "ServingTarget:spec.env[].name": (SA, ST, ("spec", "env"), [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}]),
    "ServingTarget:spec.env[].value": (SA, ST, ("spec", "env"), [{"name": "A", "value": "1"}]),
    "ServingTarget:spec.env[].secretRef.name": (SA, ST, ("spec", "env"), [{"name": "A", "secretRef": {"name": "s"}}]),
    "ServingTarget:spec.env[].secretRef.key": (SA, ST, ("spec", "env"),
                                               [{"name": "A", "secretRef": {"name": "s", "key": "k"}}]),
    "ServingTarget:spec.env[].secretRef.provider": (SA, ST, ("spec", "env"),
                                                    [{"name": "A", "secretRef": {"name": "s", "provider": "vault"}}]),
    "ServingTarget:spec.shmSize": (SA, ST, ("spec", "shmSize"), "4Gi"),
    "ServingTarget:spec.modelCache.enabled": (SA, ST, ("spec", "modelCache"), {"enabled": False}),
    "ServingTarget:spec.modelCache.size": (SA, ST, ("spec", "modelCache"), {"size": "50Gi"}),
    "ServingTarget:spec.modelCache.accessMode": (SA, ST, ("spec", "modelCache"), {"accessMode": "ReadWriteMany"}),
    "ServingTarget:spec.modelCache.storageClass": (SA, ST, ("spec", "modelCache"), {"storageClass": "fast"}),
    "ServingTarget:spec.placement.nodeSelector": (SA, ST, ("spec", "placement"), {"nodeSelector": {"pool": "a"}}),
    "ServingTarget:spec.placement.affinity": (SA, ST, ("spec", "placement"), {"affinity": {"nodeAffinity": {}}}),
    "ServingTarget:spec.placement.tolerations[].key": (SA, ST, ("spec", "placement"),
                                                       {"tolerations": [{"key": "k", "operator": "Exists"}]}),
    "ServingTarget:spec.placement.tolerations[].operator": (SA, ST, ("spec", "placement"),
                                                            {"tolerations": [{"operator": "Exists"}]}),
    "ServingTarget:spec.placement.tolerations[].value": (SA, ST, ("spec", "placement"),
                                                         {"tolerations": [{"key": "k", "value": "v"}]}),
    "ServingTarget:spec.placement.tolerations[].effect": (SA, ST, ("spec", "placement"),
                                                          {"tolerations": [{"key": "k", "operator": "Exists",
                                                                            "effect": "NoExecute"}]}),
    "ServingTarget:spec.placement.tolerations[].tolerationSeconds": (
        SA, ST, ("spec", "placement"), {"tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 60}]}),
    "ServingTarget:spec.strategy": (SA, ST, ("spec", "strategy"), "Recreate"),
    "ServingTarget:spec.release": (SA, ST, ("spec", "release"), "stack"),
    # ---- Model (LLM) --------------------------------------------------------------------
    "Model:spec.llm.base.model": (SA, MODEL, ("spec", "llm", "base", "model"), "meta-llama/Llama-3.1-8B"),
    "Model:spec.llm.base.revision": (SA, MODEL, ("spec", "llm", "base", "revision"), REV2),
    "Model:spec.llm.base.path": (SA, MODEL, ("spec", "llm", "base", "path"), "models"),
    "Model:spec.llm.finetune.epochs": (SA, MODEL, ("spec", "llm", "finetune", "epochs"), 3),
    "Model:spec.llm.finetune.learningRate": (SA, MODEL, ("spec", "llm", "finetune", "learningRate"), 0.001),
    "Model:spec.llm.finetune.batchSize": (SA, MODEL, ("spec", "llm", "finetune", "batchSize"), 4),
    "Model:spec.llm.finetune.maxSeqLength": (SA, MODEL, ("spec", "llm", "finetune", "maxSeqLength"), 1024),
    "Model:spec.llm.finetune.maxSteps": (SA, MODEL, ("spec", "llm", "finetune", "maxSteps"), 10),
    "Model:spec.llm.finetune.lora.r": (SA, MODEL, ("spec", "llm", "finetune", "lora", "r"), 8),
    "Model:spec.llm.finetune.lora.alpha": (SA, MODEL, ("spec", "llm", "finetune", "lora", "alpha"), 16),
    "Model:spec.llm.finetune.lora.dropout": (SA, MODEL, ("spec", "llm", "finetune", "lora", "dropout"), 0.1),
    "Model:spec.llm.finetune.lora.targetModules": (SA, MODEL, ("spec", "llm", "finetune", "lora", "targetModules"),
                                                   ["q_proj"]),
    "Model:spec.llm.promptField": (SA, MODEL, ("spec", "llm", "promptField"), "question"),
    "Model:spec.llm.responseField": (SA, MODEL, ("spec", "llm", "responseField"), "answer"),
    "Model:spec.registry.name": (SA, MODEL, ("spec", "registry", "name"), "support-llm-v2"),
    "Model:spec.registry.aliases": (SA, MODEL, ("spec", "registry", "aliases"), ["candidate", "beta"]),
    # a pinned environment fetches the registered version instead of training it (specops promote)
    "Model:spec.registry.pin.version": (SA, MODEL, ("overrides", "prod", "registry"),
                                        {"pin": {"version": 3, "digest": "sha256:" + "a" * 64}}),
    "Model:spec.registry.pin.digest": (SA, MODEL, ("spec", "registry", "pin"),
                                       {"version": 1, "digest": "sha256:" + "b" * 64}),
    "Model:spec.resources.cpu": (SA, MODEL, ("spec", "resources", "cpu"), "4"),
    "Model:spec.resources.memory": (SA, MODEL, ("spec", "resources", "memory"), "16Gi"),
    "Model:spec.resources.accelerator.type": (SA, MODEL, ("spec", "resources", "accelerator", "type"), "H100"),
    "Model:spec.resources.accelerator.count": (SA, MODEL, ("spec", "resources", "accelerator", "count"), 2),
    "Model:spec.resources.instanceType": (SA, MODEL, ("overrides", "prod", "resources", "instanceType"), "ml.p4d.24xlarge"),
    "Model:spec.schedule.cron": (SA, MODEL, ("spec", "schedule"), {"cron": "0 3 * * 1"}),
    "Model:spec.datasets[].split": (SA, MODEL, ("spec", "datasets"), [{"dataset": "support-tickets", "split": "test"}]),
    "Model:spec.datasets[].dataset": (SA, MODEL, ("spec", "datasets"), [{"dataset": "no-such-data"}]),
    "Model:spec.hyperparameters": (SA, MODEL, ("spec", "hyperparameters"), {"warmup": 10}),
    "Model:metadata.labels": (SA, MODEL, ("metadata", "labels"), {"team": "search"}),
    "Model:overrides": (SA, MODEL, ("overrides", "prod", "registry"), {"aliases": ["gold"]}),
}

# ---- Dataset (issue 15), on the churn example --------------------------------------------
CH, DS, CM = "churn", "datasets/customers.yaml", "models/churn.yaml"
_CHECK = ("spec", "checks")
_COLS = [{"name": n, "type": t} for n, t in (("customer_id", "string"), ("tenure_months", "int"),
         ("monthly_charges", "float"), ("contract", "string"), ("support_tickets", "int"), ("churned", "int"))]
MUTATIONS.update({
    "Dataset:metadata.labels": (CH, DS, ("metadata", "labels"), {"team": "growth"}),
    "Dataset:overrides": (CH, DS, ("overrides", "prod", "splits"), {"train": 0.7, "test": 0.3}),
    "Dataset:spec.source.uri": (CH, DS, ("spec", "source", "uri"), "file://data/missing.csv"),
    "Dataset:spec.source.format": (CH, DS, ("spec", "source", "format"), "parquet"),
    "Dataset:spec.source.version": (CH, DS, ("spec", "source", "version"), "2024-08-01"),
    "Dataset:spec.source.sha256": (CH, DS, ("spec", "source", "sha256"), "a" * 64),
    "Dataset:spec.source.csv.header": (CH, DS, ("spec", "source", "csv"), {"header": True}),
    "Dataset:spec.source.csv.delimiter": (CH, DS, ("spec", "source", "csv"), {"delimiter": ","}),
    "Dataset:spec.source.csv.quote": (CH, DS, ("spec", "source", "csv"), {"quote": "'"}),
    "Dataset:spec.source.csv.escape": (CH, DS, ("spec", "source", "csv"), {"escape": "\\"}),
    "Dataset:spec.source.csv.encoding": (CH, DS, ("spec", "source", "csv"), {"encoding": "latin-1"}),
    "Dataset:spec.columns[].name": (CH, DS, ("spec", "columns"), [{"name": "customer", "type": "string"}]),
    "Dataset:spec.columns[].type": (CH, DS, ("spec", "columns"), [{"name": "customer_id", "type": "int"}] + _COLS[1:]),
    "Dataset:spec.columns[].nullable": (CH, DS, ("spec", "columns"),
                                        [{"name": "customer_id", "type": "string", "nullable": True}] + _COLS[1:]),
    "Dataset:spec.splits": (CH, DS, ("spec", "splits"), {"train": 0.5, "test": 0.5}),
    "Dataset:spec.checks[].type": (CH, DS, _CHECK, [{"type": "schemaDrift"}]),
    "Dataset:spec.checks[].column": (CH, DS, _CHECK, [{"type": "unique", "column": "contract"}]),
    "Dataset:spec.checks[].columns": (CH, DS, _CHECK, [{"type": "unique", "columns": ["customer_id", "contract"]}]),
    "Dataset:spec.checks[].min": (CH, DS, _CHECK, [{"type": "rowCount", "min": 7}]),
    "Dataset:spec.checks[].max": (CH, DS, _CHECK, [{"type": "rowCount", "max": 7000}]),
    "Dataset:spec.checks[].values": (CH, DS, _CHECK, [{"type": "allowedValues", "column": "contract",
                                                       "values": ["one-year"]}]),
    "Dataset:spec.checks[].maxAgeDays": (CH, DS, _CHECK, [{"type": "freshness", "column": "contract",
                                                           "maxAgeDays": 3}]),
    "Dataset:spec.checks[].pattern": (CH, DS, _CHECK, [{"type": "regex", "column": "customer_id",
                                                        "pattern": "C[0-9]+"}]),
    "Dataset:spec.checks[].q": (CH, DS, _CHECK, [{"type": "quantile", "column": "tenure_months", "q": 0.9,
                                                  "max": 80}]),
    "Dataset:spec.checks[].dataset": (CH, DS, _CHECK, [{"type": "references", "column": "customer_id",
                                                        "dataset": "customers"}]),
    "Dataset:spec.checks[].key": (CH, DS, _CHECK, [{"type": "references", "column": "customer_id",
                                                    "dataset": "customers", "key": "contract"}]),
    "Dataset:spec.credentials.secretRef.name": (CH, DS, ("spec", "credentials"), {"secretRef": {"name": "data-reader"}}),
    "Dataset:spec.credentials.secretRef.key": (CH, DS, ("spec", "credentials"),
                                               {"secretRef": {"name": "data-reader", "key": "json"}}),
    "Dataset:spec.credentials.secretRef.provider": (CH, DS, ("spec", "credentials"),
                                                    {"secretRef": {"name": "DATA", "provider": "env"}}),
    "Dataset:spec.license": (CH, DS, ("spec", "license"), "CC-BY-4.0"),
    "Dataset:spec.pii.contains": (CH, DS, ("spec", "pii"), {"contains": True}),
    "Dataset:spec.pii.columns": (CH, DS, ("spec", "pii"), {"columns": ["customer_id"]}),
    # ---- classical Model and distributed training (issue 15) -------------------------------
    "Model:spec.classical.algorithm": (CH, CM, ("spec", "classical", "algorithm"), "xgboost"),
    "Model:spec.classical.task": (CH, CM, ("spec", "classical", "task"), "regression"),
    "Model:spec.classical.target": (CH, CM, ("spec", "classical", "target"), "support_tickets"),
    "Model:spec.classical.features": (CH, CM, ("spec", "classical", "features"), ["tenure_months"]),
    "Model:spec.resources.nodes": (SA, MODEL, ("overrides", "prod", "resources", "nodes"), 2),
    "Model:spec.resources.strategy": (SA, MODEL, ("overrides", "prod", "resources", "strategy"), "ddp"),
})

COVERED_ELSEWHERE: dict[str, str] = {
    "Dataset:environments": "tests/specs/test_field_reachability.py::test_field_reaches_an_artifact_or_a_diagnostic_at_its_line",
    "Dataset:metadata.name": "tests/specs/test_field_reachability.py::test_field_reaches_an_artifact_or_a_diagnostic_at_its_line",
    # The envelope is one model for every kind (specs.common.envelope_model): proven on a
    # ServingTarget, whose rename or removal leaves the rest of the repo valid.
    "Model:metadata.name": "tests/specs/test_field_reachability.py::test_field_reaches_an_artifact_or_a_diagnostic_at_its_line",
    "Model:environments": "tests/specs/test_field_reachability.py::test_field_reaches_an_artifact_or_a_diagnostic_at_its_line",
    "Model:spec.llm.finetune.method": "tests/compiler/ir/test_lower_llm.py::test_full_finetune_has_no_lora_params",
    "Model:spec.llm.adapter.model": "tests/backends/test_adapters.py::test_kubernetes_fetches_each_adapter_into_the_model_cache",
    "Model:spec.llm.adapter.revision": "tests/backends/test_adapters.py::test_kubernetes_fetches_each_adapter_into_the_model_cache",
    "Model:spec.llm.adapter.rank": "tests/backends/test_adapters.py::test_vllm_config_loads_every_adapter_with_the_smallest_rank_that_holds_them",
    "Model:spec.llm.base.fromModel": "tests/compiler/ir/test_lower_llm.py::test_finetune_step_carries_the_pinned_revision",
    # Rules check specs and produce no artifact: each field changes a diagnostic, proven there.
    "Rule:metadata.name": "tests/compiler/checks/test_rules.py::test_cost_rule_blocks_the_prod_plan_of_support_assistant_at_the_serving_specs_line",
    "Rule:environments": "tests/compiler/checks/test_rules.py::test_cost_rule_blocks_the_prod_plan_of_support_assistant_at_the_serving_specs_line",
    "Rule:spec.expression": "tests/compiler/checks/test_rules.py::test_cost_rule_blocks_the_prod_plan_of_support_assistant_at_the_serving_specs_line",
    "Rule:spec.message": "tests/compiler/checks/test_rules.py::test_cost_rule_blocks_the_prod_plan_of_support_assistant_at_the_serving_specs_line",
    "Rule:spec.kinds": "tests/compiler/checks/test_rules.py::test_rules_read_kinds_specs_and_labels",
    "Rule:spec.severity": "tests/compiler/checks/test_rules.py::test_a_warning_rule_reports_without_failing",
    "Rule:overrides": "tests/compiler/checks/test_rules.py::test_a_rule_is_overridden_per_environment",
    "ServingTarget:spec.probes.startup.path": "tests/backends/test_serving_shapes.py::test_kubernetes_deployment_carries_the_shape_and_validates",
    "ServingTarget:spec.probes.startup.initialDelaySeconds": "tests/backends/test_serving_shapes.py::test_kubernetes_deployment_carries_the_shape_and_validates",
    "ServingTarget:spec.probes.startup.periodSeconds": "tests/backends/test_serving_shapes.py::test_kubernetes_deployment_carries_the_shape_and_validates",
    "ServingTarget:spec.probes.startup.failureThreshold": "tests/backends/test_serving_shapes.py::test_kubernetes_deployment_carries_the_shape_and_validates",
}

# ---- EvalGate and Prompt (issue 11): a prompt gate's evaluate step carries them ----------------
G, G2, P = "gates/quality.yaml", "gates/regression.yaml", "prompts/support-reply.yaml"
_A = [{"type": "rouge-l", "value": "{{ response }}", "threshold": 0.2, "metric": "rougeL"},
      {"type": "not-icontains", "value": "refund guaranteed"}, {"type": "latency", "threshold": 1500}]
_EP = {"url": "http://support-llm:8000/v1", "model": "support-llm"}
_KEY = {"secretRef": {"provider": "env", "name": "SERVING_TOKEN"}}
_VARS = {"product": {"type": "string"}, "customer_name": {"type": "string"}, "ticket_body": {"type": "string"}}


def _with(items: list, i: int, **change: Any) -> list:
    return [dict(x, **change) if j == i else x for j, x in enumerate(items)]


MUTATIONS.update({
    "EvalGate:environments": (SA, G2, ("environments",), ["prod"]),
    "EvalGate:overrides": (SA, G, ("overrides",), {"prod": {"repeat": 3}}),
    "EvalGate:spec.alpha": (SA, G, ("spec", "alpha"), 0.01),
    "EvalGate:spec.assertions[].metric": (SA, G, ("spec", "assertions"), _with(_A, 1, metric="no_refund")),
    "EvalGate:spec.assertions[].threshold": (SA, G, ("spec", "assertions"), _with(_A, 0, threshold=0.3)),
    "EvalGate:spec.assertions[].type": (SA, G, ("spec", "assertions"), _with(_A, 1, type="not-contains")),
    "EvalGate:spec.assertions[].value": (SA, G, ("spec", "assertions"), _with(_A, 1, value="full refund")),
    "EvalGate:spec.assertions[].weight": (SA, G, ("spec", "assertions"), _with(_A, 0, weight=2.0)),
    "EvalGate:spec.dataset": (SA, G, ("spec", "dataset"), "missing-tickets"),
    "EvalGate:spec.endpoint.url": (SA, G, ("spec", "endpoint"), _EP),
    "EvalGate:spec.endpoint.model": (SA, G, ("spec", "endpoint"), dict(_EP, model="support-llm-v2")),
    "EvalGate:spec.endpoint.concurrency": (SA, G, ("spec", "endpoint"), dict(_EP, concurrency=16)),
    "EvalGate:spec.endpoint.timeoutSeconds": (SA, G, ("spec", "endpoint"), dict(_EP, timeoutSeconds=5)),
    "EvalGate:spec.endpoint.apiKey.secretRef.name": (SA, G, ("spec", "endpoint"), dict(_EP, apiKey=_KEY)),
    "EvalGate:spec.endpoint.apiKey.secretRef.provider": (
        SA, G, ("spec", "endpoint"), dict(_EP, apiKey={"secretRef": {"provider": "vault", "name": "t"}})),
    "EvalGate:spec.endpoint.apiKey.secretRef.key": (
        SA, G, ("spec", "endpoint"), dict(_EP, apiKey={"secretRef": {"provider": "env", "name": "T", "key": "k"}})),
    "EvalGate:spec.judge.endpoint.url": (SA, G, ("spec", "judge"), {"endpoint": _EP}),
    "EvalGate:spec.judge.endpoint.model": (SA, G, ("spec", "judge"), {"endpoint": dict(_EP, model="judge")}),
    "EvalGate:spec.judge.endpoint.concurrency": (SA, G, ("spec", "judge"), {"endpoint": dict(_EP, concurrency=2)}),
    "EvalGate:spec.judge.endpoint.timeoutSeconds": (SA, G, ("spec", "judge"),
                                                    {"endpoint": dict(_EP, timeoutSeconds=9)}),
    "EvalGate:spec.judge.endpoint.apiKey.secretRef.name": (SA, G, ("spec", "judge"), {"endpoint": dict(_EP, apiKey=_KEY)}),
    "EvalGate:spec.judge.endpoint.apiKey.secretRef.provider": (
        SA, G, ("spec", "judge"), {"endpoint": dict(_EP, apiKey={"secretRef": {"provider": "vault", "name": "t"}})}),
    "EvalGate:spec.judge.endpoint.apiKey.secretRef.key": (
        SA, G, ("spec", "judge"),
        {"endpoint": dict(_EP, apiKey={"secretRef": {"provider": "env", "name": "T", "key": "k"}})}),
    "EvalGate:spec.judge.model": (SA, G, ("spec", "judge"), {"model": "support-llm"}),
    "EvalGate:spec.metrics[].metric": (SA, G2, ("spec", "metrics"), [{"metric": "rouge1", "threshold": ">= 0.3"}]),
    "EvalGate:spec.metrics[].threshold": (SA, G2, ("spec", "metrics"), [{"metric": "rougeL", "threshold": ">= 0.3"}]),
    "EvalGate:spec.model": (SA, G, ("spec", "model"), "missing-model"),
    "EvalGate:spec.onMissingBaseline": (SA, G2, ("spec", "onMissingBaseline"), "fail"),
    "EvalGate:spec.prompt": (SA, G, ("spec", "prompt"), "ticket-triage"),
    "EvalGate:spec.repeat": (SA, G, ("spec", "repeat"), 3),
    "EvalGate:spec.rowPassFraction": (SA, G, ("spec", "rowPassFraction"), 1.0),
    "EvalGate:spec.split": (SA, G, ("spec", "split"), "train"),
    "Prompt:overrides": (SA, P, ("overrides",), {"prod": {"parameters": {"temperature": 0.5}}}),
    "Prompt:spec.messages[].content": (SA, P, ("spec", "messages"),
                                       [{"role": "user", "content": "{{ product }} {{ customer_name }}: {{ ticket_body }}"}]),
    "Prompt:spec.messages[].role": (SA, P, ("spec", "messages"),
                                    [{"role": "system", "content": "{{ product }} {{ customer_name }}: {{ ticket_body }}"}]),
    "Prompt:spec.model": (SA, P, ("spec", "model"), "missing-model"),
    "Prompt:spec.parameters.maxTokens": (SA, P, ("spec", "parameters"), {"maxTokens": 64}),
    "Prompt:spec.parameters.stop": (SA, P, ("spec", "parameters"), {"stop": ["\n\n"]}),
    "Prompt:spec.parameters.temperature": (SA, P, ("spec", "parameters"), {"temperature": 0.7}),
    "Prompt:spec.parameters.topP": (SA, P, ("spec", "parameters"), {"topP": 0.5}),
    "Prompt:spec.variables{}.default": (SA, P, ("spec", "variables"), dict(_VARS, product={"default": "router"})),
    "Prompt:spec.variables{}.required": (SA, P, ("spec", "variables"), dict(_VARS, product={"required": False})),
    "Prompt:spec.variables{}.type": (SA, P, ("spec", "variables"), dict(_VARS, product={"type": "int"})),
    "Prompt:spec.version": (SA, P, ("spec", "version"), 5),
})
COVERED_ELSEWHERE.update({
    # Renaming a gate or a prompt breaks the references to it (an error in the referring file).
    "EvalGate:metadata.name": "tests/compiler/ir/test_lower_prompt_gates.py::test_prompt_only_gate_over_an_endpoint",
    "Prompt:metadata.name": "tests/compiler/ops/test_plan.py::test_plan_fresh_env_creates_everything_in_dependency_order",
    # Plan and apply read these (the label move and its gates), not the compiled build.
    "EvalGate:spec.blocks": "tests/compiler/ops/test_plan.py::test_plan_shows_blocked_rollout_until_gate_passes",
    "Prompt:spec.labels": "tests/compiler/ops/test_plan.py::test_prompt_registry_edit_is_drift",
    "Prompt:environments": "tests/compiler/ops/test_plan.py::test_plan_fresh_env_creates_everything_in_dependency_order",
    # The example's gated prompt is written as messages.
    "Prompt:spec.template": "tests/compiler/ir/test_lower_prompt_gates.py::test_prompt_only_gate_over_an_endpoint",
})

# The Project's notifiers change what apply, drift and the reconcile loop send, not a compiled
# artifact (issue 14): each field is proven where it is delivered.
_NOTIFY = "Project:spec.notifications{}."
COVERED_ELSEWHERE.update({
    _NOTIFY + "environments": "tests/compiler/cli/test_notify_cmds.py::test_apply_and_drift_notify",
    _NOTIFY + "events": "tests/compiler/runtime/test_notify.py::test_events_and_environments_filter",
    _NOTIFY + "webhook.url.secretRef.provider": "tests/compiler/runtime/test_notify.py::test_secret_providers",
    _NOTIFY + "webhook.url.secretRef.name": "tests/compiler/cli/test_notify_cmds.py::test_apply_and_drift_notify",
    _NOTIFY + "webhook.url.secretRef.key": "tests/compiler/runtime/test_notify.py::test_secret_providers",
    _NOTIFY + "webhook.signingKey.secretRef.provider": "tests/compiler/runtime/test_notify.py::test_delivers_a_signed_payload",
    _NOTIFY + "webhook.signingKey.secretRef.name": "tests/compiler/runtime/test_notify.py::test_delivers_a_signed_payload",
    _NOTIFY + "webhook.signingKey.secretRef.key": "tests/compiler/runtime/test_notify.py::test_secret_providers",
})

# Probe timing fields of every probe kind reach the same emitter (k8s.probe): one mutation each.
for _kind in ("startup", "readiness", "liveness"):
    for _f, _v in (("path", "/ready"), ("initialDelaySeconds", 7), ("periodSeconds", 7), ("timeoutSeconds", 7),
                   ("failureThreshold", 7), ("successThreshold", 1)):
        COVERED_ELSEWHERE.pop(f"ServingTarget:spec.probes.{_kind}.{_f}", None)
        MUTATIONS[f"ServingTarget:spec.probes.{_kind}.{_f}"] = (SA, ST, ("spec", "probes"), {_kind: {_f: _v}})

# ---- Monitor (issue 17): every field reaches the compiled monitor.json (what `specops monitor
# run` and the scheduled job execute), or a diagnostic at its line --------------------------------
MON, SAM = "monitors/churn-drift.yaml", "monitors/support-live.yaml"
_FB = {"dataset": "customers-feedback", "labelColumn": "churned", "predictionColumn": "prediction", "scoreColumn": "score"}
_TR = {"dataset": "support-traffic", "responseColumn": "response", "sample": 0.5}
_SLO = ("spec", "checks", "slo")
_AS = ("spec", "checks", "llm", "assertions")
MUTATIONS.update({
    "Monitor:metadata.name": (CH, MON, ("metadata", "name"), "churn-drift-2"),
    "Monitor:metadata.labels": (CH, MON, ("metadata", "labels"), {"team": "growth"}),
    "Monitor:environments": (CH, MON, ("environments",), ["dev"]),
    "Monitor:overrides": (CH, MON, ("overrides", "prod", "checks"), {"drift": {"driftedShare": 0.3}}),
    "Monitor:spec.watch.model": (CH, MON, ("spec", "watch", "model"), "missing-model"),
    "Monitor:spec.watch.inputs.dataset": (CH, MON, ("spec", "watch", "inputs"), {"dataset": "customers"}),
    "Monitor:spec.watch.inputs.split": (CH, MON, ("spec", "watch", "inputs"), {"dataset": "customers-live", "split": "train"}),
    "Monitor:spec.watch.reference.dataset": (CH, MON, ("spec", "watch", "reference"), {"dataset": "customers-live"}),
    "Monitor:spec.watch.reference.split": (CH, MON, ("spec", "watch", "reference"), {"dataset": "customers", "split": "test"}),
    "Monitor:spec.watch.columns": (CH, MON, ("spec", "watch", "columns"), ["tenure_months", "monthly_charges"]),
    "Monitor:spec.watch.feedback.dataset": (CH, MON, ("spec", "watch", "feedback"), dict(_FB, dataset="customers")),
    "Monitor:spec.watch.feedback.split": (CH, MON, ("spec", "watch", "feedback"), dict(_FB, split="train")),
    "Monitor:spec.watch.feedback.labelColumn": (CH, MON, ("spec", "watch", "feedback"), dict(_FB, labelColumn="prediction")),
    "Monitor:spec.watch.feedback.predictionColumn": (CH, MON, ("spec", "watch", "feedback"), dict(_FB, predictionColumn="churned")),
    "Monitor:spec.watch.feedback.scoreColumn": (CH, MON, ("spec", "watch", "feedback"), dict(_FB, scoreColumn="prediction")),
    "Monitor:spec.watch.traffic.dataset": (SA, SAM, ("spec", "watch", "traffic"), dict(_TR, dataset="support-tickets")),
    "Monitor:spec.watch.traffic.split": (SA, SAM, ("spec", "watch", "traffic"), dict(_TR, split="train")),
    "Monitor:spec.watch.traffic.responseColumn": (SA, SAM, ("spec", "watch", "traffic"), dict(_TR, responseColumn="prompt")),
    "Monitor:spec.watch.traffic.sample": (SA, SAM, ("spec", "watch", "traffic"), dict(_TR, sample=0.25)),
    "Monitor:spec.watch.serving": (SA, SAM, ("spec", "watch", "serving"), "missing-serving"),
    "Monitor:spec.checks.drift.method": (CH, MON, ("spec", "checks", "drift", "method"), "psi"),
    "Monitor:spec.checks.drift.threshold": (CH, MON, ("spec", "checks", "drift", "threshold"), 0.2),
    "Monitor:spec.checks.drift.driftedShare": (CH, MON, ("spec", "checks", "drift", "driftedShare"), 0.3),
    "Monitor:spec.checks.drift.columns{}.method": (CH, MON, ("spec", "checks", "drift", "columns"), {"tenure_months": {"method": "psi"}}),
    "Monitor:spec.checks.drift.columns{}.threshold": (CH, MON, ("spec", "checks", "drift", "columns"), {"tenure_months": {"threshold": 0.2}}),
    "Monitor:spec.checks.quality[].metric": (CH, MON, ("spec", "checks", "quality"), [{"metric": "accuracy", "threshold": ">= 0.7"}]),
    "Monitor:spec.checks.quality[].threshold": (CH, MON, ("spec", "checks", "quality"), [{"metric": "auc", "threshold": ">= 0.6"}]),
    "Monitor:spec.checks.llm.assertions[].type": (SA, SAM, _AS, [{"type": "icontains", "value": "sorry"}]),
    "Monitor:spec.checks.llm.assertions[].value": (SA, SAM, _AS, [{"type": "not-icontains", "value": "lawsuit"}]),
    "Monitor:spec.checks.llm.assertions[].threshold": (SA, SAM, _AS, [{"type": "rouge-l", "value": "Sorry", "threshold": 0.1}]),
    "Monitor:spec.checks.llm.assertions[].weight": (SA, SAM, _AS, [{"type": "regex", "value": "x", "weight": 2.0}]),
    "Monitor:spec.checks.llm.assertions[].metric": (SA, SAM, _AS, [{"type": "regex", "value": "x", "metric": "nonempty"}]),
    "Monitor:spec.checks.llm.minPassRate": (SA, SAM, ("spec", "checks", "llm", "minPassRate"), 0.8),
    "Monitor:spec.checks.slo.ttftP95Ms": (SA, SAM, _SLO + ("ttftP95Ms",), 300),
    "Monitor:spec.checks.slo.itlP95Ms": (SA, SAM, _SLO + ("itlP95Ms",), 30),
    "Monitor:spec.checks.slo.e2eP95Ms": (SA, SAM, _SLO + ("e2eP95Ms",), 6000),
    "Monitor:spec.checks.slo.errorRate": (SA, SAM, _SLO + ("errorRate",), 0.05),
    "Monitor:spec.checks.slo.kvCacheUsage": (SA, SAM, _SLO + ("kvCacheUsage",), 0.8),
    "Monitor:spec.checks.slo.queueTimeP95Ms": (SA, SAM, _SLO + ("queueTimeP95Ms",), 100),
    "Monitor:spec.checks.slo.window": (SA, SAM, _SLO + ("window",), "10m"),
    "Monitor:spec.checks.slo.for": (SA, SAM, _SLO + ("for",), "15m"),
    "Monitor:spec.schedule.cron": (CH, MON, ("spec", "schedule", "cron"), "0 7 * * *"),
    "Monitor:spec.onBreach.notify": (CH, MON, ("spec", "onBreach", "notify"), ["on-call"]),
    "Monitor:spec.onBreach.retrain.data": (CH, MON, ("spec", "onBreach", "retrain", "data"), "pinned"),
})

# A Monitor watches the example's serving target: its rename needs the monitor renamed along.
MUTATIONS.pop("ServingTarget:metadata.name", None)
COVERED_ELSEWHERE["ServingTarget:metadata.name"] = (
    "tests/compiler/build/test_monitor_artifacts.py::test_renaming_a_watched_serving_target_moves_its_artifacts")

# ---- classical serving, custom steps, batch scoring, lineage (issue 12), on nyc-taxi -----------
NY, NM, NE, NP = "nyc-taxi", "models/nyc-taxi.yaml", "serving/endpoint.yaml", "datasets/predictions.yaml"
_STEPS = yaml.safe_load((ROOT / "examples" / NY / NM).read_text())["spec"]["steps"]
_PRED_IN = _STEPS[2]["inputs"]
_BATCH = {"name": "score-trips", "dataset": "nyc-taxi-transformed"}
_PB = {"model": "nyc-taxi-model", "step": "predict", "output": "predictions"}
_AUTH = {"mode": "token", "secretRef": {"name": "fare-api-token"}}
MUTATIONS.update({
    "Model:spec.steps[].name": (NY, NM, ("spec", "steps"), _with(_STEPS, 3, name="scoring")),
    "Model:spec.steps[].kind": (NY, NM, ("spec", "steps"), _with(_STEPS, 0, kind="featurize")),
    "Model:spec.steps[].image": (NY, NM, ("spec", "steps"), _with(_STEPS, 0, image="python:3.11-slim")),
    "Model:spec.steps[].command": (NY, NM, ("spec", "steps"), _with(_STEPS, 0, command=["python3", "steps/prep.py"])),
    "Model:spec.steps[].args": (NY, NM, ("spec", "steps"), _with(_STEPS, 1, args=["--verbose"])),
    "Model:spec.steps[].env": (NY, NM, ("spec", "steps"), _with(_STEPS, 0, env={"LOG_LEVEL": "debug"})),
    "Model:spec.steps[].inputs{}.from": (NY, NM, ("spec", "steps"),
                                         _with(_STEPS, 2, inputs={**_PRED_IN, "test_data": {"from": "nyc-taxi-green"}})),
    "Model:spec.steps[].inputs{}.type": (NY, NM, ("spec", "steps"), _with(_STEPS, 2, inputs={
        **_PRED_IN, "model_input": {"from": "train.model", "type": "table"}})),
    "Model:spec.steps[].outputs{}.type": (NY, NM, ("spec", "steps"),
                                          _with(_STEPS, 3, outputs={"score_report": {"type": "metrics"}})),
    "Model:spec.steps[].resources.cpu": (NY, NM, ("spec", "steps"), _with(_STEPS, 0, resources={"cpu": "2"})),
    "Model:spec.steps[].resources.memory": (NY, NM, ("spec", "steps"), _with(_STEPS, 0, resources={"memory": "8Gi"})),
    "Model:spec.steps[].resources.accelerator.type": (NY, NM, ("spec", "steps"),
                                                      _with(_STEPS, 0, resources={"accelerator": {"type": "L4"}})),
    "Model:spec.steps[].resources.accelerator.count": (
        NY, NM, ("spec", "steps"), _with(_STEPS, 0, resources={"accelerator": {"type": "L4", "count": 2}})),
    "Model:spec.steps[].resources.instanceType": (NY, NM, ("spec", "steps"),
                                                  _with(_STEPS, 0, resources={"instanceType": "ml.c5.xlarge"})),
    "Model:spec.batch[].name": (NY, NM, ("spec", "batch"), [_BATCH]),
    "Model:spec.batch[].dataset": (NY, NM, ("spec", "batch"), [dict(_BATCH, dataset="nyc-taxi-green")]),
    "Model:spec.batch[].split": (NY, NM, ("spec", "batch"), [dict(_BATCH, split="test")]),
    "Model:spec.batch[].format": (NY, NM, ("spec", "batch"), [dict(_BATCH, format="csv")]),
    "Model:spec.batch[].resources.cpu": (NY, NM, ("spec", "batch"), [dict(_BATCH, resources={"cpu": "2"})]),
    "Model:spec.batch[].resources.memory": (NY, NM, ("spec", "batch"), [dict(_BATCH, resources={"memory": "8Gi"})]),
    "Model:spec.batch[].resources.accelerator.type": (NY, NM, ("spec", "batch"),
                                                      [dict(_BATCH, resources={"accelerator": {"type": "L4"}})]),
    "Model:spec.batch[].resources.accelerator.count": (
        NY, NM, ("spec", "batch"), [dict(_BATCH, resources={"accelerator": {"type": "L4", "count": 2}})]),
    "Model:spec.batch[].resources.instanceType": (NY, NM, ("spec", "batch"),
                                                  [dict(_BATCH, resources={"instanceType": "ml.c5.xlarge"})]),
    "Model:spec.command.image": (CH, CM, ("spec", "command"), {"image": "python:3.11", "command": ["python", "t.py"]}),
    "Model:spec.command.command": (CH, CM, ("spec", "command"), {"image": "python:3.11", "command": ["python3"]}),
    "Model:spec.command.args": (CH, CM, ("spec", "command"),
                                {"image": "python:3.11", "command": ["python"], "args": ["t.py"]}),
    "Model:spec.command.env": (CH, CM, ("spec", "command"),
                               {"image": "python:3.11", "command": ["python"], "env": {"SEED": "1"}}),
    "Dataset:spec.producedBy.model": (NY, NP, ("spec", "producedBy"), dict(_PB, model="fare-correction")),
    "Dataset:spec.producedBy.step": (NY, NP, ("spec", "producedBy"), dict(_PB, step="score")),
    "Dataset:spec.producedBy.output": (NY, NP, ("spec", "producedBy"), dict(_PB, output="score_report")),
    "Dataset:spec.producedBy.file": (NY, NP, ("spec", "producedBy"), dict(_PB, file="predictions.csv")),
    "ServingTarget:spec.engine.name": (SA, ST, ("spec", "engine", "name"), "mlserver"),
    "ServingTarget:spec.engine.runtime": (NY, NE, ("spec", "engine"), {"runtime": "xgboost"}),
    "ServingTarget:spec.replicas.target.metric": (NY, NE, ("overrides", "staging", "replicas"),
                                                  {"min": 1, "max": 3, "target": {"metric": "rps", "value": 4}}),
    "ServingTarget:spec.replicas.target.value": (NY, NE, ("overrides", "staging", "replicas"),
                                                 {"min": 1, "max": 3, "target": {"metric": "concurrency", "value": 9}}),
    "ServingTarget:spec.requestSettings.requestTimeoutMs": (NY, NE, ("spec", "requestSettings"),
                                                            {"requestTimeoutMs": 9000}),
    "ServingTarget:spec.requestSettings.maxConcurrentRequestsPerInstance": (
        NY, NE, ("spec", "requestSettings"), {"maxConcurrentRequestsPerInstance": 7}),
    "ServingTarget:spec.auth.mode": (NY, NE, ("spec", "auth"), _AUTH),
    "ServingTarget:spec.auth.secretRef.name": (NY, NE, ("spec", "auth"), _AUTH),
    "ServingTarget:spec.auth.secretRef.key": (NY, NE, ("spec", "auth"), {**_AUTH, "secretRef": {"name": "t", "key": "k"}}),
    "ServingTarget:spec.auth.secretRef.provider": (NY, NE, ("spec", "auth"),
                                                   {**_AUTH, "secretRef": {"name": "T", "provider": "env"}}),
})

# ---- Project (issue 13/9), on support-assistant's specops.yaml -------------------------------
# Changed artifacts are not checked against their dependencies for a Project (every artifact
# reads it). gcp-staging is the KFP/KServe target, aws-prod the SageMaker one.
PJ = "specops.yaml"
_T, _E = ("spec", "targets", "gcp-staging"), ("spec", "environments", "staging")
_REG = {"provider": "mlflow", "trackingUri": "https://mlflow.acme.internal"}
MUTATIONS.update({
    "Project:spec.defaults.image": (SA, PJ, ("spec", "defaults", "image"), "ghcr.io/specops-dev/runtime:0.2.0"),
    "Project:spec.defaults.seed": (SA, PJ, ("spec", "defaults", "seed"), 11),
    # The envelope's placement fields are refused on a Project, at their line.
    "Project:environments": (SA, PJ, ("environments",), ["dev"]),
    "Project:overrides": (SA, PJ, ("overrides",), {"dev": {"defaults": {"seed": 3}}}),
    # the example's ServingTarget names no image: the default one, mutable, is refused in prod
    "Project:spec.defaults.servingImage": (SA, PJ, ("spec", "defaults", "servingImage"), "vllm/vllm-openai:latest"),
    "Project:spec.environments{}.defaults": (SA, PJ, _E + ("defaults",), {"seed": 9}),
    "Project:spec.environments{}.target": (SA, PJ, _E + ("target",), "local"),
    "Project:spec.targets{}.artifactStore": (SA, PJ, _T + ("artifactStore",), "gs://acme-other/support"),
    "Project:spec.targets{}.backend": (SA, PJ, _T + ("backend",), "zenml"),
    # a secret specops cannot read where plan/apply run is an error at its line
    "Project:spec.targets{}.credentials.secretRef.provider": (SA, PJ, _T + ("credentials", "secretRef", "provider"),
                                                              "vault"),
    # GOOGLE_CLOUD_PROJECT of every KFP step; the mirror the KFP steps pull the runtime image from
    "Project:spec.targets{}.project": (SA, PJ, _T + ("project",), "acme-ml-other"),
    "Project:spec.targets{}.imageRegistry": (SA, PJ, _T + ("imageRegistry",), "europe-docker.pkg.dev/acme-ml/mirror"),
    "Project:spec.targets{}.provider": (SA, PJ, _T + ("provider",), "onprem"),
    "Project:spec.targets{}.region": (SA, PJ, ("spec", "targets", "aws-prod", "region"), "eu-west-1"),
    "Project:spec.targets{}.roleArn": (SA, PJ, ("spec", "targets", "aws-prod", "roleArn"),
                                       "arn:aws:iam::123456789012:role/specops-other"),
    "Project:spec.targets{}.serving.namespace": (SA, PJ, _T + ("serving", "namespace"), "support-other"),
    "Project:spec.targets{}.serving.platform": (SA, PJ, _T + ("serving", "platform"), "kubernetes"),
    "Project:spec.targets{}.registry.trackingUri": (SA, PJ, _T + ("registry",), _REG),
    "Project:spec.targets{}.registry.token.secretRef.name": (SA, PJ, _T + ("registry",),
                                                             dict(_REG, token={"secretRef": {"name": "mlflow-token"}})),
    "Project:spec.targets{}.registry.token.secretRef.key": (
        SA, PJ, _T + ("registry",), dict(_REG, token={"secretRef": {"name": "mlflow-token", "key": "t"}})),
    "Project:spec.targets{}.registry.token.secretRef.provider": (
        SA, PJ, _T + ("registry",), dict(_REG, token={"secretRef": {"name": "MLFLOW_TOKEN", "provider": "env"}})),
})
# Policy, state and the rules switch change what plan, apply and the checks do, not a compiled
# artifact: each is proven where it is delivered.
_RULES, _PLAN = "tests/compiler/checks/test_rules.py::", "tests/compiler/ops/test_plan.py::"
COVERED_ELSEWHERE.update({
    "Project:metadata.name": "tests/compiler/cli/test_notify_cmds.py::test_apply_and_drift_notify",
    "Project:spec.environments{}.policy.allowPii":
        _RULES + "test_builtin_rule_keeps_pii_datasets_where_the_environment_allows_them",
    "Project:spec.environments{}.policy.production": _RULES + "test_production_is_the_environments_flag_where_written",
    "Project:spec.rules.disable": _RULES + "test_builtin_rule_stops_a_prod_serving_target_that_names_no_gates",
    "Project:spec.environments{}.policy.requireGates": _PLAN + "test_plan_shows_blocked_rollout_until_gate_passes",
    "Project:spec.environments{}.policy.prune": _PLAN + "test_removed_spec_is_deleted_with_prune_and_orphaned_without",
    "Project:spec.environments{}.policy.drift":
        "tests/compiler/ops/test_apply.py::test_drift_report_policy_refuses_until_resolved",
    "Project:spec.state.backend": "tests/compiler/state/test_state_s3.py::test_round_trip_via_open_store_and_aws_endpoint_url",
    "Project:spec.state.bucket": "tests/compiler/state/test_state_s3.py::test_round_trip_via_open_store_and_aws_endpoint_url",
    "Project:spec.state.prefix": "tests/compiler/state/test_state_s3.py::test_round_trip_via_open_store_and_aws_endpoint_url",
    "Project:spec.state.path": "tests/compiler/state/test_state.py::test_open_store_layout_and_round_trip",
    # The KFP provider talks to the target's host (a test double of the KFP API: no server runs here).
    "Project:spec.targets{}.host": "tests/backends/test_kfp_provider.py::test_create_read_noop_update_rollback_delete",
    # The KFP provider sends the target's credentials as its bearer token (the KFP API double
    # stands behind an authenticating proxy): from the spec, through `specops plan`, to the wire.
    "Project:spec.targets{}.credentials.secretRef.name":
        "tests/backends/test_kfp_provider.py::test_plan_sends_the_credentials_the_project_names",
    "Project:spec.targets{}.credentials.secretRef.key":
        "tests/backends/test_kfp_provider.py::test_plan_sends_the_credentials_the_project_names",
    # The example's ServingTarget pins engine.version; the default is proven on one that does not.
    "Project:spec.defaults.vllmVersion":
        "tests/compiler/ir/test_lower_llm.py::test_project_vllm_version_serves_a_target_that_names_none",
    "Project:spec.environments{}.policy.ignoreChanges":
        "tests/compiler/ops/test_apply.py::test_gitops_dir_and_ignore_changes_reach_apply_and_drift",
    "Project:spec.targets{}.serving.gitopsDir":
        "tests/compiler/ops/test_apply.py::test_gitops_dir_and_ignore_changes_reach_apply_and_drift",
    "Project:spec.state.region": "tests/compiler/state/test_state_s3.py::test_requests_are_signed_for_the_states_region",
    # A GPU the target does not offer is an error at the ServingTarget's accelerator line
    # (bad_inputs/serving_gpu_not_offered.yaml).
    "Project:spec.targets{}.gpus": "tests/compiler/frontend/test_bad_inputs.py::test_bad_input",
})

NOT_RUN: dict[str, str] = {
    "*:apiVersion": "the envelope's version: one value is accepted",
    "*:kind": "selects the model the document is validated against",
    "*:metadata.description": "for people reading the spec",
    "*:metadata.annotations": "for people and tools reading the spec",
    "Model:spec.steps[].outputs{}.description": "for people reading the spec",
    "Model:spec.type": "selects the classical or the LLM shape of the spec",
    "EvalGate:metadata.labels": "a gate has no object of its own to label (its steps live in the model's pipeline)",
    "Prompt:metadata.labels": "for people; the registry's labels per environment are spec.labels",
    "Rule:metadata.labels": "for people: a rule is not an object anywhere (`labels` binds the checked spec's)",
    "Prompt:spec.variables{}.description": "for people reading the prompt",
    "Dataset:spec.columns[].description": "for people reading the spec",
    "Project:metadata.labels": "for people: a Project is not an object anywhere",
    "Project:spec.targets{}.registry.provider": "one value (mlflow) is accepted; it names the registry kind",
}

# Fields not yet proven to reach anything, each with what is missing (none left for issue 13/9).
PENDING: dict[str, str] = {}
_OTHER_LANES: dict[str, str] = {}
_CLASSICAL = ()


def leaves() -> list[str]:
    out = []
    for kind, paths in all_fields().items():
        for p in paths:
            if not any(q.startswith(p + ".") or q.startswith(p + "[") or q.startswith(p + "{") for q in paths):
                out.append(f"{kind}:{p}")
    return sorted(out)


for _leaf in leaves():
    _kind = _leaf.split(":", 1)[0]
    if _leaf in COVERED_ELSEWHERE or _leaf in MUTATIONS or _leaf in NOT_RUN or f"*:{_leaf.split(':', 1)[1]}" in NOT_RUN:
        continue
    if _kind in _OTHER_LANES:
        PENDING.setdefault(_leaf, _OTHER_LANES[_kind])
    elif _leaf.startswith(_CLASSICAL):
        PENDING.setdefault(_leaf, "issue 12 (custom steps)")


def _not_run(leaf: str) -> bool:
    kind, path = leaf.split(":", 1)
    return leaf in NOT_RUN or f"*:{path}" in NOT_RUN


def test_every_field_is_in_exactly_one_table() -> None:
    missing = [f for f in leaves() if f not in MUTATIONS and f not in COVERED_ELSEWHERE and not _not_run(f)
               and f not in PENDING]
    assert missing == [], "new spec fields must join the reachability test: " + ", ".join(missing)
    assert not set(MUTATIONS) & set(PENDING) and not set(MUTATIONS) & set(COVERED_ELSEWHERE)


@pytest.mark.parametrize("leaf", sorted(COVERED_ELSEWHERE))
def test_named_proof_exists(leaf: str) -> None:
    path, name = COVERED_ELSEWHERE[leaf].split("::")
    module = importlib.import_module(path[:-3].replace("/", "."))
    assert callable(getattr(module, name, None)), COVERED_ELSEWHERE[leaf]


# ---- compiling before and after ------------------------------------------------------------


def _set(doc: dict, path: tuple, value: Any) -> None:
    cur = doc
    for k in path[:-1]:
        cur = cur.setdefault(k, {})
    cur[path[-1]] = value


@functools.cache
def _baseline(example: str, tmp: str) -> tuple[dict[str, bytes], dict[str, list[str]]]:
    return _compile(ROOT / "examples" / example, Path(tmp))


def _compile(repo: Path, cache: Path) -> tuple[dict[str, bytes], dict[str, list[str]]]:
    resolved = analyze(repo)
    if resolved.diagnostics.has_errors:
        return {}, {}
    build = compile_repo(resolved, cache_dir=cache)
    deps = {p: list(a.depends_on) for p, a in build.artifacts.items()}
    return build.files(), deps


def _diagnostics(repo: Path) -> list:
    resolved = analyze(repo)
    diags = list(resolved.diagnostics.sorted())
    if not resolved.diagnostics.has_errors:
        diags += list(compile_repo(resolved).diagnostics.sorted())
    return diags


def _block(lines: list[str], key: str) -> range:
    """Lines (1-based) of the top-level YAML block under `key` (e.g. '  env:' and its body): the
    least indented one (a `pii:` label under metadata is not the spec's `pii:` block)."""
    found = [i for i, line in enumerate(lines) if line.lstrip().startswith(f"{key}:")]
    if not found:
        return range(0)
    i = min(found, key=lambda j: len(lines[j]) - len(lines[j].lstrip()))
    indent = len(lines[i]) - len(lines[i].lstrip())
    end = i + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
                                or (len(lines[end]) - len(lines[end].lstrip()) == indent
                                    and lines[end].lstrip().startswith("- "))):
        end += 1
    return range(i + 1, end + 1)


@pytest.fixture(scope="session")
def emit_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reach-cache")


@pytest.mark.parametrize("leaf", sorted(MUTATIONS))
def test_field_reaches_an_artifact_or_a_diagnostic_at_its_line(leaf: str, tmp_path: Path, emit_cache: Path) -> None:
    example, file, path, value = MUTATIONS[leaf]
    before, before_deps = _baseline(example, str(emit_cache))
    assert before, f"example {example} does not compile"
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / example, repo, ignore=shutil.ignore_patterns("build", ".specops"))
    target = repo / file
    doc = yaml.safe_load(target.read_text(encoding="utf-8"))
    old_key = f"{doc['kind']}/{doc['metadata']['name']}"
    _set(doc, path, value)
    target.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    spec_key = f"{doc['kind']}/{doc['metadata']['name']}"

    after, deps = _compile(repo, emit_cache)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p) and p != "manifest.json")
    if after and changed:
        related = {p: set(deps.get(p, ())) | set(before_deps.get(p, ())) for p in changed}
        unrelated = [p for p in changed if related[p] and not related[p] & {spec_key, old_key}
                     and doc["kind"] != "Project"]
        assert unrelated == [], f"{leaf}: artifacts that do not depend on {spec_key} changed: {unrelated}"
        return
    lines = target.read_text(encoding="utf-8").splitlines()
    block = _block(lines, path[1] if path[0] in ("spec", "overrides") and len(path) > 1 else path[0])
    if path[0] == "overrides":
        block = _block(lines, "overrides")
    hits = [d for d in _diagnostics(repo) if d.file == file and d.pos and d.pos.line in block]
    assert hits, f"{leaf}: no artifact changed and no diagnostic points into the edited field ({path})"



def test_adapters_reach_the_sagemaker_endpoint_not_only_a_diagnostic(tmp_path: Path, emit_cache: Path) -> None:
    """`spec.adapters` on the SageMaker target (support-assistant's prod) changes the endpoint
    itself: LMI's model directory and the copy plan that stages the trained adapter (issue 10)."""
    before, _ = _baseline(SA, str(emit_cache))
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / SA, repo, ignore=shutil.ignore_patterns("build", ".specops"))
    doc = yaml.safe_load((repo / ST).read_text(encoding="utf-8"))
    _set(doc, ("spec", "adapters"), [])
    (repo / ST).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    after, _ = _compile(repo, emit_cache)
    endpoint = "prod/serving/support-llm/endpoint.json"
    assert before[endpoint] != after[endpoint] and b"ModelDataSource" not in after[endpoint]
    assert "prod/serving/support-llm/adapters.json" in before and "prod/serving/support-llm/adapters.json" not in after
