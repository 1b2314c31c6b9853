"""The model card of a registered version, in the Hugging Face format (YAML metadata + markdown),
written with `huggingface_hub.ModelCard`: intended use (the Model spec's description), lineage
(datasets with versions and digests, spec digest, commit, run), data checks, gate results and,
where the model is served, capacity. Stored with the version (an artifact of its run, and the
path in the version's `specops.model_card` tag).

Same input, same bytes: every section is sorted; no timestamps.
"""

from __future__ import annotations

from typing import Any

CARD_PATH = "model_card/README.md"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def _cell(v: Any) -> str:
    return _fmt(v).replace("|", "\\|").replace("\n", " ")


def card_text(info: dict[str, Any]) -> str:
    """The card as text. `info`: registry, version, model, env, description, digest,
    spec_digest, commit, run_id, task, library, datasets [{name, version, digest, license,
    pii, checks: [{type, passed, message}]}], gates {gate: {passed, metrics}}, metrics,
    capacity {serving target: {gpu, gpus, usd_per_hour, kv_headroom, verdict}}."""
    from huggingface_hub import ModelCard, ModelCardData

    datasets = sorted(info.get("datasets") or [], key=lambda d: str(d.get("name")))
    licenses = sorted({str(d["license"]) for d in datasets if d.get("license")})
    data = ModelCardData(
        license="other" if licenses else None,
        library_name=info.get("library") or None,
        tags=sorted({"specops", str(info.get("task") or "model")}),
        datasets=[str(d.get("name")) for d in datasets] or None,
        model_name=f"{info['registry']} v{info['version']}",
    )
    lines = [f"# {info['registry']} (version {info['version']})", ""]
    lines += ["## Intended use", "", (info.get("description") or "Not stated in the Model spec's "
                                       "`metadata.description`."), ""]
    lines += ["## Lineage", "", "| field | value |", "|---|---|"]
    for k in ("model", "env", "digest", "spec_digest", "commit", "run_id"):
        lines.append(f"| {k} | {_cell(info.get(k))} |")
    lines += ["", "### Datasets", ""]
    if datasets:
        lines += ["| dataset | version | digest | license | pii |", "|---|---|---|---|---|"]
        for d in datasets:
            pii = d.get("pii") or {}
            lines.append(f"| {_cell(d.get('name'))} | {_cell(d.get('version'))} | {_cell(d.get('digest'))} | "
                         f"{_cell(d.get('license'))} | {_cell(pii.get('contains') if isinstance(pii, dict) else pii)} |")
    else:
        lines.append("None recorded.")
    lines += ["", "## Data checks", ""]
    checks = [(d.get("name"), c) for d in datasets for c in d.get("checks") or []]
    if checks:
        lines += ["| dataset | check | passed | result |", "|---|---|---|---|"]
        for name, c in checks:
            lines.append(f"| {_cell(name)} | {_cell(c.get('type') or c.get('check'))} | {_cell(c.get('passed'))} | "
                         f"{_cell(c.get('message'))} |")
    else:
        lines.append("None recorded.")
    lines += ["", "## Evaluation and gates", ""]
    metrics = info.get("metrics") or {}
    if metrics:
        lines += ["| metric | value |", "|---|---|"] + [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(metrics.items())]
        lines.append("")
    gates = info.get("gates") or {}
    if gates:
        lines += ["| gate | passed | metrics |", "|---|---|---|"]
        for g, rec in sorted(gates.items()):
            ms = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted((rec.get("metrics") or {}).items()))
            lines.append(f"| {_cell(g)} | {_cell(rec.get('passed'))} | {_cell(ms)} |")
    else:
        lines.append("No gate evaluated this version.")
    lines += ["", "## Capacity", ""]
    capacity = info.get("capacity") or {}
    if capacity:
        lines += ["| serving target | gpu | gpus | usd per hour | kv headroom | verdict |", "|---|---|---|---|---|---|"]
        for name, c in sorted(capacity.items()):
            lines.append(f"| {_cell(name)} | {_cell(c.get('gpu'))} | {_cell(c.get('gpus'))} | "
                         f"{_cell(c.get('usd_per_hour'))} | {_cell(c.get('kv_headroom'))} | {_cell(c.get('verdict'))} |")
    else:
        lines.append("Not served by a GPU serving target in this environment.")
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")
    return str(card)
