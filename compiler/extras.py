"""Which optional extra brings which package: a missing SDK becomes one line that names the
install command, e.g. `pip install 'specops[zenml]'`, never "No module named 'zenml'"."""

from __future__ import annotations

# top-level module -> the extra (pyproject's [project.optional-dependencies]) that installs it
EXTRAS: dict[str, str] = {
    "zenml": "zenml",
    "kfp": "kfp",
    "boto3": "sagemaker",
    "botocore": "sagemaker",
    "jsonschema": "sagemaker",
    "sklearn": "train",
    "torch": "llm",
    "transformers": "llm",
    "peft": "llm",
    "rouge_score": "llm",
    "kubernetes_validate": "serve",
    "prometheus_client": "reconcile",
}


def missing_extra(exc: BaseException) -> str | None:
    """'<module> is not installed: pip install 'specops[<extra>]'' for an ImportError of an
    optional SDK, else None."""
    name = getattr(exc, "name", None)
    if not isinstance(exc, ImportError) or not name:
        return None
    top = name.split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return f"{top} is not installed; install the extra: pip install 'specops[{extra}]'"


class MissingExtra(ModuleNotFoundError):
    """An optional SDK a command needs is not installed; its message names the extra."""

    def __str__(self) -> str:
        return missing_extra(self) or super().__str__()


def require(module: str) -> None:
    """Raise MissingExtra unless `module` can be imported (checked without importing it)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtra(f"No module named '{module}'", name=module)
