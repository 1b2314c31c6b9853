"""Scale `examples/support-assistant` to N specs, and make dbt-core's equivalent (issue 18).

    python benchmarks/scale_repo.py OUT_DIR --specs 1000 [--dbt DBT_DIR]

The specops repo: the example's Project once, then copies of its seven specs (a dataset, a
LoRA model, two prompts, two eval gates, a vLLM serving target) with every name suffixed by
the copy number, spread over `team<k>/copy<i>/` folders. The copies share the example's data
file and base-model folder (as a real repo's specs share data), so they carry the same
prompts, gates, overrides and serving targets as the example, and validate reads the same
local files. Deterministic: the same N gives the same bytes.

The dbt project (`--dbt`): per spec one model (`models/g<k>/m_<i>.sql`) and one `schema.yml`
entry with a description, a column and a test; model i selects from `ref()` of model i-1
except every 10th, so refs chain in runs of ten. dbt-duckdb profile in the project folder.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "support-assistant"
# Every name the example defines (metadata.name and the references to it).
NAMES = ("support-tickets", "support-llm", "support-reply", "ticket-triage", "support-quality",
         "support-no-regression")
_NAME_RX = re.compile(r"(?<![-\w])(" + "|".join(map(re.escape, NAMES)) + r")(?![-\w])")
SPEC_DIRS = ("datasets", "models", "prompts", "gates", "serving")
# The example's monitor (monitors/) and the traffic it reads are left out: the copies keep the
# seven specs the figures were first measured on.
SKIP = ("datasets/traffic.yaml",)


def _spec_files() -> list[tuple[str, str]]:
    out = []
    for d in SPEC_DIRS:
        for p in sorted((EXAMPLE / d).glob("*.yaml")):
            if f"{d}/{p.name}" not in SKIP:
                out.append((f"{d}/{p.name}", p.read_text()))
    return out


def specs_per_copy() -> int:
    return sum(t.count("\nkind: ") + t.startswith("kind: ") for _, t in _spec_files())


def generate(out: Path, n: int = 1000) -> Path:
    """A repo of about `n` specs (the Project plus whole copies of the example's specs)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(EXAMPLE / "specops.yaml", out / "specops.yaml")
    shutil.copytree(EXAMPLE / "data", out / "data")
    shutil.copytree(EXAMPLE / "models" / "llama-3.1-8b", out / "models" / "llama-3.1-8b")
    files = _spec_files()
    copies = max(1, round((n - 1) / specs_per_copy()))
    for i in range(copies):
        base = out / f"team{i % 10}" / f"copy{i}"
        for rel, text in files:
            p = base / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(_NAME_RX.sub(lambda m: f"{m.group(1)}-{i}", text))
    return out


DBT_PROJECT = """name: bench
version: "1.0.0"
config-version: 2
profile: bench
model-paths: ["models"]
models:
  bench:
    +materialized: view
"""
DBT_PROFILE = """bench:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: bench.duckdb
      threads: 1
"""


def generate_dbt(out: Path, n: int = 1000) -> Path:
    """dbt-core's equivalent of an n-spec repo (see the module docstring)."""
    if out.exists():
        shutil.rmtree(out)
    (out / "models").mkdir(parents=True)
    (out / "dbt_project.yml").write_text(DBT_PROJECT)
    (out / "profiles.yml").write_text(DBT_PROFILE)
    groups: dict[int, list[str]] = {}
    for i in range(n):
        g = i // 100
        d = out / "models" / f"g{g}"
        d.mkdir(exist_ok=True)
        src = "select 1 as id, 'x' as label" if i % 10 == 0 else f"select id + 1 as id, label from {{{{ ref('m_{i - 1}') }}}}"
        (d / f"m_{i}.sql").write_text(src + "\n")
        groups.setdefault(g, []).append(
            f"  - name: m_{i}\n    description: \"Model {i} of the benchmark chain.\"\n"
            f"    columns:\n      - name: id\n        description: \"Row id.\"\n"
            f"        data_tests: [not_null]\n")
    for g, entries in groups.items():
        (out / "models" / f"g{g}" / "schema.yml").write_text("version: 2\nmodels:\n" + "".join(entries))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--specs", type=int, default=1000)
    ap.add_argument("--dbt", type=Path, help="also write dbt-core's equivalent project here")
    a = ap.parse_args()
    generate(a.out, a.specs)
    print(f"wrote a {a.specs}-spec repo under {a.out}")
    if a.dbt:
        generate_dbt(a.dbt, a.specs)
        print(f"wrote a {a.specs}-model dbt project under {a.dbt}")
