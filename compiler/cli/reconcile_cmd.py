"""`specops reconcile`: the standing GitOps loop (specops.reconcile)."""

from __future__ import annotations

from pathlib import Path

import click

from specops.cli.common import env_option, fail
from specops.cli.ops_cmds import parse_duration


@click.command()
@click.option("--repo", "url", required=True, envvar="SPECOPS_RECONCILE_REPO", show_envvar=True, metavar="URL",
              help="The git remote to watch (https://, ssh://, git@host:path or a local path).")
@click.option("--branch", default="main", show_default=True, envvar="SPECOPS_RECONCILE_BRANCH", show_envvar=True)
@click.option("--path", "spec_path", default=".", show_default=True,
              help="The folder holding specops.yaml inside the repository.")
@env_option(multiple=True, help="Environment(s) to reconcile, in this order (repeatable; default: every "
                                "declared one, in declaration order).")
@click.option("--interval", default="1m", show_default=True, metavar="DURATION",
              help="Time between syncs (e.g. 5s, 1m); a webhook starts one at once.")
@click.option("--backoff-max", default="5m", show_default=True, metavar="DURATION",
              help="The longest wait after failed syncs (the wait doubles per failure).")
@click.option("--lock-timeout", default="0s", show_default=True, metavar="DURATION",
              help="Wait this long for a state lock held by another run before counting the sync as failed.")
@click.option("--workdir", default=".specops-reconcile", show_default=True, type=click.Path(file_okay=False),
              help="Where the loop keeps its clone (and a local state store, if the specs use one).")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Address of /healthz, /readyz, /metrics and /webhook (port 0: any free port).")
@click.option("--id", "identity", default="", envvar="SPECOPS_RECONCILE_ID", show_envvar=True,
              help="This reconciler's name on the state locks it takes (default: the host name). A restarted "
                   "reconciler releases locks left under its own name. Run one process per name.")
@click.option("--accept-force-push", is_flag=True,
              help="Reconcile a branch head that does not descend from the revision last reconciled.")
@click.option("--once", is_flag=True, help="One sync, then exit (0: success, 1: any error).")
@click.option("--notify/--no-notify", "notify", default=True, show_default=True,
              help="Send apply and drift events to the Project's notifiers.")
def reconcile(url: str, branch: str, spec_path: str, envs: tuple[str, ...], interval: str, backoff_max: str,
              lock_timeout: str, workdir: str, listen: str, identity: str, accept_force_push: bool, once: bool,
              notify: bool) -> None:
    """Keep every environment converged on a git branch (Argo CD / Flux style).

    Every interval, or when POST /webhook fires, fetches the branch, plans each environment
    against its live system, and applies it by its policy: drift: reconcile heals live
    changes, drift: report only reports them. The state lock is held only while applying.
    Logs one JSON line per action on stdout; serves /healthz, /readyz and /metrics.
    """
    from specops.extras import require
    from specops.reconcile.log import JsonLog
    from specops.reconcile.loop import Loop, LoopConfig, LoopError, parse_listen

    require("prometheus_client")
    try:
        parse_listen(listen)
    except ValueError:
        raise click.BadParameter(f"'{listen}' is not HOST:PORT", param_hint="--listen") from None
    names = tuple(n for e in envs for n in e.split())
    cfg = LoopConfig(url=url, branch=branch, path=spec_path, workdir=Path(workdir).resolve(), envs=names,
                     interval=parse_duration(interval), backoff_max=parse_duration(backoff_max),
                     lock_timeout=parse_duration(lock_timeout), identity=identity, listen=listen,
                     accept_force_push=accept_force_push, notify=notify)
    if cfg.interval <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--interval")
    try:
        code = Loop(cfg, JsonLog()).run(once=once)
    except LoopError as e:
        fail(str(e))
    raise SystemExit(code)
