"""The command line as a newcomer meets it: typos, missing arguments, --help, --last, no third-party noise."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys

import pytest

from wizard.cli import build_parser
from wizard.errors import UserError
from wizard.pick import fill_run_dir

from .conftest import CLI, ROOT, cli_env, run_cli

KERNELS_WARNING = ("gemm_4bit_forward", "pip install kernels", "kernels-community",
                   "Setting accelerator to CPU", "publisher trust check")  # and DeepSpeed's, when the dev extra installed it


def test_a_mistyped_command_gets_a_suggestion(tmp_path):
    done = run_cli("rnu", cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown command 'rnu'" in done.stderr and "did you mean run?" in done.stderr
    assert "Traceback" not in done.stderr
    recipe = run_cli("recipes/demo-shapes.yaml", cwd=tmp_path)
    assert recipe.returncode == 2 and "caption-wizard run recipes/demo-shapes.yaml" in recipe.stderr


def test_run_without_a_recipe_lists_the_recipes_and_points_to_new(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "mine.yaml").write_text("name: x\n")
    done = run_cli("run", cwd=tmp_path)
    assert done.returncode == 2
    assert "caption-wizard run recipes/mine.yaml" in done.stderr and "caption-wizard new" in done.stderr
    empty = run_cli("run", cwd=tmp_path / "recipes")
    assert "there is none in ./recipes" in empty.stderr and "caption-wizard new" in empty.stderr
    usage = run_cli("run", "--help", cwd=tmp_path).stdout
    assert "[recipe] [KEY=VALUE ...]" in " ".join(usage.split())  # both optional in the usage line


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {name: p for a in parser._actions if isinstance(a, argparse._SubParsersAction)
            for name, p in a.choices.items()}


def test_every_flag_in_every_help_has_a_description_and_its_default():
    for name, sub in _subparsers(build_parser()).items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"`{name}` {action.option_strings or action.dest}: no description"
            if action.option_strings and action.default not in (None, False):
                assert f"default: {action.default}" in text or "default" in action.help, \
                    f"`{name}` {action.option_strings}: the default ({action.default}) is not said"


def _fake_run(root, name: str, started: str, status: str = "completed"):
    run = root / "runs" / name
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text((ROOT / "recipes" / "demo-shapes.yaml").read_text(encoding="utf-8"))
    (run / "state.json").write_text(json.dumps({"name": name, "status": status, "pid": None, "step": 4,
                                                "total_steps": 4, "started": started}))
    (run / "events.jsonl").write_text("")
    return run


def test_last_takes_the_newest_run_and_a_pipe_gets_the_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fake_run(tmp_path, "demo-shapes-20250101-120000", "2025-01-01T12:00:00")
    newest = _fake_run(tmp_path, "demo-shapes-20250102-120000", "2025-01-02T12:00:00")
    for command in ("eval", "export", "watch"):
        args = argparse.Namespace(command=command, run_dir=None, last=True)
        fill_run_dir(args)
        assert os.path.samefile(args.run_dir, newest)
    args = argparse.Namespace(command="caption", source="photo.jpg", images=["b.jpg"], last=True)
    fill_run_dir(args)  # `caption --last photo.jpg b.jpg`: both words are images
    assert os.path.samefile(args.source, newest) and args.images == ["photo.jpg", "b.jpg"]
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    with pytest.raises(UserError) as e:  # no terminal to choose on: the list and both ways to say it
        fill_run_dir(argparse.Namespace(command="eval", run_dir=None, last=False))
    assert "demo-shapes-20250102-120000" in e.value.message and "--last" in e.value.hint


def test_caption_last_takes_a_single_image_and_no_image_is_refused(tmp_path):
    """`caption --last IMAGE` (the README's form) parses with one image; with none, exit 2 saying what to pass."""
    from PIL import Image

    run = _fake_run(tmp_path, "demo-shapes-20250102-120000", "2025-01-02T12:00:00")  # no adapter/ yet
    Image.new("RGB", (32, 32), "red").save(tmp_path / "photo.png")
    one = run_cli("caption", "--last", "photo.png", cwd=tmp_path)
    assert one.returncode == 2 and "required" not in one.stderr, one.stderr
    assert "demo-shapes-20250102-120000 has no adapter yet" in one.stderr, one.stderr  # --last found the run
    none = run_cli("caption", str(run), cwd=tmp_path)
    assert none.returncode == 2 and "caption needs at least one image or folder" in none.stderr, none.stderr
    assert "Traceback" not in one.stderr + none.stderr


def test_run_names_are_never_cut_at_80_columns(tmp_path):
    long = "qwen2.5-vl-3b-coco-cn-lora-with-a-long-name-20261128-043607"
    _fake_run(tmp_path, long, "2025-01-02T12:00:00")
    _fake_run(tmp_path, "demo-shapes-20250101-120000", "2025-01-01T12:00:00")
    for columns in ("80", "120"):
        done = run_cli("runs", cwd=tmp_path, env=cli_env(COLUMNS=columns))
        assert done.returncode == 0, done.stderr
        assert long in done.stdout and "demo-shapes-20250101-120000" in done.stdout, done.stdout
        assert "completed" in done.stdout and "4/4" in done.stdout


def test_commands_without_runs_say_how_to_start_one(tmp_path):
    done = run_cli("eval", "--last", cwd=tmp_path)
    assert done.returncode == 2 and "no runs in runs/" in done.stderr and "caption-wizard run" in done.stderr


# ----------------------------------------------------------------------------- no third-party noise
def test_no_command_output_mentions_kernels_and_exports_are_readable_by_all(demo_run, shape_images, tmp_path):
    """bitsandbytes logs 'Failed to load CPU gemm_4bit_forward ... pip install kernels' when imported on
    CPUs with AVX512-BF16 (this machine's); `import wizard` filters that one record (wizard/quiet.py)."""
    assert not any(w in (demo_run / "train.log").read_text() for w in KERNELS_WARNING)
    out = tmp_path / "export"
    done = run_cli("export", str(demo_run), "--out", str(out))
    assert done.returncode == 0, done.stderr
    caption = run_cli("caption", str(demo_run), str(shape_images[0][0]), "--json")
    assert caption.returncode == 0, caption.stderr
    for proc in (done, caption):
        assert not any(w in proc.stdout + proc.stderr for w in KERNELS_WARNING)
    for path in [out, *out.rglob("*")]:  # a server under another account can read the export
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


def test_eval_without_a_run_folder_offers_the_list_on_a_terminal(tmp_path):
    import pexpect

    _fake_run(tmp_path, "demo-shapes-20250102-120000", "2025-01-02T12:00:00")
    child = pexpect.spawn(CLI, ["eval"], cwd=str(tmp_path),
                          env=cli_env(TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1"), encoding="utf-8",
                          timeout=60, dimensions=(24, 80))
    child.expect_exact("Eval which run?")
    child.expect_exact("demo-shapes-20250102-120000")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
