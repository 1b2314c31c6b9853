"""Rendering of a `specops diff` document (diff.py, DIFF_SCHEMA_VERSION 1).

- text: for terminals; coloured with click.style, and click.echo drops the colour codes
  when the output is not a TTY, so logs and pipes get plain text.
- markdown: a pull-request comment (GitHub-flavoured): a summary table per environment and
  backend, collapsible details per resource, capacity before/after, and a ```mermaid block
  per environment with the affected lineage nodes highlighted.
- json: the document itself plus the Mermaid text, sorted keys.
"""

from __future__ import annotations

import json
from typing import Any

import click

MAX_SHOWN = 60  # field changes shown per artifact in text/markdown (json keeps MAX_CHANGES)
VALUE_WIDTH = 100

_CAP_FIELDS = [("verdict", "verdict"), ("gpu", "GPU"), ("gpuCount", "GPUs"), ("tensorParallelSize", "TP"),
               ("maxModelLen", "max len"), ("weightsGiB", "weights GiB"), ("kvCacheGiB", "KV GiB"),
               ("maxSequences", "max seqs"), ("maxConcurrentSequences", "concurrency"), ("usdPerHour", "$/h")]


def value(v: Any, width: int = VALUE_WIDTH) -> str:
    s = json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return s if len(s) <= width else s[: width - 1] + "…"


def cause_text(c: dict) -> str:
    if c.get("spec") is None:
        return c.get("note", "no spec change")
    return f"{c['spec']} ({c['file']})" + ("" if c["status"] == "changed" else f" {c['status']}")


def _change_lines(a: dict) -> list[tuple[str, str]]:
    """(kind, line) pairs for one artifact; kind picks the colour."""
    out: list[tuple[str, str]] = []
    for ch in a.get("changes", [])[:MAX_SHOWN]:
        if ch["op"] == "added":
            out.append(("add", f"+ {ch['path']}: {value(ch['new'])}"))
        elif ch["op"] == "removed":
            out.append(("del", f"- {ch['path']}: {value(ch['old'])}"))
        elif "text" in ch:
            out.append(("chg", f"~ {ch['path']}:"))
            out.extend(("text", "    " + t) for t in ch["text"][2:])
        else:
            old, new = ch["old"], ch["new"]
            if isinstance(old, str) and isinstance(new, str):
                # Long strings that differ late (hashed S3 keys): show where they differ.
                n = next((i for i, (x, y) in enumerate(zip(old, new)) if x != y), min(len(old), len(new)))
                if n > 40 and max(len(old), len(new)) > VALUE_WIDTH // 2:
                    old, new = "…" + old[n - 24:], "…" + new[n - 24:]
            out.append(("chg", f"~ {ch['path']}: {value(old)} -> {value(new)}"))
    more = len(a.get("changes", [])) - MAX_SHOWN + a.get("more", 0)
    if more > 0:
        out.append(("note", f"… {more} more changes (see --format json)"))
    for t in a.get("text", [])[2:]:
        out.append(("text", t))
    return out


_STYLE = {"added": "green", "removed": "red", "changed": "yellow", "add": "green", "del": "red", "chg": "yellow"}


def _status_word(s: str) -> str:
    return click.style(f"{s:<8}", fg=_STYLE.get(s), bold=True)


def render_text(doc: dict) -> str:
    if not doc["changed"]:
        return "no changes\n"
    lines = [click.style(f"specops diff: {doc['base']['ref']} ({doc['base']['commit'][:12]}) -> working tree",
                         bold=True), _summary_line(doc), ""]
    for env in doc["environments"]:
        specs = doc["specs"].get(env, [])
        res = [r for r in doc["resources"] if r["env"] == env]
        caps = [c for c in doc["capacity"] if c["env"] == env]
        if not (specs or res or caps):
            continue
        lines.append(click.style(f"environment {env}", bold=True, underline=True))
        for c in specs:
            quiet = not any(x["spec"] == c["spec"] for r in res for x in r["causes"])
            lines.append(f"  spec {_status_word(c['status'])} {c['spec']} ({c['file']})"
                         + (click.style("  — no compiled artifact consumes it", dim=True) if quiet else ""))
            for kind, line in _change_lines(c):
                lines.append("          " + click.style(line, fg=_STYLE.get(kind)))
        for g in doc.get("gates", {}).get(env, []):
            lines.append(f"  gate     {g['gate']} re-runs: caused by {', '.join(g['causes'])}")
        for r in res:
            lines.append(f"  {_status_word(r['status'])} {r['backend']} {r['resource']}")
            lines.append("      caused by " + "; ".join(cause_text(c) for c in r["causes"]))
            for a in r["artifacts"]:
                lines.append(f"      {click.style(a['status'][0].upper(), fg=_STYLE[a['status']])} {a['path']}")
                for kind, line in _change_lines(a):
                    if kind == "text":
                        fg = "green" if line.startswith("+") else "red" if line.startswith("-") else None
                        lines.append("          " + click.style(line, fg=fg))
                    else:
                        lines.append("          " + click.style(line, fg=_STYLE.get(kind)))
        for c in caps:
            lines.append(f"  capacity {c['serving']}:")
            for key, label in _CAP_FIELDS:
                b = (c["before"] or {}).get(key)
                a = (c["after"] or {}).get(key)
                if b != a:
                    lines.append(f"      {label}: {_cap(b)} -> {_cap(a)}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _cap(v: Any) -> str:
    return "—" if v is None else str(v)


def _summary_line(doc: dict) -> str:
    s = doc["summary"]
    return (f"{s['changed']} changed, {s['added']} added, {s['removed']} removed resource(s) "
            f"({s['artifacts']} artifact(s)); {s['specs']} spec(s) edited; "
            f"{len(doc['capacity'])} capacity change(s)")


# ---- markdown ---------------------------------------------------------------------------------


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _md_code(s: str) -> str:
    s = s.replace("`", "'")
    return f"`{_md_escape(s)}`"


def render_markdown(doc: dict, mermaid: dict[str, str]) -> str:
    base = doc["base"]
    out = [f"### specops diff: `{base['ref']}` ({base['commit'][:12]}) → working tree", ""]
    if base["path"] != ".":
        out[0] += f" — `{base['path']}`"
    if not doc["changed"]:
        return "\n".join(out + ["**no changes**", ""])
    out += [_summary_line(doc), ""]
    out += ["| environment | backend | resource | change | artifacts | caused by |",
            "|---|---|---|---|---|---|"]
    for r in doc["resources"]:
        out.append(f"| {r['env']} | {r['backend']} | {_md_code(r['resource'])} | {r['status']} | "
                   f"{len(r['artifacts'])} | {_md_escape('; '.join(cause_text(c) for c in r['causes']))} |")
    for env, specs in doc["specs"].items():
        for c in specs:
            if not any(r["env"] == env and c["spec"] == x["spec"] for r in doc["resources"] for x in r["causes"]):
                out.append(f"| {env} | (spec) | {_md_code(c['spec'])} | {c['status']} | 0 | "
                           f"{_md_escape(c['file'])} (no compiled artifact consumes it) |")
    out.append("")
    if doc.get("gates"):
        out += ["#### Gates that re-run", "", "| environment | gate | caused by |", "|---|---|---|"]
        for env, gates in doc["gates"].items():
            out += [f"| {env} | {_md_code(g['gate'])} | {_md_escape(', '.join(g['causes']))} |" for g in gates]
        out.append("")
    if doc["capacity"]:
        out += ["#### GPU capacity", "",
                "| environment | serving | " + " | ".join(label for _, label in _CAP_FIELDS) + " |",
                "|---|---|" + "---|" * len(_CAP_FIELDS)]
        for c in doc["capacity"]:
            cells = []
            for key, _ in _CAP_FIELDS:
                b, a = (c["before"] or {}).get(key), (c["after"] or {}).get(key)
                cells.append(_md_escape(_cap(a)) if b == a else f"{_md_escape(_cap(b))} → **{_md_escape(_cap(a))}**")
            out.append(f"| {c['env']} | {c['serving']} | " + " | ".join(cells) + " |")
        out.append("")
    seen: set[tuple] = set()
    for env, specs in doc["specs"].items():
        for c in specs:
            body = [line for _, line in _change_lines(c)]
            sig = (c["spec"], tuple(body))
            if sig in seen or not body:
                continue
            seen.add(sig)
            envs = [e for e, cs in doc["specs"].items() if any(x["spec"] == c["spec"] and
                                                               [ln for _, ln in _change_lines(x)] == body for x in cs)]
            out += ["<details>", f"<summary>spec {_md_escape(c['spec'])} ({_md_escape(c['file'])}) — "
                    f"{c['status']} in {', '.join(envs)}</summary>", "", "```diff",
                    *[b.replace("```", "'''") for b in body], "```", "", "</details>", ""]
    for r in doc["resources"]:
        out += ["<details>",
                f"<summary>{r['env']} / {r['backend']} / {_md_escape(r['resource'])} — {r['status']}</summary>", ""]
        for a in r["artifacts"]:
            out.append(f"**{_md_escape(a['path'])}** ({a['status']})")
            body = [line for _, line in _change_lines(a)]
            if body:
                out += ["", "```diff", *[b.replace("```", "'''") for b in body], "```"]
            out.append("")
        out += ["</details>", ""]
    if mermaid:
        out += ["#### Lineage (changed specs and affected resources highlighted)", ""]
        for env, text in sorted(mermaid.items()):
            out += [f"**{env}**", "", "```mermaid", text.rstrip("\n"), "```", ""]
    return "\n".join(out)


def render_json(doc: dict, mermaid: dict[str, str]) -> str:
    return json.dumps({**doc, "mermaid": mermaid}, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
