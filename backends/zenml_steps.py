"""The fixed ZenML steps behind every pipeline module specops generates (ZenML 0.92-0.98).

One `@step` per IR step kind, all with one signature, so a generated module is pure wiring
and ZenML can re-import each step as `specops.backends.zenml_steps.<kind>`:

    step_name: str            the IR step name ('gate-churn-auc'), from run.yaml
    params: dict              `ir.Step.params`, from run.yaml
    input_names: list[str]    input names, in the order of `inputs`, from run.yaml
    inputs: list[Path]        upstream output directories (ZenML artifacts, in wiring order)
    pipeline_parameters: dict the pipeline's parameters (`repo_root`)
    command: list[str] | None argv of a `command` step (exec'd as a list, never a shell)

and two outputs: `output` (the step's output directory as a `pathlib.Path`; ZenML's
PathMaterializer archives it into the artifact store and the next step gets a local copy)
and `result` (the JSON summary `specops.runtime.run_step` returned: metrics, verdicts).
A failing data check or gate raises `specops.runtime.StepFailed`; ZenML marks the step and
the run failed and re-raises it, so its one-line message is the run's error.

This module imports zenml at the top: only ZenML runs import it, never the CLI.
(No `from __future__ import annotations`: ZenML reads these signatures at run time.)
"""

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional, Tuple

from zenml import step

from specops.runtime import StepFailed, run_step
from specops.runtime.command import run_command

# Output directories must outlive the step function (ZenML archives them after it returns);
# they are removed when the process that ran the steps exits.
_TEMP_DIRS: list[Path] = []


@atexit.register
def _cleanup() -> None:
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


def _run(kind: str, step_name: str, params: dict, input_names: list[str], inputs: list[Path],
         pipeline_parameters: dict, command: Optional[list[str]] = None) -> Tuple[Path, dict]:

    if len(input_names) != len(inputs):
        raise ValueError(f"step {step_name!r}: {len(input_names)} input names for {len(inputs)} inputs")
    out = Path(tempfile.mkdtemp(prefix="specops-step-"))
    _TEMP_DIRS.append(out)
    repo_root = str((pipeline_parameters or {}).get("repo_root", "."))
    local_inputs = {name: str(path) for name, path in zip(input_names, inputs)}
    if kind == "command":
        result = _run_command(step_name, command, params, local_inputs, out, repo_root)
    else:

        result = run_step(kind, params, inputs=local_inputs, output_dir=str(out), repo_root=repo_root)
    if not isinstance(result, dict):
        raise StepFailed(f"step {step_name!r}: the runtime returned {type(result).__name__}, not a mapping")
    return out, result


def _run_command(step_name: str, argv: Optional[list[str]], params: dict, inputs: dict[str, str],
                 out: Path, repo_root: str) -> dict:
    """A user command: the runtime's one contract (specops.runtime.command)."""

    return run_command(argv, params, inputs, out, repo_root, step=step_name)


Outputs = Tuple[Annotated[Path, "output"], Annotated[dict, "result"]]


def _make(kind: str, doc: str) -> Any:
    """The `@step` for one IR step kind. ZenML re-imports a step by `module.attribute` and
    reads its source: the function is named after the module attribute it is bound to, and
    ends in a literal `return output, result` (how ZenML tells two outputs from one tuple)."""

    def entrypoint(step_name: str, params: dict, input_names: list[str], inputs: list[Path],
                   pipeline_parameters: dict) -> Outputs:
        output, result = _run(kind, step_name, params, input_names, inputs, pipeline_parameters)
        return output, result

    entrypoint.__name__ = entrypoint.__qualname__ = kind
    entrypoint.__doc__ = doc
    return step(entrypoint)


data_check = _make("data_check", "Dataset checks (row count, nulls, allowed values, freshness) and the split.")
train = _make("train", "Train a classical model.")
finetune = _make("finetune", "Fine-tune an LLM (LoRA or full).")
evaluate = _make("evaluate", "Compute metrics on a split.")
gate = _make("gate", "Check metrics against thresholds; raises StepFailed (the run fails) when one fails.")
register = _make("register", "Register the model version and its aliases.")
deploy = _make("deploy", "Hand the registered model to its serving target.")
predict = _make("predict", "Batch scoring: the trained model scores a dataset into a table.")
fetch = _make("fetch", "Fetch a pinned registered model version, checked by digest.")
monitor = _make("monitor", "A Monitor's checks on its data windows; a breach fails the scheduled run.")


@step
def command(step_name: str, params: dict, input_names: list[str], inputs: list[Path],
            pipeline_parameters: dict, command: Optional[list[str]] = None) -> Outputs:
    """A user-supplied command, exec'd as an argv list (never a shell)."""
    output, result = _run("command", step_name, params, input_names, inputs, pipeline_parameters, command)
    return output, result


STEPS: dict[str, Any] = {
    "data_check": data_check, "train": train, "finetune": finetune, "evaluate": evaluate,
    "gate": gate, "register": register, "deploy": deploy, "command": command, "predict": predict, "fetch": fetch,
    "monitor": monitor,
}
