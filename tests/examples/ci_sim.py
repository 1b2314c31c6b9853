"""A small stand-in for the GitHub Actions and GitLab CI runners, enough to run the CI kit's
jobs on this machine (neither platform can run here). It reads the workflow files as
committed and runs their shell steps in order — `run:` steps and `script:` lines, with bash as
the platforms do — in a fresh clone of a local bare "origin" per job. What it does itself:

- triggers, `needs:`/stages, job and step `if:`, GitLab `rules:`, `extends:`, matrices;
- `${{ }}` expressions (a subset: contexts, ==, !=, &&, ||, !, hashFiles, format) and GitLab
  rule expressions ($VAR, ==, !=, &&, ||);
- `actions/checkout`, `setup-python`, `upload-artifact`, `download-artifact` and GitLab
  artifacts; `actions/github-script` steps are not run (JavaScript, checked by schema only):
  the run records which of them would have run;
- protection: a job in a protected environment (GitHub) or a `when: manual` job (GitLab)
  waits until `approve()`; dependents wait with it;
- provisioning: a line that installs specops from the registry (`pip install "specops…=="`)
  or installs OS packages (`apt-get`) is not run — specops is installed from the checkout
  into a virtualenv whose bin/ comes first on PATH (the recipes name a release that does not
  exist yet), and git is on this machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = re.compile(r"^\s*(?:pip install\b.*\bspecops\b.*==|apt-get\b)")


def install_specops(dest: Path) -> Path:
    """A virtualenv with specops built and installed from this checkout (not editable); its
    dependencies come from the running interpreter's site-packages. Returns its bin/."""
    venv = dest / "venv"
    if not (venv / "bin" / "specops").exists():
        # Without pip of its own: the running interpreter's pip and setuptools build the wheel.
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
        site = next((venv / "lib").glob("python*/site-packages"))
        (site / "zz_parent_site.pth").write_text(
            f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
        r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
                            "--no-build-isolation", "--no-index", str(ROOT)], capture_output=True, text=True,
                           timeout=600, env=_clean_env(os.environ))
        assert r.returncode == 0, r.stdout + r.stderr
    return venv / "bin"


def _clean_env(env: Any) -> dict[str, str]:
    """The environment without what would point Python at another copy of specops."""
    return {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SPECOPS_DEBUG")}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.com",
           "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.com"}
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"git {args}: {r.stderr}"
    return r.stdout.strip()


@dataclass
class Sandbox:
    """What a runner machine offers: the origin, the specops install, the runner's own
    environment (e.g. AWS_ENDPOINT_URL), and the platform's secret store and variables."""

    origin: Path
    work: Path
    bin: Path
    runner_env: dict[str, str]
    secrets: dict[str, str] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    _n: int = 0

    def workspace(self, sha: str) -> Path:
        self._n += 1
        ws = self.work / f"job-{self._n}"
        git(self.work, "clone", "-q", str(self.origin), str(ws))
        git(ws, "checkout", "-q", "--detach", sha)
        return ws

    def shell(self, script: str, cwd: Path, env: dict[str, str], shell: list[str]) -> tuple[int, str]:
        lines = [x for x in script.splitlines() if not PROVISIONING.match(x)]
        full = {**_clean_env(os.environ), **self.runner_env, **env}
        full["PATH"] = f"{self.bin}{os.pathsep}{full.get('PATH', '')}"
        f = cwd.parent / f"{cwd.name}.step.sh"
        f.write_text("\n".join(lines) + "\n")
        r = subprocess.run([*shell, str(f)], cwd=cwd, env=full, capture_output=True, text=True, timeout=900)
        return r.returncode, r.stdout + r.stderr


@dataclass
class Job:
    name: str
    spec: dict[str, Any]
    matrix: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"  # pending | success | failure | skipped | waiting
    log: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    scripts: list[str] = field(default_factory=list)  # github-script steps that would have run
    workspace: Path | None = None


def schedule(jobs: dict[str, Job], deps_of: Callable[[str, Job], list[Job]], held: Callable[[str, Job], bool],
             run_job: Callable[[str, Job, list[Job]], None]) -> None:
    """Run every job whose dependencies succeeded, until nothing moves; a job that `held()`
    (waiting for an approval) waits, and so do its dependents; a failure skips dependents."""
    progress = True
    while progress:
        progress = False
        for key, job in jobs.items():
            if job.status not in ("pending", "waiting"):
                continue
            deps = deps_of(key, job)
            if any(d.status in ("pending", "waiting") for d in deps):
                continue
            if any(d.status != "success" for d in deps):
                job.status = "skipped"
                progress = True
                continue
            if held(key, job):
                job.status = "waiting"
                continue
            run_job(key, job, deps)
            progress = True


# ---- expressions --------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*'|\"[^\"]*\")"  # a string: 'github', "gitlab"
                    r"|(&&|\|\||==|!=|!|\(|\)|,)"  # an operator
                    r"|([A-Za-z_][\w.-]*(?:\[[^\]]*\])?)|(\d+))")  # a name (a.b.c), a number


def eval_expr(expr: str, lookup: Callable[[str], Any], funcs: dict[str, Callable[..., Any]]) -> Any:
    """A GitHub Actions or GitLab rules expression, translated token by token to Python."""
    out, pos, text = [], 0, expr.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"cannot parse expression {expr!r} at {text[pos:]!r}"
        pos = m.end()
        s, op, name, num = m.groups()
        if s is not None:
            out.append(repr(s[1:-1].replace("''", "'") if s[0] == "'" else s[1:-1]))
        elif op is not None:
            out.append({"&&": " and ", "||": " or ", "!": " not "}.get(op, op))
        elif num is not None:
            out.append(num)
        elif name in ("true", "false", "null"):
            out.append({"true": "True", "false": "False", "null": "None"}[name])
        elif pos < len(text) and text[pos:].lstrip().startswith("("):
            out.append(f"__f[{name!r}]")
        else:
            out.append(f"__v({name!r})")
    return eval("".join(out), {"__builtins__": {}}, {"__f": funcs, "__v": lookup})


def substitute(value: Any, lookup: Callable[[str], Any], funcs: dict) -> Any:
    if not isinstance(value, str):
        return value
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _str(eval_expr(m.group(1), lookup, funcs)), value)


def _str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# ---- GitHub Actions -----------------------------------------------------------------------


class GitHubRun:
    """One workflow run for one event; `run()` goes as far as it can, `approve()` releases a
    job waiting for its environment's reviewers."""

    def __init__(self, box: Sandbox, workflow: Path, event: str, sha: str, *, ref: str = "refs/heads/main",
                 base_ref: str = "", pr_number: int = 0, protected: tuple[str, ...] = ("prod",)) -> None:
        self.box, self.event, self.sha = box, event, sha
        self.doc = yaml.safe_load(workflow.read_text())
        on = self.doc.get(True, self.doc.get("on"))  # YAML 1.1 reads the key `on` as True
        assert event in (on if isinstance(on, (dict, list)) else [on]), f"{workflow.name} does not run on {event}"
        self.github = {"event_name": event, "sha": sha, "ref": ref, "base_ref": base_ref,
                       "event": {"pull_request": {"number": pr_number}}}
        self.protected = protected
        self.approved: set[str] = set()
        self.jobs: dict[str, Job] = {}
        for name, spec in self.doc["jobs"].items():
            matrix = (spec.get("strategy") or {}).get("matrix")
            if matrix:
                (key, values), = matrix.items()
                for v in values:
                    self.jobs[f"{name} ({v})"] = Job(name, spec, {key: v})
            else:
                self.jobs[name] = Job(name, spec)
        self.artifacts = box.work / f"artifacts-{id(self)}"

    def _needs(self, job: Job) -> list[Job]:
        needs = job.spec.get("needs") or []
        needs = [needs] if isinstance(needs, str) else needs
        return [j for j in self.jobs.values() if j.name in needs]

    def approve(self, job_name: str) -> None:
        self.approved.add(job_name)

    def run(self) -> GitHubRun:
        schedule(self.jobs, lambda _k, j: self._needs(j),
                 lambda _k, j: j.spec.get("environment") in self.protected and j.name not in self.approved,
                 lambda _k, j, _d: self._run_job(j))
        return self

    def _lookup(self, job: Job, env: dict[str, str], steps: dict[str, dict]) -> Callable[[str], Any]:
        def get(name: str) -> Any:
            head, _, rest = name.partition(".")
            tree: Any = {"github": self.github, "secrets": self.box.secrets, "vars": self.box.vars, "env": env,
                         "matrix": job.matrix, "steps": steps,
                         "needs": {d.name: {"outputs": d.outputs, "result": d.status} for d in self._needs(job)},
                         "runner": {"temp": str(self.box.work)}}.get(head)
            for part in rest.split(".") if rest else []:
                tree = tree.get(part) if isinstance(tree, dict) else None
            return tree
        return get

    def _funcs(self, job: Job, failed: list[bool]) -> dict[str, Callable[..., Any]]:
        def hash_files(*patterns: str) -> str:
            ws = job.workspace
            return "x" if ws and any(list(ws.glob(p)) for p in patterns) else ""
        return {"success": lambda: not failed[0], "failure": lambda: failed[0], "always": lambda: True,
                "hashFiles": hash_files, "format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: str(a[int(m[1])]), f),
                "contains": lambda a, b: b in a}

    def _run_job(self, job: Job) -> None:
        failed = [False]
        steps: dict[str, dict] = {}
        env: dict[str, str] = {}
        look = self._lookup(job, env, steps)
        funcs = self._funcs(job, failed)
        for k, v in (self.doc.get("env") or {}).items():
            env[k] = _str(substitute(v, look, funcs))
        if "if" in job.spec and not eval_expr(str(job.spec["if"]).replace("${{", "").replace("}}", ""), look, funcs):
            job.status = "skipped"
            return
        for k, v in (job.spec.get("env") or {}).items():
            env[k] = _str(substitute(v, look, funcs))
        job.workspace = self.box.workspace(self.sha)
        out_file, summary = job.workspace.parent / f"{job.workspace.name}.out", job.workspace.parent / "summary.md"
        for i, step in enumerate(job.spec["steps"]):
            cond = step.get("if", "success()")
            if not eval_expr(str(cond).replace("${{", "").replace("}}", ""), look, funcs):
                continue
            with_ = {k: _str(substitute(v, look, funcs)) for k, v in (step.get("with") or {}).items()}
            uses = step.get("uses", "")
            if uses:
                self._action(job, uses, with_, step)
                continue
            step_env = {**env, **{k: _str(substitute(v, look, funcs)) for k, v in (step.get("env") or {}).items()}}
            out_file.write_text("")
            step_env.update({"GITHUB_OUTPUT": str(out_file), "GITHUB_STEP_SUMMARY": str(summary), "CI": "true",
                             "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": self.event, "GITHUB_SHA": self.sha,
                             "GITHUB_REF": self.github["ref"], "GITHUB_BASE_REF": self.github["base_ref"],
                             "GITHUB_WORKSPACE": str(job.workspace), "RUNNER_TEMP": str(self.box.work)})
            code, log = self.box.shell(step["run"], job.workspace, step_env,
                                       ["bash", "--noprofile", "--norc", "-eo", "pipefail"])
            job.log += f"--- {step.get('name', i)} (exit {code})\n{log}"
            outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line)
            if "id" in step:
                steps[step["id"]] = {"outputs": outputs, "outcome": "success" if code == 0 else "failure"}
            if code != 0:
                failed[0] = True
        job.summary = summary.read_text() if summary.exists() else ""
        job.status = "failure" if failed[0] else "success"

    def _action(self, job: Job, uses: str, with_: dict[str, str], step: dict) -> None:
        name = uses.split("@", 1)[0]
        if name in ("actions/checkout", "actions/setup-python"):
            return  # the workspace is a clone at the run's commit; Python is the sandbox's
        if name == "actions/upload-artifact":
            dest = self.artifacts / with_["name"]
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(job.workspace / with_["path"], dest / Path(with_["path"]).name)
        elif name == "actions/download-artifact":
            for f in (self.artifacts / with_["name"]).iterdir():
                shutil.copy2(f, job.workspace / f.name)
        elif name == "actions/github-script":
            job.scripts.append(step.get("name", "github-script"))
        else:
            raise AssertionError(f"the simulation does not know {uses}")


# ---- GitLab CI ----------------------------------------------------------------------------

_GITLAB_GLOBAL = {"stages", "variables", "default", "include", "workflow", "image", "services", "before_script",
                  "after_script", "cache"}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class GitLabPipeline:
    """One pipeline for one source (push, merge_request_event, schedule); `play()` starts a
    manual job."""

    def __init__(self, box: Sandbox, ci_file: Path, source: str, sha: str, *, branch: str = "main",
                 variables: dict[str, str] | None = None) -> None:
        self.box, self.sha = box, sha
        doc = yaml.safe_load(ci_file.read_text())
        self.stages = doc.get("stages", ["build", "test", "deploy"])
        self.variables = {k: str(v) for k, v in (doc.get("variables") or {}).items()}
        self.predefined = {"CI": "true", "GITLAB_CI": "true", "CI_PIPELINE_SOURCE": source, "CI_COMMIT_SHA": sha,
                           "CI_DEFAULT_BRANCH": "main", "CI_PROJECT_ID": "42", **(variables or {})}
        if source != "merge_request_event":
            self.predefined["CI_COMMIT_BRANCH"] = branch
        self.played: set[str] = set()
        self.artifacts: dict[str, Path] = {}
        self.jobs: dict[str, Job] = {}
        for name, spec in doc.items():
            if name in _GITLAB_GLOBAL or not isinstance(spec, dict) or name.startswith("."):
                continue
            spec = self._resolve(doc, spec)
            rule = self._rule(spec)
            if rule is None:
                continue
            spec = {**spec, "when": rule.get("when", spec.get("when", "on_success"))}
            matrix = (spec.get("parallel") or {}).get("matrix") if isinstance(spec.get("parallel"), dict) else None
            if matrix:
                for entry in matrix:
                    (key, values), = entry.items()
                    for v in values:
                        self.jobs[f"{name}: [{v}]"] = Job(name, spec, {key: v})
            else:
                self.jobs[name] = Job(name, spec)

    def _resolve(self, doc: dict, spec: dict) -> dict:
        parents = spec.get("extends") or []
        parents = [parents] if isinstance(parents, str) else parents
        base: dict = {}
        for p in parents:
            base = _merge(base, self._resolve(doc, doc[p]))
        return _merge(base, {k: v for k, v in spec.items() if k != "extends"})

    def _var(self, env: dict[str, str]) -> Callable[[str], Any]:
        return lambda name: env.get(name.lstrip("$")) or None

    def _rule(self, spec: dict) -> dict | None:
        env = {**self.variables, **self.predefined}
        for rule in spec.get("rules") or [{}]:
            cond = rule.get("if")
            if cond is None or eval_expr(re.sub(r"\$(\w+)", r"\1", cond), self._var(env), {}):
                return None if rule.get("when") == "never" else rule
        return None

    def play(self, job_name: str) -> None:
        self.played.add(job_name)

    def _needs(self, key: str, job: Job) -> list[str]:
        if "needs" in job.spec:
            return [k for k, j in self.jobs.items() if j.name in job.spec["needs"]]
        stage = self.stages.index(job.spec.get("stage", "test"))
        return [k for k, j in self.jobs.items() if self.stages.index(j.spec.get("stage", "test")) < stage]

    def run(self) -> GitLabPipeline:
        schedule(self.jobs, lambda k, j: [self.jobs[x] for x in self._needs(k, j)],
                 lambda k, j: j.spec["when"] == "manual" and k not in self.played, self._run_job)
        return self

    def _run_job(self, key: str, job: Job, deps: list[Job]) -> None:
        job.workspace = self.box.workspace(self.sha)
        for d in deps:
            src = self.artifacts.get(d.name + str(d.matrix))
            if src is not None:
                shutil.copytree(src, job.workspace, dirs_exist_ok=True)
        env = {**self.variables, **{k: str(v) for k, v in (job.spec.get("variables") or {}).items()},
               **{k: str(v) for k, v in job.matrix.items()}, **self.predefined, **self.box.secrets}
        script = [*(job.spec.get("before_script") or []), *job.spec["script"]]
        code, log = self.box.shell("\n".join(script), job.workspace, env, ["bash", "--noprofile", "--norc", "-eo",
                                                                             "pipefail"])
        job.log = log
        job.status = "success" if code == 0 else "failure"
        paths = ((job.spec.get("artifacts") or {}).get("paths")) or []
        if paths and (code == 0 or (job.spec.get("artifacts") or {}).get("when") == "always"):
            store = self.box.work / f"gl-artifacts-{id(self)}-{job.name}-{len(self.artifacts)}"
            for p in paths:
                src = job.workspace / p
                if src.is_dir():
                    shutil.copytree(src, store / p, dirs_exist_ok=True)
                elif src.exists():
                    (store / p).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, store / p)
            self.artifacts[job.name + str(job.matrix)] = store
