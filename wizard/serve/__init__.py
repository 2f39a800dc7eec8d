"""An OpenAI-compatible caption server (`caption-wizard serve RUN_OR_EXPORT`, wizard.commands.serve).

    caption-wizard serve runs/demo-shapes-20250101-120000                  # http://127.0.0.1:8000/v1
    caption-wizard serve runs/NAME/export-merged --engine vllm              # prints and runs `vllm serve ...`
    caption-wizard serve runs/NAME --host 0.0.0.0 --api-key "$KEY"         # other machines: a key is required

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(model="NAME", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}]}])

Engines: transformers (built in; concurrent requests are batched, see batching.py) and vLLM when it is
installed (`--engine vllm`; auto picks it when installed and a CUDA GPU is present). The app itself is
in app.py; image reading and its limits in images.py.

What the server reads for a client (images.py has the details): data URIs; http(s) URLs whose host
resolves to public addresses only (--allow-private-urls, or --allow-url-network CIDR for chosen
networks, lets internal ones through); local files only with --image-root DIR, and only inside it.

May import: fastapi/uvicorn/openai-style models (inside functions), wizard.inference, recipe, chat, rundir,
images, console (the command); never ask, dashboard, runner or train/.
"""

from __future__ import annotations


from wizard.errors import UserError

API_KEY_ENV = "CAPTION_WIZARD_API_KEY"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def check_bind(host: str, api_key: str | None) -> None:
    if host not in LOOPBACK and not api_key:
        raise UserError(f"--host {host} lets other machines reach the server: an API key is required",
                        hint=f"pass --api-key KEY (or set {API_KEY_ENV}); clients send it as a Bearer token")


def pick_engine(choice: str) -> str:
    """--engine auto: vLLM when it is installed and a CUDA GPU is there, else transformers."""
    from wizard.serve.vllm import vllm_installed

    if choice != "auto":
        return choice
    if not vllm_installed():
        return "transformers"
    import torch

    return "vllm" if torch.cuda.is_available() else "transformers"


def default_name(source) -> str:
    """The model name clients use: the run's (or export's) folder name."""
    from pathlib import Path

    from wizard.rundir import ADAPTER_DIR

    path = Path(str(source)).expanduser()
    if path.is_dir():
        return path.resolve().name if path.name != ADAPTER_DIR else path.resolve().parent.name
    return str(source)
