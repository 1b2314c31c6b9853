"""What issue 13's limits and checks cost `validate` at 1,000 specs (figures, not assertions).

    python benchmarks/validate_limits.py OLD_CHECKOUT [--repeat 40]

Runs validate (load + resolve + checks, in-process) on a generated 1,000-spec repo, alternating
between this checkout and the same code with issue 13's parts swapped back for what they
replaced: the YAML reader of OLD_CHECKOUT (a checkout of the commit before issue 13, e.g.
0568b54; no limits, no event scan), plain `read_bytes` instead of the bounded regular-file
read, the old value-only secret scan, and no secretRef / registry-name checks. The grammar
validators inside the spec models cannot be swapped out; their share is measured by
profiling (see the issue notes). Prints best and median of each, and the difference.
"""
import gc, importlib.util, sys, time, json
from pathlib import Path
from specops.checks import analyze
import specops.frontend.loader as loader
import specops.checks.semantics as sem
import specops.checks.secrets as secrets

def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec)
    sys.modules[name] = m; spec.loader.exec_module(m); return m

import argparse
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("old_checkout", type=Path)
ap.add_argument("--repeat", type=int, default=40)
args = ap.parse_args()
old_yaml = load(str(args.old_checkout / "compiler" / "frontend" / "yamlio.py"), "old_yamlio")
# the old secrets check, verbatim (it walked values only, six patterns)
import re
from specops.checks.common import strings
from specops.diagnostics import Diagnostic
_P = [re.compile(r"\bAKIA[0-9A-Z]{16}\b"), re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"),
      re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b")]
def old_secrets(resolved, out):
    for s in resolved.repo.specs:
        for path, text in strings(s.doc.data):
            for rx in _P:
                if rx.search(text):
                    out.add(Diagnostic("error", "plaintext-secret", "x", s.file, s.doc.pos_of(path))); break

new = (loader.parse, loader.read_regular, sem.check_plaintext_secrets, sem.check_secret_refs, sem.check_registry_name)
def swap(old: bool):
    if old:
        loader.parse = old_yaml.parse
        loader.read_regular = lambda p, limit: Path(p).read_bytes()
        sem.check_plaintext_secrets = old_secrets
        sem.check_secret_refs = lambda *a: None
        sem.check_registry_name = lambda *a: None
    else:
        (loader.parse, loader.read_regular, sem.check_plaintext_secrets, sem.check_secret_refs, sem.check_registry_name) = new

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_repo import generate  # noqa: E402

repo = generate(Path(tempfile.mkdtemp()) / "repo", 1000)
for v in (True, False):
    swap(v); r = analyze(repo); assert not r.diagnostics.has_errors
res = {"without": [], "with": []}
for _ in range(args.repeat):
    for v, k in ((True, "without"), (False, "with")):
        # A collection first, so a cycle-GC pass left over from the previous run does not land
        # in this one's time (without it, the best-of spread alone was +-8 %).
        swap(v); gc.collect(); t = time.perf_counter(); analyze(repo); res[k].append(time.perf_counter() - t)
out = {k: {"best": round(min(v), 4), "median": round(sorted(v)[len(v)//2], 4)} for k, v in res.items()}
out["added_best_pct"] = round(100 * (out["with"]["best"] / out["without"]["best"] - 1), 1)
out["added_median_pct"] = round(100 * (out["with"]["median"] / out["without"]["median"] - 1), 1)
print(json.dumps(out))
