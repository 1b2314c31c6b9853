"""tools/gen_vllm_metrics.py: metric lists from vLLM's source, never importing vLLM.

A real git repository stands in for a vLLM clone (two releases of `vllm/v1/metrics/loggers.py`
in the two declaration styles vLLM used); the script reads them with `git show` at a tag, as it
reads a release's source. The committed lists are checked for what their review found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "gen_vllm_metrics.py"
LISTS = REPO / "backends" / "vllm_metrics"
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}

OLD = '''
import prometheus_client
class PrometheusStatLogger:
    def __init__(self, labelnames):
        self.gauge_gpu_cache_usage = prometheus_client.Gauge(
            name="vllm:gpu_cache_usage_perc", documentation="GPU KV-cache usage.", labelnames=labelnames)
        self.counter_prompt_tokens = prometheus_client.Counter(
            name="vllm:prompt_tokens_total", documentation="Prefill tokens.", labelnames=labelnames)
        self.histogram_iteration_tokens = prometheus_client.Histogram(
            name="vllm:iteration_tokens_total", documentation="Tokens per step.", labelnames=labelnames)
'''
NEW = '''
import prometheus_client
class PrometheusStatLogger:
    _gauge_cls = prometheus_client.Gauge
    _counter_cls = prometheus_client.Counter
    def __init__(self, config, labelnames):
        self.show_hidden_metrics = config.show_hidden_metrics
        if self.show_hidden_metrics:
            self.gauge_gpu_cache_usage = self._gauge_cls(
                name="vllm:gpu_cache_usage_perc", documentation="DEPRECATED", labelnames=labelnames)
        self.gauge_kv_cache_usage = self._gauge_cls(
            name="vllm:kv_cache_usage_perc", documentation="KV-cache usage.", labelnames=labelnames)
        self.counter_prompt_tokens = self._counter_cls(
            name="vllm:prompt_tokens", documentation="Prefill tokens.", labelnames=labelnames)
        name = "vllm:cache_config_info"  # not a literal at the call: not listed
        self._gauge_cls(name=name, documentation="info")
'''


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=GIT_ENV).stdout


def release(repo: Path, tag: str, loggers: str, reasons: tuple[str, ...]) -> None:
    (repo / "vllm" / "v1" / "metrics" / "loggers.py").write_text(loggers)
    (repo / "vllm" / "v1" / "engine" / "__init__.py").write_text(f"FINISH_REASON_STRINGS = {reasons!r}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", tag)
    git(repo, "tag", tag)


def generate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], check=False, capture_output=True, text=True, timeout=60)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    repo = tmp_path / "vllm-clone"
    for d in ("metrics", "engine"):
        (repo / "vllm" / "v1" / d).mkdir(parents=True)
    git(repo, "init", "-q")
    release(repo, "v0.1.0", OLD, ("stop", "length", "abort"))
    release(repo, "v0.2.0", NEW, ("stop", "length", "abort", "error"))
    return repo


def test_a_release_is_listed_from_its_tag_with_the_commit_recorded(clone: Path, tmp_path: Path) -> None:
    out = tmp_path / "lists"
    out.mkdir()
    for tag in ("v0.1.0", "v0.2.0"):
        run = generate("--git", str(clone), "--rev", tag, "--out", str(out))
        assert run.returncode == 0, run.stderr
    old = json.loads((out / "0.1.0.json").read_text())
    assert old["commit"] == git(clone, "rev-parse", "v0.1.0").strip()
    assert old["origin"] == "git show v0.1.0:vllm/v1/metrics/loggers.py"
    # prometheus_client strips a counter's _total (and exposes it again); a histogram keeps it
    assert old["metrics"] == {"vllm:gpu_cache_usage_perc": "gauge", "vllm:iteration_tokens_total": "histogram",
                              "vllm:prompt_tokens": "counter"}
    assert old["finished_reasons"] == ["abort", "length", "stop"] and old["hidden"] == {}
    new = json.loads((out / "0.2.0.json").read_text())
    # the deprecated name is served only with --show-hidden-metrics-for-version: never used
    assert new["metrics"] == {"vllm:kv_cache_usage_perc": "gauge", "vllm:prompt_tokens": "counter"}
    assert new["hidden"] == {"vllm:gpu_cache_usage_perc": "gauge"}
    assert new["finished_reasons"] == ["abort", "error", "length", "stop"]
    # --check compares byte for byte
    assert generate("--git", str(clone), "--rev", "v0.2.0", "--out", str(out), "--check").returncode == 0
    (out / "0.2.0.json").write_text((out / "0.2.0.json").read_text().replace("gauge", "counter", 1))
    stale = generate("--git", str(clone), "--rev", "v0.2.0", "--out", str(out), "--check")
    assert stale.returncode == 1 and "is stale" in stale.stderr


def test_a_source_without_declarations_is_refused(clone: Path, tmp_path: Path) -> None:
    (clone / "vllm" / "v1" / "metrics" / "loggers.py").write_text("x = 1\n")
    run = generate("--source", str(clone / "vllm"), "--version", "0.3.0", "--out", str(tmp_path))
    assert run.returncode == 1 and "no metric declarations found in vllm/v1/metrics/loggers.py" in run.stderr


def test_the_committed_lists_name_their_source_and_the_renames_their_review_found() -> None:
    lists = {p.stem: json.loads(p.read_text()) for p in LISTS.glob("*.json")}
    assert set(lists) == {"0.8.5", "0.11.0", "0.32.0"}
    for version, doc in lists.items():
        assert doc["version"] == version and doc["source"] == "vllm/v1/metrics/loggers.py" and doc["origin"]
    assert lists["0.8.5"]["commit"] == "ba41cc90e8ef7f236347b2f1599eec2cbb9e1f0d"  # tag v0.8.5
    assert lists["0.11.0"]["commit"] == "f71952c1c"  # as the 0.11.0 wheel records it
    m085, m011, m032 = (lists[v]["metrics"] for v in ("0.8.5", "0.11.0", "0.32.0"))
    # KV-cache usage: gpu_ in 0.8.5, renamed in 0.9.2 (the old name hidden in 0.11, gone by 0.32)
    assert "vllm:gpu_cache_usage_perc" in m085 and "vllm:kv_cache_usage_perc" not in m085
    assert "vllm:kv_cache_usage_perc" in m011 and lists["0.11.0"]["hidden"]["vllm:gpu_cache_usage_perc"] == "gauge"
    assert "vllm:kv_cache_usage_perc" in m032 and "vllm:gpu_cache_usage_perc" not in m032
    # inter-token latency: time_per_output_token until 0.11, which has both names
    assert "vllm:time_per_output_token_seconds" in m085 and "vllm:inter_token_latency_seconds" not in m085
    assert {"vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds"} <= set(m011)
    assert "vllm:time_per_output_token_seconds" not in m032
    # request errors are counted from 0.32 on only
    assert [("error" in lists[v]["finished_reasons"]) for v in ("0.8.5", "0.11.0", "0.32.0")] == [False, False, True]


def test_the_installed_release_list_is_current() -> None:
    python = REPO / ".venv-vllm" / "bin" / "python"
    if not python.is_file():
        pytest.skip("no .venv-vllm: run tools/setup_vllm_venv.sh (.ci/run does)")
    run = subprocess.run([str(python), str(SCRIPT), "--check"], check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
