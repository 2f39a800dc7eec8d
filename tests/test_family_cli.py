"""A model folder in model.id, through the real command line: it is the model that trains.

Before the family table, `caption-wizard run recipes/demo-shapes.yaml model.id=DIR` finished
"completed" having trained the built-in demo model (the recipe's model.source: demo won). Now the
source follows the id; a source that contradicts the id, and an architecture outside the table, exit
2 naming what is wrong; model.trust_remote_code is the explicit opt-in for a model's own code.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import ROOT, run_cli
from tests.train_support import events, only_run, train_env

DEMO = str(ROOT / "recipes" / "demo-shapes.yaml")


@pytest.mark.slow
def test_model_id_folder_on_the_demo_recipe_trains_that_folders_model(tiny_family, tmp_path):
    folder = tiny_family("llava")
    runs = tmp_path / "runs"
    proc = run_cli("run", DEMO, f"model.id={folder}", "train.max_steps=1", "data.max_samples=4",
                   "train.batch_size=2", "--plain", "--runs-dir", str(runs), cwd=tmp_path, env=train_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = only_run(runs)
    start = next(e for e in events(run) if e["type"] == "start")
    assert start["model"] == str(folder)  # not demo/tiny-qwen2-vl-shapes
    lock = json.loads((run / "lock.json").read_text())
    assert lock["model"]["path"] == str(folder) and lock["model"]["source"] == "local"
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(folder)
    assert adapter["target_modules"].startswith(r"^(?:model\.language_model\.")  # anchored at the language model

    export = run_cli("export", str(run), "--merge", cwd=tmp_path, env=train_env())
    assert export.returncode == 0, export.stderr[-2000:]
    assert "vllm serve" in export.stdout and "AutoModelForImageTextToText" in export.stdout
    merged = run / "export-merged"
    assert json.loads((merged / "config.json").read_text())["model_type"] == "llava"
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(merged)  # the merged folder loads in transformers
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert not any("lora" in n for n, _ in model.named_parameters())


def test_a_model_source_that_contradicts_the_model_id_exits_2_naming_both(tiny_family, tmp_path):
    folder = tiny_family("gemma3")
    proc = run_cli("run", DEMO, f"model.id={folder}", "model.source=demo", "--runs-dir", str(tmp_path / "runs"),
                   cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "model.source = demo contradicts model.id" in proc.stderr and str(folder) in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def test_an_architecture_outside_the_table_exits_2_naming_it_and_the_supported_list(tiny_family, tmp_path):
    folder = tmp_path / "my-minicpm"
    shutil.copytree(tiny_family("llava"), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "minicpmv"}))
    proc = run_cli("run", DEMO, f"model.id={folder}", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "model_type 'minicpmv'" in proc.stderr and "gemma3" in proc.stderr and "florence2" in proc.stderr
    assert "model.trust_remote_code" in proc.stderr  # the way out, named
    assert "Traceback" not in proc.stderr and not list((tmp_path / "runs").glob("*"))  # no run folder


REMOTE_CODE = '''
from transformers import LlavaConfig, LlavaForConditionalGeneration


class TinyRemoteConfig(LlavaConfig):
    model_type = "tinyremote"


class TinyRemoteModel(LlavaForConditionalGeneration):
    config_class = TinyRemoteConfig
'''


def test_trust_remote_code_is_an_explicit_opt_in_with_a_warning(tiny_family, tmp_path):
    """A model that ships its own code (here a LLaVA subclass in the folder) is refused without the
    opt-in and trains with it, on the generic path, after a warning."""
    from tests.families_support import examples, recipe
    from wizard.errors import UserError
    from wizard.preflight import check_model_folder
    from wizard.train.load import load_model

    folder = tmp_path / "remote"
    shutil.copytree(tiny_family("llava"), folder)
    (folder / "tiny_remote.py").write_text(REMOTE_CODE)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="tinyremote", architectures=["TinyRemoteModel"],
                  auto_map={"AutoConfig": "tiny_remote.TinyRemoteConfig",
                            "AutoModelForImageTextToText": "tiny_remote.TinyRemoteModel"})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="model_type 'tinyremote' is not a family"):
        load_model(recipe(folder), folder, for_training=True, device="cpu")
    trusted = recipe(folder, model={"trust_remote_code": True})
    said = []
    check_model_folder(trusted, folder, warn=said.append)
    assert said and "trust_remote_code is on" in said[0] and str(folder) in said[0]
    model, processor = load_model(trusted, folder, for_training=True, device="cpu")
    assert type(model.get_base_model()).__name__ == "TinyRemoteModel"
    from wizard.chat import resolve_prompt
    from wizard.train.collate import build_dataset, collator_for
    from wizard.train.trainer import sliced_loss

    fam = model.wizard_plan.family
    data = build_dataset(examples(), processor, resolve_prompt(trusted, fam), max_target_length=16,
                         loader=lambda e: e.image, family=fam)
    loss, _ = sliced_loss(model, collator_for(processor, data)(list(data.items)))
    loss.backward()
    assert any(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


def test_model_source_follows_the_id_when_left_out_or_when_only_the_id_is_overridden(tmp_path):
    from wizard.errors import UserError
    from wizard.recipe import apply_overrides, load_recipe, recipe_from_dict

    def source(model):
        return recipe_from_dict({"name": "t", "model": model, "data": {"dataset": "x"}}).model.source

    (tmp_path / "m").mkdir()
    assert source({"id": str(tmp_path / "m")}) == "local"
    assert source({"id": "./models/mine"}) == "local"
    assert source({"id": "LLM-Research/gemma-3-4b-it"}) == "modelscope"
    assert source({"id": "demo/tiny-qwen2-vl-shapes"}) == "demo"
    demo = load_recipe(DEMO)
    assert apply_overrides(demo, [f"model.id={tmp_path / 'm'}"]).model.source == "local"
    assert apply_overrides(demo, ["model.id=OpenGVLab/InternVL3-1B-hf"]).model.source == "modelscope"
    with pytest.raises(UserError, match="model.source = modelscope contradicts model.id = '/nowhere/x'"):
        source({"id": "/nowhere/x", "source": "modelscope"})
