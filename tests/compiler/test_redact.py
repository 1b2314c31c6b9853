"""Secret shapes and redaction: what counts as a secret, what never does, and that no
message or shown line carries one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from specops.diagnostics import Diagnostic, Pos, render_text
from specops.redact import MASK, pin_key, redact, secret_key, secret_shape

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documentation example


def test_a_40_hex_revision_is_not_a_secret_and_an_aws_secret_key_is() -> None:
    revision = "0e9e39f249a16976918f6564b8830bc894c89659"
    assert secret_shape(revision) is None
    assert secret_shape(revision.upper()) is None
    assert secret_shape(AWS_SECRET) == ("an AWS secret access key", 0, 40)
    assert secret_shape(f"--key={AWS_SECRET}") == ("an AWS secret access key", 6, 46)


def test_hex_digests_etags_and_run_ids_are_identifiers() -> None:
    for ident in ("a" * 64, "d41d8cd98f00b204e9800998ecf8427e", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                  "sha256:" + "ab" * 32, "4f1a2b3c-5d6e-7f80-9a1b-2c3d4e5f6a7b"):
        assert secret_shape(ident) is None, ident
    for key in ("revision", "sha256", "digest", "etag", "runId", "run_id", "version", "lockDigest"):
        assert pin_key(key), key


def test_words_and_paths_of_forty_characters_are_not_aws_keys() -> None:
    for text in ("a" * 40, "models/llama-3.1-8b/some/path/that/is/lo", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn",
                 "meta-llama/Llama-3.1-8B-Instruct"):
        assert secret_shape(text) is None, text


def test_provider_shapes() -> None:
    for text, what in (("AKIAIOSFODNN7EXAMPLE", "an AWS access key id"),
                       ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345", "a Hugging Face token"),
                       ("ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "a GitHub token"),
                       ("xoxb-1234567890-abcdef", "a Slack token"),
                       ("-----BEGIN OPENSSH PRIVATE KEY-----", "a private key"),
                       ("postgresql://admin:S3cr3t@db/crm", "a password in a URI")):
        assert secret_shape(f"x {text} y")[0] == what, text


def test_secret_named_keys() -> None:
    assert all(secret_key(k) for k in ("DB_PASSWORD", "password", "apiKey", "api_key", "hf_token", "HF_TOKEN",
                                       "clientSecret", "AWS_SECRET_ACCESS_KEY", "acme.com/db-password"))
    assert not any(secret_key(k) for k in ("max_tokens", "tokenizer", "secretRef", "secret_name", "key",
                                           "author", "passwordPolicy"))


def test_redact_keeps_the_rest_readable() -> None:
    assert redact("postgresql://admin:S3cr3t@db:5432/crm") == f"postgresql://admin:{MASK}@db:5432/crm"
    assert redact("https://ghp_token123@github.com/x") == f"https://{MASK}@github.com/x"
    assert redact("https://x.blob.core.windows.net/c?sv=1&sig=abc%2Fdef&se=2") == \
        f"https://x.blob.core.windows.net/c?sv=1&sig={MASK}&se=2"
    assert redact(f"key {AWS_SECRET} and AKIAIOSFODNN7EXAMPLE") == f"key {MASK} and {MASK}"
    assert redact("revision 0e9e39f249a16976918f6564b8830bc894c89659") == \
        "revision 0e9e39f249a16976918f6564b8830bc894c89659"


def test_no_diagnostic_message_or_shown_line_carries_a_secret(tmp_path) -> None:
    (tmp_path / "f.yaml").write_text("uri: postgresql://admin:S3cr3t@db/crm\n")
    d = Diagnostic("error", "value", "unsupported URI scheme in 'postgresql://admin:S3cr3t@db/crm'", "f.yaml",
                   Pos(1, 6), notes=(f"was {AWS_SECRET}",))
    out = render_text([d], tmp_path)
    assert "S3cr3t" not in out and AWS_SECRET not in out
    assert "postgresql://admin:" in out  # the rest is shown


def test_plaintext_secret_is_masked_in_the_shown_line_and_the_caret_stays(tmp_path) -> None:
    (tmp_path / "f.yaml").write_text("env: {DB_PASSWORD: hunter2, B: 1}\n")
    d = Diagnostic("error", "plaintext-secret", "x", "f.yaml", Pos(1, 20, 1, 27))
    lines = render_text([d], tmp_path).splitlines()
    assert lines[1].endswith("env: {DB_PASSWORD: *******, B: 1}")
    assert lines[2].index("^") == lines[1].index("*") and lines[2].count("^") == 7


def test_control_characters_never_reach_the_terminal() -> None:
    d = Diagnostic("error", "value", "invalid name 'a\x1b[2Jb\nc'")
    assert d.message == "invalid name 'a\\x1b[2Jb\\nc'"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("Aa0/+=-_:@.hfsk xoxbghpAKIA")), max_size=300))
def test_redact_never_leaves_a_detected_secret(text: str) -> None:
    found = secret_shape(text)
    if found is not None and found[0] != "a password in a URI":
        assert text[found[1]:found[2]] not in redact(text) or MASK in redact(text)
    assert secret_shape(redact(text)) is None or MASK in redact(text)


def test_the_file_prefilter_never_hides_what_the_walk_would_find() -> None:
    from specops.redact import may_hold_secrets

    for text in (b"a: AKIAIOSFODNN7EXAMPLE\n", b"args: [wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY]\n",
                 b"env: {DB_PASSWORD: x}\n", b'"dbPassword" : x\n', b"apiKey:\n  x\n", b"? password\n: x\n",
                 b"uri: postgresql://a:b@h/d\n", b"u: https://h/x?sig=abc\n", b'k: "\\x41KIAIOSFODNN7EXAMPLE"\n',
                 b"credentials: x\n", b"t: hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345\n"):
        assert may_hold_secrets(text), text
    for text in (b"revision: 0e9e39f249a16976918f6564b8830bc894c89659\n", b"maxTokens: 8\n",
                 b"hfToken: {secretRef: {name: hf}}\n".replace(b"hfToken", b"image"), b"name: churn\n"):
        assert not may_hold_secrets(text), text


def test_the_shape_prefilter_passes_every_shape_and_only_them() -> None:
    """may_hold_shapes: a file without it gets no secret_shape search (only its secret-named
    keys are looked at), so it must pass every string secret_shape would flag."""
    from specops.redact import may_hold_shapes

    for text in (b"a: AKIAIOSFODNN7EXAMPLE\n", b"args: [wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY]\n",
                 b"uri: postgresql://a:b@h/d\n", b'k: "\\x41KIAIOSFODNN7EXAMPLE"\n',
                 b"t: hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345\n", b"ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789: x\n"):
        assert may_hold_shapes(text), text
    for text in (b"credentials:\n  secretRef: {name: x}\n", b"hfToken: {secretRef: {name: hf}}\n",
                 b"env: {DB_PASSWORD: x}\n"):
        assert not may_hold_shapes(text), text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("Aa0/+=-_:@.hfsk xoxbghpAKIA")), max_size=300))
def test_the_shape_prefilter_passes_whatever_secret_shape_finds(text: str) -> None:
    from specops.redact import may_hold_shapes

    if secret_shape(text) is not None:
        assert may_hold_shapes(text.encode())
