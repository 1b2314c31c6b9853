"""specops: a declarative GitOps compiler for ML and LLM operations.

Installed, `compiler/` is this package; `specs/`, `backends/` and `templates/` are
its subpackages (see pyproject's package-dir). Nothing heavy is imported here: the
CLI must start fast.
"""

__version__ = "0.1.0"

API_VERSION = "specops.dev/v1alpha1"
