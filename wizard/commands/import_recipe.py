"""`caption-wizard import SOURCE --out recipes/NAME.yaml`: a recipe from a `swift sft` command line, an
ms-swift args.json or a LLaMA-Factory YAML (wizard.importer maps it; this says what was and was not)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from wizard.errors import UserError
from wizard.importer import build_recipe, read_source


def cmd_import(args) -> int:
    from wizard.console import console
    from wizard.recipe import save_recipe

    out = Path(args.out)
    if out.suffix not in (".yaml", ".yml"):
        raise UserError(f"--out {out}: a recipe is a .yaml file", hint="e.g. --out recipes/mine.yaml")
    if out.exists() and not args.force:
        raise UserError(f"{out} already exists; not overwriting it",
                        hint="choose another name with --out, or pass --force to replace it")
    name = re.sub(r"[^A-Za-z0-9._-]", "-", out.stem).lstrip("-._") or "imported"
    imp = read_source(args.source, getattr(args, "dataset_info", None))
    recipe = build_recipe(imp, name, args.source)
    console.print(f"read a {imp.source}: {len(imp.mapped)} setting(s) mapped, "
                  f"{len(imp.unmapped)} source key(s) not mapped", highlight=False)
    for key, what in imp.mapped:
        console.print(f"  mapped      {key} -> {what}", highlight=False, soft_wrap=True, markup=False)
    for key, value, why in sorted(imp.unmapped, key=lambda u: u[0]):
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
        console.print(f"  not mapped  {key} {shown[:60]}: {why}", highlight=False, soft_wrap=True, markup=False)
    save_recipe(recipe, out, overwrite=args.force)
    console.print(f"wrote {out}; check it with: caption-wizard run {out} --dry-run", highlight=False,
                  soft_wrap=True)
    return 0
