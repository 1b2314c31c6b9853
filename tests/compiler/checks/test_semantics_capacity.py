"""GPU capacity is checked at validate time, at the spec's line, with the numbers."""

from __future__ import annotations

import shutil
from pathlib import Path

from specops.checks import analyze

ROOT = Path(__file__).resolve().parents[3]


def repo_with(tmp_path: Path, config: str | None, gpu: str = "L4", count: int = 1) -> Path:
    repo = tmp_path / "support"
    shutil.copytree(ROOT / "examples" / "support-assistant", repo, ignore=shutil.ignore_patterns("build", ".specops"))
    if config:
        shutil.copyfile(ROOT / "tests" / "fixtures" / "model_configs" / config / "config.json",
                        repo / "models" / "llama-3.1-8b" / "config.json")
    st = repo / "serving" / "support-llm.yaml"
    st.write_text(st.read_text().replace("accelerator: {type: L4, count: 1}", f"accelerator: {{type: {gpu}, count: {count}}}"))
    return repo


def test_70b_on_one_l4_is_an_error_with_the_numbers(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, "llama-3-70b")
    diags = analyze(repo).diagnostics.sorted()
    cap = [d for d in diags if d.code == "capacity"]
    assert cap, [d.headline() for d in diags]
    d = cap[0]
    assert d.severity == "error" and d.file == "serving/support-llm.yaml"
    assert (d.pos.line, d.pos.col) == (21, 23)  # the `L4` of `accelerator: {type: L4, count: 1}`
    assert "weights need 131.42 GiB per GPU (70.55 B params" in d.message and "L4" in d.message
    assert "KV cache needs" in d.message


def test_the_example_fits(tmp_path: Path) -> None:
    diags = analyze(repo_with(tmp_path, None)).diagnostics.sorted()
    assert not [d for d in diags if d.code.startswith("capacity")], [d.headline() for d in diags]


def test_context_longer_than_the_model_supports_is_an_error_at_the_override(tmp_path: Path) -> None:
    # Llama 3 (not 3.1) has 8,192 positions; prod's override asks for 32,768.
    diags = analyze(repo_with(tmp_path, "llama-3-8b")).diagnostics.sorted()
    cap = [d for d in diags if d.code == "capacity"]
    assert [(d.pos.line, "max_model_len 32768 exceeds" in d.message) for d in cap] == [(29, True)]
