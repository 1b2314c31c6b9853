"""The audit trail: every `apply` appends one entry to its environment's history (kept with
the state, specops.state.history) saying who applied, from which commit, what changed and how
it ended; `specops history` prints it.

Who: the CI system's identity of the person or bot that started the run where one is set
(GITHUB_ACTOR, GITLAB_USER_LOGIN, ...), else the git user of the spec repo's checkout, else the
operating-system user. Which commit: the CI's commit variable, else `git rev-parse HEAD` of the
spec repo, with whether the working tree had uncommitted changes (an apply from a dirty tree
is not reproducible from the commit alone).
"""

from __future__ import annotations

import getpass
import os
import subprocess
from pathlib import Path
from typing import Any

from specops import __version__
from specops.redact import redact
from specops.state.base import StateError, _utc_now_iso

# (variable naming the person or bot, the CI system, the variable naming the commit)
CI_IDENTITIES = (
    ("GITHUB_ACTOR", "github-actions", "GITHUB_SHA"),
    ("GITLAB_USER_LOGIN", "gitlab-ci", "CI_COMMIT_SHA"),
    ("BUILDKITE_BUILD_CREATOR_EMAIL", "buildkite", "BUILDKITE_COMMIT"),
    ("CIRCLE_USERNAME", "circleci", "CIRCLE_SHA1"),
    ("BITBUCKET_STEP_TRIGGERER_UUID", "bitbucket-pipelines", "BITBUCKET_COMMIT"),
)
GIT_TIMEOUT_S = 10


def _git(root: Path, *args: str) -> str | None:
    try:
        p = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                           check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def identity(root: Path) -> dict[str, Any]:
    """who / via / commit / dirty of this apply."""
    env = os.environ
    for var, system, commit_var in CI_IDENTITIES:
        if env.get(var):
            return {"who": env[var], "via": system,
                    "commit": env.get(commit_var) or _git(root, "rev-parse", "HEAD"),
                    "dirty": None}
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--", ".") if commit else None
    name, email = _git(root, "config", "user.name"), _git(root, "config", "user.email")
    if name or email:
        who, via = " ".join(x for x in (name, f"<{email}>" if email else None) if x), "git"
    else:
        try:
            who = getpass.getuser()
        except (OSError, KeyError):
            who = "unknown"
        via = "os-user"
    return {"who": who, "via": via, "commit": commit, "dirty": bool(status) if status is not None else None}


def entry(root: Path, plan: Any, *, result: Any = None, outcome: str | None = None, error: str | None = None,
          state_serial: int | None = None, saved_plan: bool = False,
          actor: dict[str, Any] | None = None) -> dict[str, Any]:
    """One history entry. `outcome` names an apply that did not run its changes
    ("refused", "no-changes"); otherwise it is taken from the ApplyResult. `actor` (who, via,
    commit, dirty) replaces the identity found here, for a caller that knows it better (the
    reconcile loop: its own name and the revision it synced)."""
    if outcome is None:
        outcome = "failed" if result.failed else "blocked" if result.blocked else "applied"
        error = error or result.error
    changes = [{"address": c.address, "action": str(c.action)} for c in plan.changes
               if str(c.action) not in ("no-op", "orphan")]
    doc = {"at": _utc_now_iso(), **(actor or identity(root)), "result": outcome, "error": redact(error) if error else None,
           "mode": plan.mode, "saved_plan": saved_plan, "changes": changes,
           "applied": list(result.applied) if result else [], "blocked": list(result.blocked) if result else [],
           "failed": result.failed if result else None, "state_serial": state_serial, "specops": __version__}
    return doc


def record(store: Any, doc: dict[str, Any]) -> str | None:
    """Append `doc` to the store's history; the problem as one line when it cannot be (the
    apply itself already happened, so the caller warns rather than fails)."""
    try:
        store.append_history(doc)
    except StateError as e:
        return f"the apply history of env '{store.env}' was not written: {e}"
    return None
