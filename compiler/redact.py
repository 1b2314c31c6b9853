"""What a secret looks like, and how to keep one out of every message (stdlib only).

Two users: `checks.secrets` refuses a spec that holds a secret-shaped value (anywhere: values,
mapping keys, `env`), and `diagnostics` passes every message and every source line it shows
through `redact`, so no error ever prints the secret it is about (CI logs outlive the PR).

What counts: the shapes of real credentials (provider prefixes and fixed lengths), the
password of a URI's user-info, and a plaintext value under a key whose name says it holds a
secret (`DB_PASSWORD`, `apiKey`, `hf_token`). What never counts: hex-only strings (git
revisions, sha256 digests, ETags, run ids are hex, and hex carries 4 bits a character where a
40-character AWS secret key carries 6), and values under pin/digest keys (`revision`, `sha256`,
`digest`, `etag`, `runId`, `version`).
"""

from __future__ import annotations

import re
from functools import lru_cache

# (pattern, what it is). Anchored on what the provider's format fixes, so prose never matches.
# Every pattern runs in linear time on any input (a spec string may be a megabyte long): a
# quantifier that could rescan a run from many starts is either bounded or followed by a
# class that cannot restart the pattern.
SHAPES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    # 40 characters of base64's alphabet standing alone: an AWS secret access key when it
    # mixes upper case, lower case and digits (see _looks_random; hex never qualifies).
    (re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"), "an AWS secret access key"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), "a Hugging Face token"),
    (re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"), "an API key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), "a GitHub token"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}"), "a GitHub token"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), "a GitLab token"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"), "a Google API key"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
]
_AWS_SECRET = SHAPES[1][0]


def _looks_random(token: str) -> bool:
    """A 40-character base64 token is a key, not a path or a word, when it mixes cases and
    digits (AWS secret keys do: 6 random bits a character)."""
    return (any(c.isupper() for c in token) and any(c.islower() for c in token)
            and any(c.isdigit() or c in "/+" for c in token) and not _HEX.fullmatch(token))


# user:password@ in a URI: the password is the secret part.
_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])(?P<head>[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s/@:]{0,256}:)"
                       r"(?P<secret>[^\s/@]{1,256})(?=@)")
# https://TOKEN@host: a user name alone over HTTP is a token.
_HTTP_USER = re.compile(r"(?P<head>\bhttps?://)(?P<secret>[^\s/@:]{1,256})(?=@)", re.I)
_HEX = re.compile(r"[0-9a-fA-F]+")
# URI query parameters that carry a credential (a presigned URL's signature, `?token=`).
CRED_QUERY_KEYS = frozenset({"password", "passwd", "token", "access_token", "sig", "signature",
                             "x-amz-signature", "x-amz-credential", "x-amz-security-token",
                             "x-goog-signature", "x-goog-credential", "secret", "access_key",
                             "secret_key", "api_key", "apikey", "client_secret"})
_CRED_QUERY = re.compile(r"(?P<head>[?&](?:" + "|".join(sorted(map(re.escape, CRED_QUERY_KEYS), key=len, reverse=True))
                         + r")=)(?P<secret>[^&#\s\"']{1,4096})", re.I)

# Keys whose value is a secret when it is a plain string; matched on the key's last word.
_SECRET_WORDS = re.compile(r"(?:^|[_.-])(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|"
                           r"access[_-]?key|secret[_-]?key|private[_-]?key|client[_-]?secret|credentials?)$", re.I)
# Keys whose values are pins and digests: identifiers, never secrets.
PIN_KEYS = frozenset({"revision", "sha", "sha256", "digest", "etag", "runid", "run_id", "version",
                      "commit", "checksum", "lockdigest", "lock_digest", "hash", "contenthash",
                      "content_hash"})

MASK = "[redacted]"


# Quick tests on a whole file's bytes: a file with none of these holds no secret shape, no
# URI password and no secret-named key, and its documents need no walk (most spec files).
_FILE_TRIGGERS = (b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"hf_", b"sk-", b"ghp_", b"gho_", b"ghu_", b"ghs_",
                  b"ghr_", b"github_pat_", b"glpat-", b"AIza", b"-----BEGIN", b"xox")
_FILE_WORDS = (b"password", b"passwd", b"pwd", b"passphrase", b"secret", b"token", b"key", b"credential",
               b"credentials")
_B64_RUN = re.compile(rb"[A-Za-z0-9/+]{40,}")
_HEX_BYTES = re.compile(rb"[0-9a-fA-F]+")


def _ends_a_key(low: bytes, word: bytes) -> bool:
    """Whether `word` ends a mapping key somewhere in `low` (`db_password:`, `"apikey":`)."""
    i = low.find(word)
    while i != -1:
        j = i + len(word)
        if low[j:j + 8].lstrip(b"\"' \t\r\n").startswith(b":"):
            return True
        i = low.find(word, j)
    return False


def may_hold_shapes(raw: bytes) -> bool:
    """False when no string of the file can hold what `secret_shape` finds (a credential
    shape, a password in a URI): plain substring tests."""
    if any(t in raw for t in _FILE_TRIGGERS) or (b"://" in raw and b"@" in raw) or (b"=" in raw and b"?" in raw):
        return True
    if b"\\" in raw:  # an escape in a quoted string can spell anything
        return True
    return any(not _HEX_BYTES.fullmatch(m.group()) for m in _B64_RUN.finditer(raw))


def may_name_secrets(raw: bytes) -> bool:
    """False when no mapping key of the file can end in a word `secret_key` looks for."""
    low = raw.lower()
    return any(_ends_a_key(low, w) for w in _FILE_WORDS)


def may_hold_secrets(raw: bytes) -> bool:
    """False when the file cannot hold anything `secret_shape` or `secret_key` would find
    (plain substring tests: a few milliseconds for a thousand spec files)."""
    return may_hold_shapes(raw) or may_name_secrets(raw)


def _camel_words(key: str) -> str:
    """`dbPassword` -> `db_Password`: camelCase keys split like snake_case ones."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key)


@lru_cache(maxsize=4096)  # keys are a small vocabulary, seen in every document
def secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (`DB_PASSWORD`, `apiKey`, `hf_token`)."""
    return bool(_SECRET_WORDS.search(_camel_words(key)))


@lru_cache(maxsize=4096)
def pin_key(key: str) -> bool:
    return key.replace("-", "_").lower() in PIN_KEYS or _camel_words(key).lower().replace("-", "_") in PIN_KEYS


# Substrings without which a shape cannot match: a C-speed `in` test skips its regex for the
# usual string (validate runs this over every string and key of every spec).
_TRIGGERS: list[tuple[str, ...]] = [("AKIA", "ASIA", "ABIA", "ACCA"), (), ("hf_",), ("sk-",), ("gh",),
                                    ("github_pat_",), ("glpat-",), ("AIza",), ("-----BEGIN",), ("xox",)]
# No credential shape (nor a URI with a password) is shorter than this.
_MIN_LEN = 10


def _real(rx: re.Pattern[str], found: re.Match[str]) -> bool:
    return not _HEX.fullmatch(found.group()) and (rx is not _AWS_SECRET or _looks_random(found.group()))


def _candidates(text: str) -> list[tuple[re.Pattern[str], str]]:
    return [(rx, what) for (rx, what), trig in zip(SHAPES, _TRIGGERS)
            if (any(t in text for t in trig) if trig else len(text) >= 40)]


def secret_shape(text: str) -> tuple[str, int, int] | None:
    """(what, start, end) of the first credential-shaped part of `text`, or None."""
    if len(text) < _MIN_LEN or _HEX.fullmatch(text):
        return None
    m = _USERINFO.search(text) if "://" in text else None
    best: tuple[str, int, int] | None = None
    if m:
        best = ("a password in a URI", m.start("secret"), m.end("secret"))
    for rx, what in _candidates(text):
        found = next((f for f in rx.finditer(text) if _real(rx, f)), None)
        if found is not None and (best is None or found.start() < best[1]):
            best = (what, found.start(), found.end())
    return best


def redact(text: str) -> str:
    """`text` with every credential-shaped part replaced by [redacted] (URI passwords and
    credential query parameters too)."""
    if len(text) < _MIN_LEN:
        return text
    out = text
    if "://" in out:
        out = _USERINFO.sub(lambda m: m.group("head") + MASK, out)
        out = _HTTP_USER.sub(lambda m: m.group("head") + MASK, out)
    if "=" in out:
        out = _CRED_QUERY.sub(lambda m: m.group("head") + MASK, out)
    for rx, _ in _candidates(out):
        out = rx.sub(lambda m, rx=rx: MASK if _real(rx, m) else m.group(), out)
    return out
