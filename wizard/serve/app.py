"""The OpenAI-compatible HTTP API (FastAPI): /v1/chat/completions, /v1/models, /health.

    app = create_app(TransformersEngine(captioner, max_batch_size=8, wait_s=0.01), model_name="my-run")

A request's last user message carries one `image_url` part (data URI, public http(s) URL, or a file
under --image-root: the policy is in images.py) and optionally text: the text is the instruction,
else the run's own prompt. Generation settings default to the recipe's; a request may set
temperature (0: greedy), max_tokens (or max_completion_tokens), and, as extra fields, num_beams,
repetition_penalty and do_sample.
Client mistakes answer 400 with {"error": {"message": ...}}, never 500.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request  # module level: FastAPI resolves the handlers' annotations here
from fastapi.responses import JSONResponse

from wizard.serve.images import BadRequest, ImagePolicy, read_image_url

MAX_BODY_BYTES = 32 * 2**20  # a 20 MB image as base64 is about 27 MB
MAX_IMAGE_PIXELS = 50_000_000  # a 100-megapixel image is refused before it is decoded
MAX_NEW_TOKENS = 2048  # per-request limits: one request must not hold the batch for minutes
MAX_BEAMS = 16


class TransformersEngine:
    """A caption-wizard Captioner behind a Batcher: one model, captions in batches."""

    name = "transformers"

    def __init__(self, captioner, *, max_batch_size: int = 8, wait_s: float = 0.01):
        from wizard.serve.batching import Batcher

        self.captioner = captioner
        self.generation, self.prompt = captioner.generation, captioner.prompt
        self.batcher = Batcher(self._caption, max_batch_size=max_batch_size, wait_s=wait_s)

    def _caption(self, images: list, generation, prompt: str) -> list[dict]:
        """Runs in the batcher's thread, which alone touches the model and the tokenizer (a fast tokenizer
        used from two threads at once can fail with "Already borrowed")."""
        captions = self.captioner.caption(images, generation, prompt, batch_size=len(images))
        return [{"caption": c, "completion_tokens": self.count_tokens(c),
                 "prompt_tokens": self.prompt_tokens(im, prompt)} for im, c in zip(images, captions)]

    def submit(self, image, generation, prompt: str):
        return self.batcher.submit(image, generation, prompt)

    def count_tokens(self, text: str) -> int:
        return len(self.captioner.processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_tokens(self, image, prompt: str) -> int:
        """Text tokens of the chat prompt plus the image's tokens after the processor's resize."""
        from wizard.chat import prompt_text

        text = self.count_tokens(prompt_text(self.captioner.processor, prompt))
        return text + _image_tokens(self.captioner.processor, image)

    def stats(self) -> dict:
        s = self.batcher.stats
        return {"requests": s.requests, "batches": s.batches, "largest_batch": s.largest_batch,
                "waiting": self.batcher.waiting, "max_batch_size": self.batcher.max_batch_size}

    def close(self) -> None:
        self.batcher.close()


def _image_tokens(processor, image) -> int:
    from wizard.families import for_processor

    if for_processor(processor).image_tokens != "grid":  # the processor's own count (what vLLM uses)
        try:
            count = processor._get_num_multimodal_tokens(image_sizes=[[image.height, image.width]])
            return int(count["num_image_tokens"][0])
        except (AttributeError, KeyError, TypeError, ValueError):
            return 1 if type(processor).__name__ == "MllamaProcessor" else 0
    ip = getattr(processor, "image_processor", None)
    size = getattr(ip, "size", None) or {}
    patch, merge = getattr(ip, "patch_size", 14), getattr(ip, "merge_size", 2)
    try:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        h, w = smart_resize(image.height, image.width, factor=patch * merge,
                            min_pixels=size.get("shortest_edge", 3136), max_pixels=size.get("longest_edge", 12845056))
    except (ImportError, ValueError):
        return 0  # not a Qwen-VL-style processor: the count is the text's alone
    return (h // (patch * merge)) * (w // (patch * merge))


# ----------------------------------------------------------------------------- request parsing
def last_user_parts(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: a non-empty list of chat messages is required", param="messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise BadRequest("messages: no user message", param="messages")
    content = users[-1].get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        raise BadRequest("messages[].content: a string or a list of content parts", param="messages")
    return content


def image_and_prompt(parts: list[dict]) -> tuple[str, str | None]:
    """(the image part's URL, the text or None) of one user message."""
    urls = []
    for p in parts:
        if p.get("type") == "image_url":
            ref = p.get("image_url")
            urls.append(ref.get("url") if isinstance(ref, dict) else ref)
    if not urls:
        raise BadRequest("no image: the last user message needs an image_url content part "
                         '({"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}})',
                         param="messages")
    if len(urls) > 1:
        raise BadRequest(f"{len(urls)} images in one message: send one image per request "
                         "(concurrent requests are batched by the server)", param="messages")
    text = " ".join(p.get("text", "") for p in parts if p.get("type") == "text" and isinstance(p.get("text"), str))
    return urls[0], text.strip() or None


def generation_for(body: dict, base):
    """The recipe's GenerationSpec with the request's settings applied (BadRequest for bad values)."""
    from pydantic import ValidationError

    from wizard.recipe import GenerationSpec

    changes: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        changes["max_new_tokens"] = max_tokens
    for key in ("num_beams", "repetition_penalty", "do_sample"):
        if body.get(key) is not None:
            changes[key] = body[key]
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature < 0:
            raise BadRequest(f"temperature {temperature!r}: a number >= 0 (0: greedy)", param="temperature")
        if temperature == 0:
            changes.setdefault("do_sample", False)
        else:
            changes["temperature"] = temperature
            changes.setdefault("do_sample", True)
    if body.get("n", 1) != 1:
        raise BadRequest("n: only one caption per request (n=1)", param="n")
    if body.get("stream"):
        raise BadRequest("stream: streaming is not supported; send stream=false", param="stream")
    for field, key, most in (("max_tokens", "max_new_tokens", MAX_NEW_TOKENS), ("num_beams", "num_beams", MAX_BEAMS)):
        value = changes.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > most:
            raise BadRequest(f"{field} {value}: at most {most} on this server", param=field)
    try:
        return GenerationSpec.model_validate({**base.model_dump(), **changes})
    except ValidationError as e:
        err = e.errors()[0]
        field = {"max_new_tokens": "max_tokens"}.get(str(err["loc"][0]), str(err["loc"][0]))
        raise BadRequest(f"{field} {err.get('input')!r}: {err['msg']}", param=field) from None


# ----------------------------------------------------------------------------- app
def error_body(message: str, status: int, param: str | None = None) -> dict:
    kind = {401: "authentication_error", 404: "not_found_error", 500: "server_error"}.get(status,
                                                                                        "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def create_app(engine, *, model_name: str, api_key: str | None = None, max_body_bytes: int = MAX_BODY_BYTES,
               max_image_pixels: int = MAX_IMAGE_PIXELS, image_policy: ImagePolicy | None = None):
    """`image_policy`: which URLs and files the server reads (wizard/serve/images.py); by default
    public http(s) URLs and data URIs, no local files, the body and pixel limits above."""
    policy = image_policy or ImagePolicy(max_bytes=max_body_bytes, max_pixels=max_image_pixels)
    app = FastAPI(title="caption-wizard", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())

    def fail(e: BadRequest) -> JSONResponse:
        return JSONResponse(error_body(e.message, e.status, e.param), status_code=e.status)

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), api_key.encode()):
            raise BadRequest("missing or wrong API key: send Authorization: Bearer <key>", status=401)

    async def read_body(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            too_big = True
            async for _ in request.stream():  # drain it, so the client reads our answer
                pass
        else:
            chunks, size, too_big = [], 0, False
            async for chunk in request.stream():
                size += len(chunk)
                too_big = too_big or size > max_body_bytes
                if not too_big:
                    chunks.append(chunk)
        if too_big:
            raise BadRequest(f"request body larger than {max_body_bytes / 2**20:g} MiB (serve --max-body-mb)")
        try:
            body = json.loads(b"".join(chunks))
        except ValueError:
            raise BadRequest("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name, "engine": engine.name, **engine.stats()}

    @app.get("/v1/models")
    async def models(request: Request):
        try:
            check_key(request)
        except BadRequest as e:
            return fail(e)
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                            "owned_by": "caption-wizard"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            check_key(request)
            body = await read_body(request)
            if body.get("model") not in (None, model_name):
                raise BadRequest(f"model {body.get('model')!r} is not served here; this server serves "
                                 f"{model_name!r} (GET /v1/models)", status=404, param="model")
            generation = generation_for(body, engine.generation)
            url, prompt = image_and_prompt(last_user_parts(body))
            image = await asyncio.to_thread(read_image_url, url, policy)
        except BadRequest as e:
            return fail(e)
        prompt = prompt or engine.prompt
        try:
            result = await asyncio.wrap_future(engine.submit(image, generation, prompt))
        except Exception as e:  # the model failed (out of memory...): say so; the server carries on
            return JSONResponse(error_body(f"captioning failed: {type(e).__name__}: {e}", 500), status_code=500)
        caption, completion, prompt_tokens = result["caption"], result["completion_tokens"], result["prompt_tokens"]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": caption},
                         "finish_reason": "length" if completion >= generation.max_new_tokens else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                      "total_tokens": prompt_tokens + completion},
        }

    return app
