"""The watched branch: fetch it from the remote, refuse a history rewrite, check it out.

The loop keeps its own clone under its work directory (`<workdir>/checkout`) and checks out
each new head detached and forced, without `git clean`: untracked files (a local state store
under `.specops/`, the compile cache) survive from one revision to the next. The last revision
checked out is kept in `<workdir>/revision`, so a restarted loop still notices a force-push.

Every git call has a timeout and never prompts (GIT_TERMINAL_PROMPT=0), so an unreachable
remote or one that asks for credentials is an error line, never a hang. The remote URL is
shown without any user-info (it may carry a token).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

GIT_TIMEOUT_S = 120.0


class SourceError(Exception):
    """One human line: the remote cannot be fetched, or its branch was rewritten."""


def safe_url(url: str) -> str:
    """`url` without user-info (https://token@host/x -> https://host/x); local paths as given."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


@dataclass
class Checkout:
    revision: str
    changed: bool  # a revision other than the one checked out before
    root: Path  # the spec repo: the checkout plus --path


class GitSource:
    def __init__(self, url: str, branch: str, workdir: Path, path: str = ".",
                 accept_force_push: bool = False) -> None:
        self.url, self.branch, self.path = url, branch, path
        self.workdir = Path(workdir)
        self.repo = self.workdir / "checkout"
        self.revision_file = self.workdir / "revision"
        self.accept_force_push = accept_force_push

    def _git(self, *args: str, check: bool = True, timeout: float = GIT_TIMEOUT_S) -> subprocess.CompletedProcess:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
        try:
            r = subprocess.run(["git", *args], cwd=self.repo, env=env, capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SourceError(f"git {args[0]} of {safe_url(self.url)} timed out after {timeout:.0f} s") from None
        except OSError as e:
            raise SourceError(f"cannot run git ({e.strerror or e})") from None
        if check and r.returncode != 0:
            why = (r.stderr.strip().splitlines() or ["failed"])[-1].replace(self.url, safe_url(self.url))
            raise SourceError(f"git {args[0]} of {safe_url(self.url)} failed: {why}")
        return r

    def last_revision(self) -> str | None:
        try:
            return self.revision_file.read_text().strip() or None
        except OSError:
            return None

    def fetch(self) -> Checkout:
        """Fetch the branch and check out its head; SourceError when that cannot be done safely
        (nothing is checked out then, and the previous checkout stays)."""
        self.repo.mkdir(parents=True, exist_ok=True)
        if not (self.repo / ".git").exists():
            self._git("init", "-q")
        self._git("remote", "remove", "origin", check=False)
        self._git("remote", "add", "origin", self.url)
        ref = f"refs/remotes/origin/{self.branch}"
        self._git("fetch", "--quiet", "--no-tags", "--prune", "origin", f"+refs/heads/{self.branch}:{ref}")
        head = self._git("rev-parse", "--verify", f"{ref}^{{commit}}").stdout.strip()
        last = self.last_revision()
        if last and last != head and not self.accept_force_push:
            known = self._git("cat-file", "-e", f"{last}^{{commit}}", check=False).returncode == 0
            if not known or self._git("merge-base", "--is-ancestor", last, head, check=False).returncode != 0:
                raise SourceError(
                    f"branch {self.branch} of {safe_url(self.url)} was rewritten (force-push): {head[:12]} does not "
                    f"descend from {last[:12]}, the revision last reconciled; nothing applied. Restore the branch, or "
                    "restart with --accept-force-push to reconcile the new history")
        self._git("checkout", "--quiet", "--force", "--detach", head)
        self.revision_file.write_text(head + "\n")
        root = (self.repo / self.path).resolve()
        if not root.is_relative_to(self.repo.resolve()):
            raise SourceError(f"--path {self.path} leaves the repository")
        return Checkout(head, head != last, root)
