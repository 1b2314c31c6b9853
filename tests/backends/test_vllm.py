"""specops.backends.vllm: exact serve-flag checks and `vllm serve --config` emission.

The static checks run against the pinned flag lists. Tests marked by `_vllm_python()` run
vLLM's own parser in the vLLM venv (tools/setup_vllm_venv.sh; CI creates it) and skip with a
reason when that venv is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from specops.backends import vllm

V = "0.32.0"
REPO = Path(__file__).resolve().parents[2]


def _vllm_python() -> Path:
    env = os.environ.get("SPECOPS_VLLM_PYTHON")
    exe = Path(env) if env else REPO / ".venv-vllm" / "bin" / "python"
    if not exe.is_file():
        pytest.skip(f"vLLM interpreter {exe} not found: run tools/setup_vllm_venv.sh "
                    "or set SPECOPS_VLLM_PYTHON")
    return exe


def _only(problems: list[vllm.ArgProblem]) -> vllm.ArgProblem:
    assert len(problems) == 1, problems
    return problems[0]


# ---- flag tables ------------------------------------------------------------------------


def test_known_versions_sorted_numerically_and_include_generated_lists():
    versions = vllm.known_versions()
    assert versions == ["0.8.5", "0.11.0", "0.32.0"]
    for v in versions:
        table = vllm.flags_for(v)
        assert table.version == v and table.generated
        assert "make_arg_parser" in table.source


def test_flag_table_records_types_bools_and_aliases():
    t = vllm.flags_for(V)
    tp = t.get("tensor-parallel-size")
    assert tp is not None and tp.type == "int" and tp.aliases == ("tp",) and not tp.bool
    eager = t.get("enforce-eager")
    assert eager is not None and eager.bool and eager.negation == "no-enforce-eager"
    assert t.get("speculative-config").json and t.get("compilation-config").json
    assert t.get("dtype").choices == ("auto", "bfloat16", "float", "float16", "float32", "half")
    assert t.get("served-model-name").nargs == "+"
    # Parser internals that are not serve settings are not listed.
    assert "help" not in t and "config" not in t and "model-tag" not in t


def test_unknown_version_raises_and_is_reported_with_known_versions():
    with pytest.raises(vllm.UnknownVersion):
        vllm.flags_for("0.99.0")
    p = _only(vllm.check_args({"port": 8000}, "0.33.0"))
    assert p.key is None and p.code == "value"
    assert "0.32.0" in p.message and "0.8.5" in p.message


# ---- check_args ---------------------------------------------------------------------------


def test_valid_args_have_no_problems():
    args = {"tensor-parallel-size": 2, "max-model-len": 8192, "enforce-eager": False,
            "gpu-memory-utilization": 0.9, "dtype": "bfloat16", "served-model-name": ["a", "b"],
            "speculative-config": {"method": "ngram", "num_speculative_tokens": 3},
            "hf-overrides": {"rope_theta": 1000000}, "max-num-batched-tokens": "8k",
            "runner": "generate"}
    assert vllm.check_args(args, V) == []


def test_misspelled_flag_suggests_the_real_one():
    p = _only(vllm.check_args({"tensor-paralel-size": 2}, V))
    assert (p.key, p.code, p.suggestion) == ("tensor-paralel-size", "vllm-flag", "tensor-parallel-size")
    assert "did you mean 'tensor-parallel-size'" in p.message


def test_abbreviation_that_argparse_would_accept_is_rejected():
    p = _only(vllm.check_args({"max-model": 4096}, V))
    assert (p.code, p.suggestion) == ("vllm-flag", "max-model-len")
    assert "abbreviation" in p.message


def test_ambiguous_prefix_is_rejected_too():
    p = _only(vllm.check_args({"max-num": 8}, V))
    assert p.code == "vllm-flag" and p.suggestion is not None and p.suggestion.startswith("max-num")


def test_short_alias_and_negated_form_name_the_canonical_flag():
    p = _only(vllm.check_args({"tp": 2}, V))
    assert (p.code, p.suggestion) == ("vllm-flag", "tensor-parallel-size")
    p = _only(vllm.check_args({"no-enforce-eager": True}, V))
    assert (p.code, p.suggestion) == ("vllm-flag", "enforce-eager")
    assert "enforce-eager: false" in p.message


def test_underscores_pass_with_a_warning_naming_the_kebab_form():
    p = _only(vllm.check_args({"max_model_len": 4096}, V))
    assert (p.severity, p.code, p.suggestion) == ("warning", "vllm-flag", "max-model-len")


def test_same_flag_twice_in_two_spellings_is_rejected():
    problems = vllm.check_args({"max-model-len": 4096, "max_model_len": 2048}, V)
    assert [(p.key, p.severity) for p in problems] == [("max_model_len", "error")]


def test_leading_dashes_and_dotted_keys_are_rejected():
    p = _only(vllm.check_args({"--port": 8000}, V))
    assert p.suggestion == "port"
    p = _only(vllm.check_args({"compilation-config.mode": 3}, V))
    assert p.suggestion == "compilation-config"


def test_reserved_model_key_is_rejected():
    p = _only(vllm.check_args({"model": "x"}, V))
    assert p.code == "vllm-flag" and "ServingTarget" in p.message


@pytest.mark.parametrize(("flag", "replacement", "last_seen"), [
    ("task", "runner", "0.11.0"),                       # derived: in 0.11.0's list, not 0.32.0's
    ("rope-theta", "hf-overrides", "0.11.0"),
    ("guided-decoding-backend", "structured-outputs-config", "0.11.0"),
    ("num-scheduler-steps", None, "0.8.5"),             # gone between 0.8.5 and 0.11.0
    ("speculative-model", "speculative-config", None),  # curated: gone before 0.8.5
    ("num-speculative-tokens", "speculative-config", None),
])
def test_removed_flag_names_its_replacement(flag: str, replacement: str | None, last_seen: str | None):
    p = _only(vllm.check_args({flag: "x"}, V))
    assert (p.code, p.suggestion) == ("vllm-removed-flag", replacement)
    if replacement:
        assert replacement in p.message
    assert vllm.removed_flags(V)[flag].last_seen == last_seen


def test_removed_flags_depend_on_the_chosen_version():
    assert "task" not in vllm.removed_flags("0.11.0")
    # 0.11.0 still had --task, marked deprecated by its parser: a warning, not an error.
    p = _only(vllm.check_args({"task": "generate"}, "0.11.0"))
    assert (p.severity, p.code) == ("warning", "vllm-flag") and "deprecated" in p.message
    assert "num-scheduler-steps" in vllm.removed_flags("0.11.0")
    # A flag only newer releases have is reported as such, not as removed.
    p = _only(vllm.check_args({"runner": "pooling"}, "0.8.5"))
    assert p.code == "vllm-flag" and "0.11.0" in p.message


def test_curated_removals_are_consistent_with_generated_lists():
    curated = json.loads((vllm.FLAGS_DIR / "removed.json").read_text())
    assert curated["generated"] is False
    newest = vllm.flags_for(vllm.known_versions()[-1])
    for name, entry in curated["flags"].items():
        assert name not in newest, name
        if entry["replacement"] is not None:
            assert entry["replacement"] in newest, (name, entry["replacement"])
        in_lists = any(name in vllm.flags_for(v) for v in vllm.known_versions())
        # Each entry is either seen in a generated list or carries its curated `gone_by`.
        assert in_lists or "gone_by" in entry, name


@pytest.mark.parametrize(("args", "needle"), [
    ({"enforce-eager": "yes"}, "true or false"),
    ({"enable-prefix-caching": 1}, "true or false"),
    ({"dtype": "float64"}, "one of"),
    ({"kv-cache-dtype": "fp7"}, "one of"),
    ({"tensor-parallel-size": "2"}, "integer"),
    ({"tensor-parallel-size": 2.5}, "integer"),
    ({"tensor-parallel-size": True}, "boolean"),
    ({"gpu-memory-utilization": "high"}, "number"),
    ({"max-model-len": "lots"}, "size like"),
    ({"port": [8000, 8001]}, "one value"),
    ({"speculative-config": "not json"}, "JSON"),
    ({"speculative-config": 3}, "mapping"),
    ({"served-model-name": []}, "at least one"),
    ({"max-num-seqs": None}, "null"),
])
def test_bad_values_are_reported(args: dict[str, Any], needle: str):
    p = _only(vllm.check_args(args, V))
    assert p.code == "value" and p.key == next(iter(args))
    assert needle in p.message


def test_choice_error_suggests_the_closest_choice():
    p = _only(vllm.check_args({"dtype": "bfloat61"}, V))
    assert p.suggestion == "bfloat16"


# ---- serve_config ------------------------------------------------------------------------


ARGS = {
    "tensor-parallel-size": 1, "max-model-len": 4096, "enforce-eager": True,
    "enable-prefix-caching": False, "dtype": "bfloat16", "served-model-name": ["chat"],
    "speculative-config": {"num_speculative_tokens": 3, "method": "ngram", "prompt_lookup_max": 4},
    "allowed-origins": ["https://a.example", "https://b.example"], "gpu_memory_utilization": 0.85,
}


def test_serve_config_is_flat_sorted_kebab_yaml_with_model():
    text = vllm.serve_config(ARGS, model="meta-llama/Llama-3.1-8B-Instruct", version=V)
    doc = yaml.safe_load(text)
    assert list(doc) == sorted(doc)
    assert doc["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert doc["gpu-memory-utilization"] == 0.85 and "gpu_memory_utilization" not in doc
    assert doc["enforce-eager"] is True and doc["enable-prefix-caching"] is False
    assert doc["speculative-config"] == ARGS["speculative-config"]
    assert doc["served-model-name"] == ["chat"]
    # A JSON flag given a list is passed as one JSON word, not spread over argv.
    assert json.loads(doc["allowed-origins"]) == ARGS["allowed-origins"]
    assert b"enforce-eager: true\n" in text and b"enable-prefix-caching: false\n" in text


def test_serve_config_is_byte_identical_for_identical_input():
    a = vllm.serve_config(ARGS, model="m", version=V)
    b = vllm.serve_config(dict(reversed(list(ARGS.items()))), model="m", version=V)
    assert a == b
    assert a == vllm.serve_config(json.loads(json.dumps(ARGS)), model="m", version=V)


def test_multiline_and_special_strings_round_trip():
    template = "{% for m in messages %}\n{{ m.content }}\n{% endfor %}\n"
    args = {"chat-template": template, "revision": "0123", "api-key": ["yes", "null"]}
    doc = yaml.safe_load(vllm.serve_config(args, model="m", version=V))
    assert doc["chat-template"] == template and doc["revision"] == "0123"
    assert doc["api-key"] == ["yes", "null"]


def test_an_emitted_config_is_read_back_without_parsing_as_parsing_would():
    from specops.backends.kubernetes import load_serve_config

    text = vllm.serve_config(ARGS, model="m", version=V)
    first = vllm.loaded_serve_config(text)
    assert first == yaml.safe_load(text) and list(first) == list(yaml.safe_load(text))
    first["dtype"] = "changed"  # each caller gets its own copy
    assert vllm.loaded_serve_config(text) == load_serve_config(text) == yaml.safe_load(text)
    assert vllm.loaded_serve_config(text + b"x: 1\n") is None  # bytes it did not emit: parsed


def test_what_is_taken_as_loaded_equals_loading_the_yaml():
    """vllm._as_loaded claims what yaml.safe_load(yaml_emit.dump(data)) returns; where it
    cannot be sure (line breaks libyaml normalises, non-finite floats) it says None."""
    import random

    from specops.backends import yaml_emit

    rng = random.Random(7)
    chars = list("ab :-#'\"|>\t\n ") + ["\r", "\r\n", "\x85", "\u2028", "ü", "\ufeff", "\U0001f600", "  \n"]

    def node(depth: int) -> Any:
        r = rng.random()
        if depth > 3 or r < 0.5:
            return rng.choice(["".join(rng.choice(chars) for _ in range(rng.randint(0, 8))), "yes", "1_0", "",
                               0, -2, 1.5, 1e-7, 1e300, True, None, float("inf")])
        if r < 0.75:
            return {"".join(rng.choice("ab_-") for _ in range(3)): node(depth + 1) for _ in range(rng.randint(0, 4))}
        return [node(depth + 1) for _ in range(rng.randint(0, 4))] if rng.random() < 0.7 else (node(depth + 1),)

    claimed = 0
    for _ in range(3000):
        data = {"model": "m", "x": node(0), "a": node(1)}
        got = vllm._as_loaded(data)
        if got is not None:
            claimed += 1
            back = yaml.safe_load(yaml_emit.dump(data))
            assert got == back and repr(got) == repr(back), data
    assert claimed > 1000


def test_serve_config_refuses_args_with_errors():
    with pytest.raises(vllm.VllmArgsError) as exc:
        vllm.serve_config({"max-model": 4096, "dtype": "float64"}, model="m", version=V)
    assert [p.key for p in exc.value.problems] == ["max-model", "dtype"]


# ---- vLLM's own parser (needs the vLLM venv) ---------------------------------------------


def _one_valid_value(flag: vllm.Flag) -> Any:
    special = {
        "lora-modules": ["tiny=/adapters/tiny"],  # name=path, parsed by LoRAParserAction
        # validate_parsed_serve_args resolves a path-like template; a literal one passes.
        "chat-template": "{% for m in messages %}{{ m.content }}{% endfor %}",
    }
    if flag.name in special:
        return special[flag.name]
    if flag.bool:
        return False
    if flag.json:
        return {}
    choices = [c for c in flag.choices or () if c is not None]
    if choices:
        value: Any = choices[0]
    elif flag.type in ("int", "human-int", "human-int-or-auto"):
        value = 1
    elif flag.type == "float":
        value = 0.5
    else:
        value = "x"
    return [value] if flag.multi else value


def test_emitted_configs_parse_cleanly_with_vllms_parser(tmp_path: Path):
    python = _vllm_python()
    table = vllm.flags_for(V)
    # One value for every flag of the version, each statically accepted. --grpc-port is left
    # out: vLLM's post-parse validation requires an environment variable for it.
    every = {n: _one_valid_value(f) for n, f in table.flags.items()
             if n not in vllm.RESERVED and n != "grpc-port"}
    assert vllm.check_args(every, V, as_written=False) == []
    # Flags other spec fields own are refused as written engine args (two sources for one value).
    assert {p.key for p in vllm.check_args(every, V)} == set(vllm.SPEC_OWNED)
    configs = {
        "every-flag": vllm.serve_config(every, model="/models/x", version=V),
        "typical": vllm.serve_config(ARGS, model="/models/x", version=V),
    }
    # Hand-written files with what check_args rejects: vLLM's parser must reject them too.
    bad = {
        "abbrev": b"model: /models/x\nmax-model: 4096\n",
        "choice": b"model: /models/x\ndtype: float64\n",
        "int": b"model: /models/x\ntensor-parallel-size: two\n",
        "removed": b"model: /models/x\nswap-space: 4\n",
    }
    paths = {}
    for name, data in {**configs, **bad}.items():
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_bytes(data)
    results = vllm.live_check_many(list(paths.values()), python)
    by_name = {name: results[os.fspath(p)] for name, p in paths.items()}
    assert by_name["every-flag"] == [] and by_name["typical"] == []
    assert [(p.key, p.code) for p in by_name["abbrev"]] == [("max-model", "vllm-flag")]
    assert [(p.key, p.code) for p in by_name["choice"]] == [("dtype", "value")]
    assert [(p.key, p.code) for p in by_name["int"]] == [("tensor-parallel-size", "value")]
    assert any(p.key == "swap-space" for p in by_name["removed"])
    # and the static check agrees on each bad file
    for name in bad:
        doc = yaml.safe_load(bad[name])
        doc.pop("model")
        assert [p for p in vllm.check_args(doc, V) if p.severity == "error"], name


def test_committed_flag_list_matches_the_live_parser():
    python = _vllm_python()
    installed = subprocess.run([str(python), "-c", "import vllm; print(vllm.__version__)"],
                               capture_output=True, text=True, env=vllm.vllm_env(), check=True)
    version = installed.stdout.strip().splitlines()[-1].split("+")[0]
    assert version == V, f"the vLLM venv has {version}; regenerate its list and update V"
    proc = subprocess.run([str(python), str(REPO / "tools" / "gen_vllm_flags.py"), "--check"],
                          capture_output=True, text=True, env=vllm.vllm_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
