"""The root command group: lazy sub-commands, Terraform's exit codes, one-line errors.

`specops --help` must stay fast (well under 0.3 s): the table below gives every command's
module and one-line help, so listing them imports no command, and running one imports only
its module. Bad input never shows a traceback: spec problems are diagnostics (exit 1), a
missing optional SDK names the extra to install, and anything unexpected is one `internal`
line unless SPECOPS_DEBUG is set. Usage errors exit 1 (click's default is 2, which specops
keeps for "changes present").

Shell completion: `eval "$(_SPECOPS_COMPLETE=bash_source specops)"` (zsh_source, fish_source).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

# name -> (module, attribute, one-line help). The help is here so `--help` imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("specops.cli.validate_cmd", "validate", "Check every spec; report all problems at file:line:col."),
    "render": ("specops.cli.spec_cmds", "render", "The effective specs of one environment (overrides applied)."),
    "graph": ("specops.cli.spec_cmds", "graph", "The lineage graph: dataset -> model -> gate -> serving."),
    "schema": ("specops.cli.spec_cmds", "schema", "JSON Schema for every kind (and one for yaml-language-server)."),
    "init": ("specops.cli.spec_cmds", "init", "Scaffold a minimal spec repo that validates."),
    "compile": ("specops.cli.compile_cmd", "compile_cmd", "Compile every backend's artifacts and the manifest."),
    "capacity": ("specops.cli.build_cmds", "capacity", "GPU fit of every serving target: weights, KV cache, cost."),
    "run": ("specops.cli.build_cmds", "run", "Run an environment's pipelines on a local target, without state."),
    "diff": ("specops.cli.diff_cmds", "diff_cmd", "What a pull request changes in every compiled artifact."),
    "plan": ("specops.cli.ops_cmds", "plan", "Show what apply would change: specs vs state vs live."),
    "apply": ("specops.cli.ops_cmds", "apply", "Apply the plan (or a saved plan) under the state lock."),
    "drift": ("specops.cli.ops_cmds", "drift", "Show live changes made outside specops (exit 2 if any)."),
    "show": ("specops.cli.show_cmd", "show", "Show saved plans as text, markdown (a PR comment) or JSON."),
    "import": ("specops.cli.ops_cmds", "import_cmd", "Adopt an existing live object into state."),
    "force-unlock": ("specops.cli.ops_cmds", "force_unlock", "Release a lock left by a crashed apply."),
    "gate": ("specops.cli.gate_cmds", "gate", "Eval gates: run one and record its verdict."),
    "state": ("specops.cli.state_cmds", "state", "Look at and repair recorded state: list, show, rm, mv."),
    "lock": ("specops.cli.lock_cmds", "lock_cmd", "Pin every dataset source by content in specops.lock."),
    "monitor": ("specops.cli.monitor_cmds", "monitor", "Monitors: run one now (exit 2 on a breach), print its schedule."),
    "promote": ("specops.cli.promote_cmds", "promote_cmd",
                "Pin the version one env serves in another, on a new git branch."),
    "history": ("specops.cli.history_cmd", "history", "Who applied what to an environment, from which commit."),
    "reconcile": ("specops.cli.reconcile_cmd", "reconcile", "Keep every environment converged on a git branch."),
}


class RootGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, _, help_) in COMMANDS.items()])

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            from specops.diagnostics import suggestion

            raise click.UsageError(f"unknown command '{name}'" + suggestion(name, COMMANDS), ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as e:  # noqa: BLE001 - the one place a crash becomes one line
            from specops.cli.common import emit_diagnostics, fail
            from specops.diagnostics import SpecError
            from specops.extras import missing_extra

            if isinstance(e, SpecError):
                emit_diagnostics(e.diagnostics, None, "text")
                sys.exit(1)
            extra = missing_extra(e)
            if extra:
                fail(extra)
            if os.environ.get("SPECOPS_DEBUG"):
                raise
            fail(f"{type(e).__name__}: {e} [internal] (set SPECOPS_DEBUG=1 for the traceback)")

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        # Click exits 2 on a usage error; specops keeps 2 for "changes present".
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(1)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except EOFError:
            click.echo("Aborted!", err=True)
            sys.exit(1)


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--no-color", "no_color", is_flag=True, help="No colour in any output (also: NO_COLOR=1).")
@click.version_option(package_name="specops", message="specops %(version)s")
def main(no_color: bool) -> None:
    """specops — a GitOps compiler for ML and LLM lifecycle specs.

    Validate a repo of YAML specs; compile pipelines for KFP, SageMaker and ZenML plus vLLM
    serving configs; diff a pull request's effect; plan and apply each environment, with
    drift handled by policy. Exit codes: 0 ok, 1 error, 2 changes present (plan
    --detailed-exitcode, drift, diff). `--env` defaults to $SPECOPS_ENV.
    """
