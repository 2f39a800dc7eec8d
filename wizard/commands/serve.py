"""`caption-wizard serve RUN_OR_EXPORT`: an OpenAI-compatible caption server (wizard.serve builds the app
and the vLLM command; this checks the flags, loads the model and serves)."""

from __future__ import annotations

import os
import subprocess

from wizard.errors import UserError
from wizard.serve import API_KEY_ENV, check_bind, default_name, pick_engine


def cmd_serve(args) -> int:
    from wizard.console import console, console_err
    from wizard.ui.progress import RichProgress

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    check_bind(args.host, api_key)
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: a port number 1..65535")
    if args.max_batch_size < 1:
        raise UserError(f"--max-batch-size {args.max_batch_size}: at least 1 (1: no batching)")
    if args.batch_wait_ms < 0:
        raise UserError(f"--batch-wait-ms {args.batch_wait_ms}: not negative")
    engine = pick_engine(args.engine)
    if engine == "vllm":
        try:
            return serve_vllm(args, api_key, console)
        except UserError as e:
            if args.engine == "vllm":
                raise
            console_err.print(f"[yellow]not using vLLM:[/] {e.message}; serving with transformers", soft_wrap=True)
    try:
        import uvicorn

        from wizard.serve.app import MAX_BODY_BYTES, MAX_IMAGE_PIXELS, TransformersEngine, create_app
    except ModuleNotFoundError as e:
        raise UserError(f"serve needs {e.name}, which is not installed",
                        hint="pip install 'caption-wizard[serve]' (FastAPI + uvicorn)") from None

    from wizard.inference import load_captioner

    with console_err.status(f"loading {args.source}...", spinner="dots"):
        captioner = load_captioner(args.source, progress=RichProgress())
    name = args.model_name or default_name(args.source)
    served = TransformersEngine(captioner, max_batch_size=args.max_batch_size, wait_s=args.batch_wait_ms / 1000)
    app = create_app(served, model_name=name, api_key=api_key,
                     max_body_bytes=int((args.max_body_mb or MAX_BODY_BYTES / 2**20) * 2**20),
                     max_image_pixels=int((args.max_image_megapixels or MAX_IMAGE_PIXELS / 1e6) * 1e6))
    where = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/v1"
    console.print(f"serving {name} ({captioner.description}) at {where} — engine transformers, "
                  f"batches of up to {args.max_batch_size} (wait {args.batch_wait_ms:g} ms), "
                  f"{'API key required' if api_key else 'no API key'}; Ctrl-C stops", soft_wrap=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        served.close()
    return 0


def serve_vllm(args, api_key: str | None, console) -> int:
    from wizard.ui.progress import RichProgress
    from wizard.serve.vllm import vllm_installed, vllm_plan

    plan = vllm_plan(args.source, host=args.host, port=args.port, api_key=api_key,
                     model_name=args.model_name, progress=RichProgress())
    console.print("the equivalent vLLM command:", highlight=False)
    console.print(plan.shown(), highlight=False, soft_wrap=True, markup=False)
    for note in plan.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    if not vllm_installed():
        raise UserError("vLLM is not installed here, so the command above was not started",
                        hint="pip install vllm (Linux with a CUDA GPU) and run it again, or use --engine "
                             "transformers")
    env = dict(os.environ, **({"VLLM_API_KEY": api_key} if api_key else {}))
    try:
        return subprocess.call(plan.argv, env=env)
    except KeyboardInterrupt:
        return 130
