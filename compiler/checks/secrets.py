"""Plaintext secrets anywhere in a spec: a credential committed to git leaks into every artifact."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from specops.checks.common import strings
from specops.diagnostics import Diagnostic, Diagnostics

if TYPE_CHECKING:
    from specops.resolve.refs import Resolved

_SECRET_PATTERNS = [
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), "a Hugging Face token"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"), "an API key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), "a GitHub token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b"), "a Slack token"),
]



def check_plaintext_secrets(resolved: "Resolved", out: Diagnostics) -> None:
    for s in resolved.repo.specs:
        for path, text in strings(s.doc.data):
            for rx, what in _SECRET_PATTERNS:
                if rx.search(text):
                    out.add(Diagnostic("error", "plaintext-secret",
                                       f"this value looks like {what}; never commit secrets — store it in a "
                                       "secret manager and use `secretRef`", s.file, s.doc.pos_of(path)))
                    break


