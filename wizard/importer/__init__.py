"""`caption-wizard import SOURCE --out recipes/NAME.yaml`: a recipe from another tool's training setup.

    caption-wizard import examples/train/multimodal/caption.sh --out recipes/coco.yaml   # ms-swift script
    caption-wizard import "swift sft --model Qwen/Qwen2-VL-2B-Instruct ..." --out recipes/mine.yaml
    caption-wizard import output/v0-20250101/args.json --out recipes/mine.yaml           # ms-swift output
    caption-wizard import qwen2vl_lora_sft.yaml --dataset-info data/dataset_info.json --out recipes/lf.yaml

SOURCE is read into a flat {key: value} dict (`swift sft` flags, args.json keys, LLaMA-Factory YAML
keys), then each known key is translated into a recipe setting. Keys the source did not set take
that tool's own default (what it trained with), not caption-wizard's. Every source key that has no
recipe equivalent is reported with the reason, one line each. The recipe is validated by
wizard.recipe before it is written, and never replaces a file unless --force.

May import: wizard.errors, recipe, catalog; nothing of the front end (wizard.commands.import_recipe prints).
"""

from __future__ import annotations

from pathlib import Path

from wizard.errors import UserError
from wizard.importer.llamafactory import from_llamafactory
from wizard.importer.mapping import Imported, read_json, read_text
from wizard.importer.swift import from_swift_args, from_swift_command, swift_command_in

__all__ = ["Imported", "build_recipe", "read_source"]


# ----------------------------------------------------------------------------- reading sources
def read_source(source: str, dataset_info: str | None = None) -> Imported:
    """Read SOURCE (a file or a `swift sft ...` command line) and translate it."""
    path = Path(source).expanduser()
    if path.is_file():
        text = read_text(path)
        if path.suffix == ".json":
            data = read_json(text, path)
            return from_swift_args(data, "ms-swift args.json", base_dir=path.parent)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise UserError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
            if not isinstance(data, dict):
                raise UserError(f"{path}: a LLaMA-Factory training YAML is a mapping of settings")
            if "schema_version" in data and "tuning" in data:
                raise UserError(f"{path} is already a caption-wizard recipe",
                                hint=f"replay it with: caption-wizard run {path}")
            return from_llamafactory(data, path, dataset_info)
        return from_swift_command(swift_command_in(text, str(path)), base_dir=path.parent)
    if "swift" in source.split()[:3] or source.lstrip().startswith("--"):
        return from_swift_command(swift_command_in(source, "the command line"), base_dir=Path.cwd())
    raise UserError(f"{source}: no such file, and not a `swift sft ...` command line",
                    hint="SOURCE is a shell script or command holding `swift sft`, an ms-swift args.json, "
                         "or a LLaMA-Factory training YAML")


# ----------------------------------------------------------------------------- command
def build_recipe(imp: Imported, name: str, source: str):
    """The validated Recipe (UserError naming the source key when a value is out of range)."""
    from wizard.recipe import recipe_from_dict

    imp.recipe["name"] = name
    return recipe_from_dict(imp.recipe, f"recipe imported from {source}")
