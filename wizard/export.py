"""`caption-wizard export RUN_DIR [--merge] [--out DIR] [--force]`: take the weights to a server.

    caption-wizard export runs/demo-shapes-20250101-120000            # RUN_DIR/export: the adapter
    caption-wizard export runs/demo-shapes-20250101-120000 --merge    # RUN_DIR/export-merged: full model

Without --merge: the PEFT adapter folder with the processor (small; needs the base model to run).
With --merge: a complete Hugging Face model folder (safetensors + processor), the LoRA merged into an
unquantized copy of the base (after QLoRA too: the base is reloaded without 4-bit quantization, in
its own dtype, and the adapter merged into it). Loadable with AutoModelForImageTextToText and
AutoProcessor, servable with vLLM. Both carry the run's recipe.yaml (prompt and generation
settings), so `caption-wizard caption EXPORT_DIR IMAGE` asks what training taught.
The folder is written under a temporary name and renamed into place; an existing one is replaced
only with --force, and only when it is an earlier export (it holds EXPORT_MARKER): --force never
deletes a folder caption-wizard did not write.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from wizard.errors import UserError

EXPORT_MARKER = "caption-wizard-export.json"  # written into every export: what --force may replace


def export_run(run_dir, merge: bool = False, out=None, force: bool = False, *, progress=None) -> Path:
    """Write the run's adapter (or, with `merge`, the merged model) to `out`; returns the folder."""
    from wizard.inference import EXPORT_RECIPE, has_adapter_files, passive_cpu_threads, run_adapter_dir
    from wizard.recipe import load_recipe
    from wizard.fsutil import check_writable_dir, unwritable_error
    from wizard.rundir import CHECKPOINT_MARKER, RECIPE_FILE, load_run

    passive_cpu_threads()
    run_dir = Path(run_dir)
    load_run(run_dir)  # UserError unless it is a run folder
    recipe = load_recipe(run_dir / RECIPE_FILE)
    adapter = run_adapter_dir(run_dir)
    out = Path(out) if out else run_dir / ("export-merged" if merge else "export")
    _check_out(out, run_dir, force)

    check_writable_dir(out.parent, f"--out {out}", hint="choose a writable folder with --out DIR")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        if merge and has_adapter_files(adapter):
            _write_merged(recipe, run_dir, adapter, tmp, progress)
        else:  # the adapter as it is (for a full fine-tune, adapter/ already is a full model folder)
            shutil.copytree(adapter, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(CHECKPOINT_MARKER))
            _ensure_processor(recipe, run_dir, tmp, progress)
        shutil.copy2(run_dir / RECIPE_FILE, tmp / EXPORT_RECIPE)
        (tmp / EXPORT_MARKER).write_text(json.dumps({"run": str(run_dir.resolve()), "merged": merge}) + "\n",
                                         encoding="utf-8")
        _readable_by_all(tmp)
        _replace_dir(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise unwritable_error(out, e, f"--out {out}", hint="free some space, or choose another folder with --out DIR") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _readable_by_all(folder: Path) -> None:
    """0755 folders, 0644 files: a server under another account can load the export (the temporary
    folder and atomically written files start as 0700/0600)."""
    folder.chmod(0o755)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def _check_out(out: Path, run_dir: Path, force: bool) -> None:
    from wizard.rundir import ADAPTER_DIR, CHECKPOINTS_DIR

    o, r = out.resolve(), run_dir.resolve()
    if o == r or r.is_relative_to(o) or o.is_relative_to(r / ADAPTER_DIR) or o.is_relative_to(r / CHECKPOINTS_DIR):
        raise UserError(f"--out {out}: would replace the run's own files", hint="choose a new folder")
    if Path.cwd().resolve().is_relative_to(o) or o == o.parent:
        raise UserError(f"--out {out}: would replace the current folder (or one above it)",
                        hint="choose a new folder, e.g. --out exports/NAME")
    if out.exists() or out.is_symlink():
        if not out.is_dir() or out.is_symlink():
            raise UserError(f"--out {out} exists and is not a folder", hint="choose a new folder with --out")
        if not force:
            raise UserError(f"{out} already exists; not overwriting it",
                            hint="pass --force to replace it, or choose another folder with --out")
        if not (out / EXPORT_MARKER).is_file():
            raise UserError(f"--out {out}: --force replaces only an earlier caption-wizard export, and this "
                            f"folder is not one (no {EXPORT_MARKER} in it); not deleting it",
                            hint="choose a new folder with --out, or remove that folder yourself")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out`; an existing `out` is moved aside first and removed after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _base_path(recipe, run_dir: Path, progress) -> Path:
    from wizard.inference import pinned_revision, resolve_base

    return resolve_base(recipe.model, pinned_revision(run_dir), progress)


def _ensure_processor(recipe, run_dir: Path, folder: Path, progress) -> None:
    """Save the processor into `folder` when the adapter came without one."""
    from wizard.inference import PROCESSOR_FILES, load_processor

    if not any((folder / f).is_file() for f in PROCESSOR_FILES):
        load_processor(_base_path(recipe, run_dir, progress), data_spec=recipe.data).save_pretrained(str(folder))


def _write_merged(recipe, run_dir: Path, adapter: Path, folder: Path, progress) -> None:
    """Base (unquantized, its own dtype, on the CPU) + adapter -> merge_and_unload -> save_pretrained."""
    from peft import PeftModel

    from wizard.inference import load_processor
    from wizard.model import load_base, plan_model

    base_path = _base_path(recipe, run_dir, progress)
    # On the CPU: merging needs no GPU, and a GPU busy training keeps its memory. PEFT computes the
    # LoRA delta in float32 for 16-bit weights on the CPU, then stores it in the weights' dtype.
    model = load_base(plan_model(recipe, base_path, purpose="merge"))
    with warnings.catch_warnings():  # peft asks transformers a deprecated question: not the user's concern
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.save_pretrained(str(folder))
    load_processor(adapter, base_path, data_spec=recipe.data).save_pretrained(str(folder))
    if not any(folder.glob("*.safetensors")):
        raise RuntimeError(f"merged model in {folder} was not saved as safetensors")


# ----------------------------------------------------------------------------- how to use it
def _max_model_len(recipe) -> int:
    """Room for one image's tokens, the prompt and the caption, rounded up to a power of two."""
    from wizard.catalog import model_info

    need = recipe.data.max_pixels // model_info(recipe.model.id).pixels_per_token + 128 + recipe.generation.max_new_tokens
    n = 512
    while n < need:
        n *= 2
    return n


def usage_text(folder: Path, merged: bool, recipe) -> str:
    from wizard.chat import resolve_prompt

    name = recipe.name
    prompt = json.dumps(resolve_prompt(recipe), ensure_ascii=False)
    gen = recipe.generation
    length = _max_model_len(recipe)
    request = (
        "curl http://localhost:8000/v1/chat/completions -H 'Content-Type: application/json' -d '{\n"
        f'    "model": "{name}",\n'
        '    "messages": [{"role": "user", "content": [\n'
        '      {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,'
        "'\"$(base64 -w0 photo.jpg)\"'" + '"}},\n'
        f'      {{"type": "text", "text": {prompt}}}]}}],\n'
        f'    "max_tokens": {gen.max_new_tokens}, "temperature": {gen.temperature if gen.do_sample else 0}, '
        f'"repetition_penalty": {gen.repetition_penalty}}}\''
    )
    if merged:
        serve = (f"vllm serve {folder} --served-model-name {name} --max-model-len {length} "
                 "--limit-mm-per-prompt '{\"image\": 1}'")
        python = (
            "from transformers import AutoModelForImageTextToText, AutoProcessor\n"
            f'model = AutoModelForImageTextToText.from_pretrained("{folder}", dtype="auto")\n'
            f'processor = AutoProcessor.from_pretrained("{folder}")'
        )
    else:
        base = recipe.model.id
        prefix = "VLLM_USE_MODELSCOPE=True " if recipe.model.source == "modelscope" else ""
        cfg = _read_json(folder / "adapter_config.json")
        if recipe.model.source != "modelscope":
            base = cfg.get("base_model_name_or_path") or base
        rank = max(8, int(cfg.get("r") or recipe.tuning.lora.rank))
        serve = (f"{prefix}vllm serve {base} --enable-lora --lora-modules {name}={folder} "
                 f"--max-lora-rank {rank} --max-model-len {length} --limit-mm-per-prompt '{{\"image\": 1}}'")
        python = (
            "from peft import PeftModel\n"
            "from transformers import AutoModelForImageTextToText, AutoProcessor\n"
            f'base = AutoModelForImageTextToText.from_pretrained("{base}", dtype="auto")\n'
            f'model = PeftModel.from_pretrained(base, "{folder}")\n'
            f'processor = AutoProcessor.from_pretrained("{folder}")'
        )
    return (f"Serve it with vLLM (OpenAI-compatible API on port 8000):\n  {serve}\n\n"
            f"Ask for a caption:\n  {request}\n\n"
            f"Load it in Python:\n  " + python.replace("\n", "\n  ") + "\n\n"
            f"Caption with caption-wizard:\n  caption-wizard caption {folder} IMAGE_OR_FOLDER...")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
