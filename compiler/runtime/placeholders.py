"""`${{inputs.NAME}}` / `${{outputs.NAME}}` placeholders of a command step's argv.

Apart from runtime.command (which runs the program) so that the checks and the SageMaker
emitter, which only read or substitute them, do not import the step runtime (subprocess,
tempfile, the publishers' thread pool and logging: ~8 ms of every compile).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from specops.runtime.errors import ParamError

PLACEHOLDER = re.compile(r"\$\{\{(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\}\}")


def placeholders(arg: str) -> list[tuple[str, str]]:
    """(inputs|outputs, name) of every ${{...}} placeholder in one argv item."""
    return [(m.group(1), m.group(2)) for m in PLACEHOLDER.finditer(arg)]


def substitute(arg: str, folders: Mapping[tuple[str, str], str], step: str) -> str:
    def one(m: re.Match) -> str:
        key = (m.group(1), m.group(2))
        if key not in folders:
            raise ParamError(f"command step {step!r}: argv names {m.group(0)}, which the step does not declare")
        return folders[key]

    return PLACEHOLDER.sub(one, arg)
