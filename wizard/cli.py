"""caption-wizard command line.

    caption-wizard                       main menu
    caption-wizard new [--out recipes/NAME.yaml] [--defaults]
    caption-wizard run [RECIPE] [KEY=VALUE ...] [--dry-run] [--plain]   (no RECIPE: lists ./recipes)
    caption-wizard resume [RUN_DIR] [--plain]
    caption-wizard runs
    caption-wizard watch [RUN_DIR | --last] [--plain]   (no RUN_DIR: choose from ./runs)
    caption-wizard download MODEL_ID [--revision R] [--dataset]
    caption-wizard caption RUN_DIR_OR_MODEL IMAGE...   (or: caption --last IMAGE...)
    caption-wizard eval [RUN_DIR | --last] [--limit N]
    caption-wizard export [RUN_DIR | --last] [--merge] [--out DIR]
    caption-wizard data RECIPE_OR_PATH [KEY=VALUE ...]
    caption-wizard import SOURCE --out recipes/NAME.yaml [--force]
    caption-wizard compare RUN_DIR RUN_DIR... [--out PNG]
    caption-wizard serve RUN_OR_EXPORT [--host H] [--port P] [--api-key K] [--engine vllm]

Start-up must stay instant: this module imports only the standard library at
import time; each command imports what it needs (torch only where it trains or
generates). tests/test_wizard_pty.py checks sys.modules.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> "module:function"; the function takes the parsed args and returns an exit status.
COMMANDS = {
    "menu": "wizard.commands.menu:main_menu",
    "new": "wizard.commands.new:cmd_new",
    "run": "wizard.commands.run:cmd_run",
    "resume": "wizard.commands.resume:cmd_resume",
    "runs": "wizard.commands.runs:cmd_runs",
    "watch": "wizard.commands.watch:cmd_watch",
    "download": "wizard.commands.download:cmd_download",
    "caption": "wizard.commands.caption:cmd_caption",
    "eval": "wizard.commands.eval:cmd_eval",
    "export": "wizard.commands.export:cmd_export",
    "data": "wizard.commands.data:cmd_data",
    "import": "wizard.commands.import_recipe:cmd_import",
    "compare": "wizard.commands.compare:cmd_compare",
    "serve": "wizard.commands.serve:cmd_serve",
}


def build_parser() -> argparse.ArgumentParser:
    from wizard import __version__

    p = argparse.ArgumentParser(
        prog="caption-wizard",
        description="Fine-tune your own image-captioning model. With no command: the main menu.",
    )
    p.add_argument("--version", action="version", version=f"caption-wizard {__version__}")
    p.set_defaults(run_command=run_command)  # the menu runs its entries through it (commands/menu.py)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("new", help="answer a few questions, save a recipe, offer to start it")
    s.add_argument("--out", help="where to save the recipe (default recipes/NAME.yaml)")
    s.add_argument("--defaults", action="store_true",
                   help="no questions: write this machine's default recipe")
    s.add_argument("--force", action="store_true", help="overwrite an existing recipe file")

    s = sub.add_parser("run", help="replay a recipe with no questions")
    s.add_argument("recipe", nargs="?", help="recipe YAML file (e.g. recipes/demo-shapes.yaml); none: list ./recipes")
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="optional dotted overrides, e.g. train.learning_rate=2e-4")
    s.add_argument("--dry-run", action="store_true",
                   help="validate, apply overrides, print the recipe, hash and memory estimate")
    s.add_argument("--plain", action="store_true", help="plain lines instead of the live dashboard")
    s.add_argument("--runs-dir", default=None, help="where run directories go (default ./runs)")
    s.add_argument("--print-launch", choices=["slurm"], default=None,
                   help="print a Slurm batch script for this recipe (srun + torchrun) instead of running")

    s = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    s.add_argument("run_dir", nargs="?", help="run directory; none: choose from a list")
    s.add_argument("--plain", action="store_true", help="plain lines instead of the live dashboard")
    s.add_argument("--runs-dir", default=None, help="where run directories are (default ./runs)")
    s.add_argument("--allow-resize", action="store_true",
                   help="resume with a different number of processes (changes the global batch)")

    s = sub.add_parser("runs", help="table of runs")
    s.add_argument("--runs-dir", default=None, help="where run directories are (default ./runs)")

    s = sub.add_parser("watch", help="attach the dashboard to a running or finished run")
    s.add_argument("run_dir", nargs="?", help="run directory; none: choose from ./runs")
    s.add_argument("--last", action="store_true", help="the newest run in ./runs")
    s.add_argument("--plain", action="store_true", help="plain lines instead of the live dashboard")

    s = sub.add_parser("download", help="fetch model weights (or a dataset) from ModelScope")
    s.add_argument("model_id", help="ModelScope id, e.g. Qwen/Qwen2-VL-2B-Instruct")
    s.add_argument("--revision", default=None, help="branch, tag or commit (default master)")
    s.add_argument("--dataset", action="store_true", help="MODEL_ID is a dataset id")
    s.add_argument("--subset", default=None, help="dataset subset, e.g. coco-cn for AI-ModelScope/M3IT")

    s = sub.add_parser("caption", help="caption images with a run's adapter or a base model")
    s.add_argument("source", metavar="RUN_DIR_OR_MODEL",
                   help="a run folder (its adapter), a model folder or a ModelScope id")
    s.add_argument("images", nargs="*", metavar="IMAGE_OR_FOLDER",  # one or more: checked in fill_run_dir
                   help="image files or folders of images")
    s.add_argument("--last", action="store_true", help="caption with the newest run in ./runs (then only images)")
    s.add_argument("--num-beams", type=int, default=None, help="beam search width (default: the recipe's)")
    s.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature; giving it turns sampling on (default: greedy/beams)")
    s.add_argument("--repetition-penalty", type=float, default=None, help="default: the recipe's")
    s.add_argument("--max-new-tokens", type=int, default=None, help="longest caption (default: the recipe's)")
    s.add_argument("--prompt", default=None, help="instruction given with each image (default: the recipe's)")
    s.add_argument("--batch-size", type=int, default=8, help="images per generation batch")
    s.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    s.add_argument("--out", default=None, help="write captions.jsonl here")
    s.add_argument("--force", action="store_true", help="replace an existing --out file")

    s = sub.add_parser("eval", help="caption metrics on the held-out split, base vs tuned")
    s.add_argument("run_dir", nargs="?", help="run directory; none: choose from ./runs")
    s.add_argument("--last", action="store_true", help="the newest run in ./runs")
    s.add_argument("--limit", type=int, default=None, help="score at most N held-out images (default: all)")
    s.add_argument("--no-base", action="store_true", help="skip scoring the base model")
    s.add_argument("--out", default=None, help="write the scores here instead of RUN_DIR/eval.json")
    s.add_argument("--force", action="store_true", help="replace an existing --out file")

    s = sub.add_parser("export", help="adapter folder, or a merged model for serving")
    s.add_argument("run_dir", nargs="?", help="run directory; none: choose from ./runs")
    s.add_argument("--last", action="store_true", help="the newest run in ./runs")
    s.add_argument("--merge", action="store_true", help="merge the LoRA into a full-precision base")
    s.add_argument("--out", default=None, help="output folder (default RUN_DIR/export[-merged])")
    s.add_argument("--force", action="store_true", help="replace an existing output folder")

    s = sub.add_parser("data", help="check the data without training: format, counts, bad rows, lengths, examples")
    s.add_argument("target", metavar="RECIPE_OR_PATH", help="a recipe file, or a data folder or file")
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. data.language=zh")
    s = sub.add_parser("import", help="a recipe from a swift sft command/script, an ms-swift args.json "
                                      "or a LLaMA-Factory YAML")
    s.add_argument("source", help="file, or a quoted `swift sft ...` command line")
    s.add_argument("--out", required=True, help="where to write the recipe, e.g. recipes/NAME.yaml")
    s.add_argument("--dataset-info", default=None, help="LLaMA-Factory dataset_info.json (default: DATASET_DIR/)")
    s.add_argument("--force", action="store_true", help="overwrite an existing recipe file")

    s = sub.add_parser("compare", help="recipe differences, eval metrics and overlaid loss curves of runs")
    s.add_argument("runs", nargs="+", metavar="RUN_DIR", help="two or more run folders")
    s.add_argument("--out", default=None, help="loss-curve PNG (default compare-loss.png)")

    s = sub.add_parser("serve", help="OpenAI-compatible caption server for a run or an export",
                       description="Images a request may name: data URIs; http(s) URLs whose host resolves to "
                                   "public addresses only (checked after DNS, the connection made to the checked "
                                   "address, every redirect checked again; loopback, private, link-local and "
                                   "metadata addresses refused); local files only under --image-root. At most "
                                   "--max-body-mb bytes are read, --fetch-timeout applies, and the content must be "
                                   "an image file before it is decoded.")
    s.add_argument("source", metavar="RUN_OR_EXPORT", help="a run folder or an exported model folder")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    s.add_argument("--api-key", default=None, help="clients must send it as a Bearer token "
                                                   "(default: $CAPTION_WIZARD_API_KEY)")
    s.add_argument("--engine", choices=["auto", "transformers", "vllm"], default="auto",
                   help="auto: vLLM when installed, else transformers")
    s.add_argument("--max-batch-size", type=int, default=8, help="requests captioned together (1: no batching)")
    s.add_argument("--batch-wait-ms", type=float, default=10.0, help="how long a batch waits to fill")
    s.add_argument("--model-name", default=None, help="the model name clients use (default: the run's name)")
    s.add_argument("--max-body-mb", type=float, default=None, help="largest request body (default 32)")
    s.add_argument("--max-image-megapixels", type=float, default=None, help="largest image (default 50)")
    s.add_argument("--image-root", default=None, metavar="DIR",
                   help="clients may name image files under DIR (relative paths, or absolute ones inside it; "
                        "symlinks out of it are refused); default: no local files at all")
    s.add_argument("--allow-private-urls", action="store_true",
                   help="fetch image URLs on loopback, private and link-local addresses too (default: public "
                        "addresses only, checked after DNS and on every redirect; cloud metadata addresses only "
                        "if --allow-url-network names them)")
    s.add_argument("--allow-url-network", action="append", default=None, metavar="CIDR",
                   help="fetch image URLs in this network (e.g. 10.1.2.0/24); repeatable")
    s.add_argument("--fetch-timeout", type=float, default=None, metavar="S",
                   help="seconds to connect and between reads of an image URL, 3x in all (default 10)")

    from wizard.pick import DefaultsHelp

    for command_parser in sub.choices.values():  # every option's help says its default
        command_parser.formatter_class = DefaultsHelp
    return p


def _dispatch(command: str, args: argparse.Namespace) -> int:
    module_name, func_name = COMMANDS[command].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(args) or 0)


def run_command(command: str, argv: list[str]) -> int:
    """`caption-wizard COMMAND ARGV...` from inside the program (the menu's entries): the same parser and
    the same function, so the menu cannot drift from the command line."""
    return _dispatch(command, build_parser().parse_args([command, *argv]))


def main(argv: list[str] | None = None) -> int:
    import os

    from wizard.errors import RunFailed, UserError

    # Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning made
    # training and generation 10-100x slower. Set before any command imports torch.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    parser = build_parser()
    from wizard.pick import did_you_mean, fill_run_dir, no_recipe

    try:
        did_you_mean(list(sys.argv[1:] if argv is None else argv), _command_names(parser))
    except UserError as e:
        return _report(e)
    args, extra = parser.parse_known_args(argv)
    # Overrides may come after flags (`run R --plain train.epochs=1`): argparse stops the
    # KEY=VALUE list at the first flag, so collect the rest here.
    if args.command in ("run", "data"):
        args.overrides += [e for e in extra if "=" in e and not e.startswith("-")]
        extra = [e for e in extra if not ("=" in e and not e.startswith("-"))]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "run" and not args.recipe:
            raise no_recipe()
        fill_run_dir(args)
        return _dispatch(args.command or "menu", args)
    except UserError as e:
        return _report(e)
    except RunFailed as e:
        from wizard.console import console_err

        from rich.markup import escape

        console_err.print(f"[bold red]failed:[/] {escape(str(e))}", highlight=False)
        return 1
    except KeyboardInterrupt:
        from wizard.console import console_err

        console_err.print("\ninterrupted.")
        return 130


def _command_names(parser: argparse.ArgumentParser) -> list[str]:
    return [name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices]


def _report(e) -> int:
    from rich.markup import escape  # messages quote user input: `[/x]` must print as itself

    from wizard.console import console_err
    from wizard.fsnames import shown  # a file name that is not UTF-8 prints as caf\xe9.png

    console_err.print(f"[bold red]error:[/] {escape(shown(e.message))}", highlight=False)
    if e.hint:
        console_err.print(f"  [yellow]hint:[/] {escape(shown(e.hint))}", highlight=False)
    return e.exit_code


if __name__ == "__main__":  # python -m wizard.cli
    sys.exit(main())
