"""`caption-wizard serve RUN_OR_EXPORT`: an OpenAI-compatible caption server (wizard.serve builds the app
and the vLLM command; this checks the flags, loads the model and serves)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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
    policy = image_policy(args)
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

        from wizard.serve.app import TransformersEngine, create_app
    except ModuleNotFoundError as e:
        raise UserError(f"serve needs {e.name}, which is not installed",
                        hint="pip install 'caption-wizard[serve]' (FastAPI + uvicorn)") from None

    from wizard.inference import load_captioner

    with console_err.status(f"loading {args.source}...", spinner="dots"):
        captioner = load_captioner(args.source, progress=RichProgress())
    name = args.model_name or default_name(args.source)
    served = TransformersEngine(captioner, max_batch_size=args.max_batch_size, wait_s=args.batch_wait_ms / 1000)
    app = create_app(served, model_name=name, api_key=api_key, max_body_bytes=policy.max_bytes,
                     max_image_pixels=policy.max_pixels, image_policy=policy)
    where = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/v1"
    console.print(f"serving {name} ({captioner.description}) at {where} — engine transformers, "
                  f"batches of up to {args.max_batch_size} (wait {args.batch_wait_ms:g} ms), "
                  f"{'API key required' if api_key else 'no API key'}; {_policy_line(policy)}; Ctrl-C stops",
                  soft_wrap=True, markup=False)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        served.close()
    return 0


def image_policy(args):
    """The ImagePolicy of serve's flags (UserError for a bad value, before the model loads)."""
    from wizard.serve.images import FETCH_TIMEOUT_S, ImagePolicy, parse_networks

    max_body_mb = getattr(args, "max_body_mb", None) or 32
    megapixels = getattr(args, "max_image_megapixels", None) or 50
    timeout = getattr(args, "fetch_timeout", None) or FETCH_TIMEOUT_S
    if max_body_mb <= 0 or megapixels <= 0 or timeout <= 0:
        raise UserError("--max-body-mb, --max-image-megapixels and --fetch-timeout must be above 0")
    try:
        networks = parse_networks(getattr(args, "allow_url_network", None))
    except ValueError as e:
        raise UserError(str(e), hint="a network in CIDR form (10.0.0.0/8, fd00::/8) or one address") from None
    root = getattr(args, "image_root", None)
    if root is not None:
        real = Path(os.path.realpath(Path(root).expanduser()))
        if not real.is_dir():
            raise UserError(f"--image-root {root}: no such folder",
                            hint="the folder whose files clients may name (paths relative to it)")
        root = real
    return ImagePolicy(max_bytes=int(max_body_mb * 2**20), max_pixels=int(megapixels * 1e6), image_root=root,
                       allow_private=bool(getattr(args, "allow_private_urls", False)), networks=networks,
                       timeout_s=float(timeout))


def _policy_line(policy) -> str:
    urls = ("any URL (--allow-private-urls)" if policy.allow_private else "public URLs"
            + (" and " + ", ".join(map(str, policy.networks)) if policy.networks else ""))
    files = f"files under {policy.image_root}" if policy.image_root else "no local files"
    return f"images: data URIs, {urls}, {files}"


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
