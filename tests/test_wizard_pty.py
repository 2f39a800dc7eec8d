"""The real `caption-wizard` in a pseudo-terminal (pexpect): arrow keys, Enter, "<" back, Ctrl-C.

Every test runs the installed console script in a temporary folder with no GPU
(CAPTION_WIZARD_FAKE_GPUS=""), so the defaults are the offline demo's on any machine.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pexpect
import pytest

from wizard.recipe import load_recipe

from .conftest import CLI, ROOT, cli_env, run_cli

UP, DOWN, ENTER, CTRL_C, BACKSPACE = "\x1b[A", "\x1b[B", "\r", "\x03", "\x7f"
CTRL_U = "\x15"  # clear the line in a text question


def wizard_env() -> dict[str, str]:
    # NO_COLOR keeps the screen searchable; PROMPT_TOOLKIT_NO_CPR: pexpect does not answer cursor queries
    return cli_env(TERM="xterm-256color", CAPTION_WIZARD_FAKE_GPUS="", PROMPT_TOOLKIT_NO_CPR="1",
                   LINES="40", COLUMNS="120")


def spawn(*args: str, cwd) -> pexpect.spawn:
    child = pexpect.spawn(CLI, list(args), cwd=str(cwd), env=wizard_env(), dimensions=(40, 120),
                          encoding="utf-8", timeout=60)
    return child


class Screen:
    """Wait for a prompt, then type: keys are only sent once the prompt is on screen."""

    def __init__(self, child: pexpect.spawn):
        self.child = child

    def at(self, text: str, *keys: str) -> Screen:
        self.child.expect_exact(text)
        for k in keys:
            self.child.send(k)
        return self


def test_menu_to_a_saved_recipe_with_back(tmp_path):
    child = spawn(cwd=tmp_path)
    s = Screen(child)
    s.at("What do you want to do?", ENTER)  # New run
    s.at("Which model do you want to fine-tune?", ENTER)  # the demo (suggested: no GPU)
    s.at("Which data?", ENTER)  # synthetic shapes
    s.at("Caption language?", UP, ENTER)  # Chinese is suggested; pick English
    s.at("How to tune it?", UP, ENTER)  # QLoRA
    s.at("Epochs", "<")  # go back once ...
    s.at("How to tune it?", DOWN, DOWN, ENTER)  # ... the pointer starts at QLoRA: two down is Full
    s.at("Epochs", BACKSPACE, "1", ENTER)
    s.at("Batch size", CTRL_U, "8", ENTER)
    s.at("Learning rate", ENTER)  # full: a tenth of the demo's adapter rate
    s.at("Largest image size", DOWN, ENTER)  # one step larger than recommended
    s.at("Advanced settings?", "y")
    s.at("Precision", ENTER)
    s.at("Save a checkpoint every N steps", CTRL_U, "10", ENTER)
    for question in ["Gradient accumulation", "Gradient checkpointing", "Longest caption",
                     "Instruction given with each image", "Fraction of images held out", "Use at most N",
                     "Random seed"]:
        s.at(question, ENTER)
    s.at("Recipe name", CTRL_U, "pty-shapes", ENTER)
    s.at("Memory estimate")
    s.at("Save this recipe?")
    assert not (tmp_path / "recipes").exists()  # nothing written before "Save"
    child.send(ENTER)
    s.at("Saved recipes/pty-shapes.yaml")
    i = child.expect_exact(["Start training now?", "not available"])
    if i == 0:
        child.send("n")
    s.at("What do you want to do?", UP, ENTER)  # back at the menu: Quit is one up (the list wraps)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    recipe = load_recipe(tmp_path / "recipes" / "pty-shapes.yaml")
    assert recipe.name == "pty-shapes"
    assert recipe.model.id == "demo/tiny-qwen2-vl-shapes" and recipe.data.dataset == "shapes"
    assert recipe.data.language == "en"
    assert recipe.tuning.strategy.value == "full"
    assert (recipe.train.epochs, recipe.train.batch_size, recipe.train.save_steps) == (1.0, 8, 10)
    assert recipe.train.grad_accum == 2  # keeps the demo's effective batch of 16
    demo = load_recipe(ROOT / "recipes" / "demo-shapes.yaml")
    assert recipe.train.learning_rate == pytest.approx(demo.train.learning_rate / 10)  # full: a tenth of LoRA's
    assert recipe.data.max_pixels == 25088


@pytest.mark.parametrize("where", ["How to tune it?", "Epochs"])
def test_ctrl_c_midway_exits_130_and_writes_nothing(tmp_path, where):
    child = spawn("new", cwd=tmp_path)
    s = Screen(child)
    s.at("Which model do you want to fine-tune?", ENTER)
    s.at("Which data?", ENTER)
    s.at("Caption language?", ENTER)
    if where == "Epochs":
        s.at("How to tune it?", ENTER)
    s.at(where, CTRL_C)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert list(tmp_path.iterdir()) == []


def test_quit_without_saving_from_the_summary(tmp_path):
    child = spawn("new", "--out", "mine.yaml", cwd=tmp_path)
    s = Screen(child)
    s.at("Which model do you want to fine-tune?", ENTER)
    for q in ["Which data?", "Caption language?", "How to tune it?", "Epochs", "Batch size", "Learning rate",
              "LoRA rank", "Largest image size", "Advanced settings?", "Recipe name"]:
        s.at(q, ENTER)
    s.at("Save this recipe?")
    s.at("Save to mine.yaml", DOWN, ENTER)  # Quit without saving
    s.at("Nothing saved.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and list(tmp_path.iterdir()) == []


def test_existing_file_is_not_overwritten_without_asking(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "demo-shapes.yaml").write_text("keep me\n")
    child = spawn("new", cwd=tmp_path)
    s = Screen(child)
    s.at("Which model do you want to fine-tune?", ENTER)
    for q in ["Which data?", "Caption language?", "How to tune it?", "Epochs", "Batch size", "Learning rate",
              "LoRA rank", "Largest image size", "Advanced settings?", "Recipe name", "Save this recipe?"]:
        s.at(q, ENTER)
    s.at("recipes/demo-shapes.yaml already exists.", DOWN, ENTER)  # Save under another name
    s.at("Recipe name", ENTER)  # suggested: demo-shapes-2
    s.at("Saved recipes/demo-shapes-2.yaml")
    if child.expect_exact(["Start training now?", "not available"]) == 0:
        child.send("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (tmp_path / "recipes" / "demo-shapes.yaml").read_text() == "keep me\n"
    assert load_recipe(tmp_path / "recipes" / "demo-shapes-2.yaml").name == "demo-shapes-2"


# ----------------------------------------------------------------------------- no questions
def test_new_defaults_writes_a_valid_recipe_and_refuses_to_overwrite(tmp_path):
    env = cli_env(CAPTION_WIZARD_FAKE_GPUS="")
    first = run_cli("new", "--defaults", "--out", "x.yaml", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "x.yaml" in first.stdout
    written = (tmp_path / "x.yaml").read_text()
    assert load_recipe(tmp_path / "x.yaml") == load_recipe(ROOT / "recipes" / "demo-shapes.yaml")

    again = run_cli("new", "--defaults", "--out", "x.yaml", cwd=tmp_path, env=env)
    assert again.returncode == 2
    assert "x.yaml already exists" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert (tmp_path / "x.yaml").read_text() == written

    forced = run_cli("new", "--defaults", "--out", "x.yaml", "--force", cwd=tmp_path,
                     env=cli_env(CAPTION_WIZARD_FAKE_GPUS="NVIDIA H100:80"))
    assert forced.returncode == 0
    assert load_recipe(tmp_path / "x.yaml").model.source == "modelscope"  # a GPU machine's default


def test_new_defaults_without_out_goes_to_recipes_name(tmp_path):
    done = run_cli("new", "--defaults", cwd=tmp_path, env=cli_env(CAPTION_WIZARD_FAKE_GPUS=""))
    assert done.returncode == 0
    assert (tmp_path / "recipes" / "demo-shapes.yaml").is_file()


def test_questions_without_a_terminal_point_to_the_non_interactive_twin(tmp_path):
    done = run_cli("new", cwd=tmp_path, input="")
    assert done.returncode == 2
    assert "interactive terminal" in done.stderr and "new --defaults" in done.stderr
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- start-up
def test_cli_import_and_help_stay_light():
    code = textwrap.dedent("""
        import sys, wizard.cli
        wizard.cli.build_parser()
        import wizard.ask.menu  # what `caption-wizard` loads before the menu's first prompt
        heavy = {"torch", "transformers", "peft", "modelscope", "datasets", "bitsandbytes"}
        print(sorted(heavy & set(sys.modules)))
        print(sorted({"questionary", "pydantic"} & set(sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]"]


def test_help_answers(tmp_path):
    done = run_cli("--help", cwd=tmp_path)
    assert done.returncode == 0 and "caption-wizard" in done.stdout


def test_own_data_is_checked_right_after_its_path_with_three_examples(tmp_path):
    from tests.fixtures_data import build_imagefolder

    built = build_imagefolder(tmp_path)  # 76 images, 4 bad rows
    child = spawn(cwd=tmp_path)
    s = Screen(child)
    s.at("What do you want to do?", ENTER)
    s.at("Which model do you want to fine-tune?", ENTER)
    s.at("Which data?", UP, UP, ENTER)  # up from the first choice: "← Back", then my own data
    s.at("Folder or file", str(built.path), ENTER)
    s.at("data: imagefolder (detected) · 76 images, 77 captions")
    s.at("skipped metadata.jsonl:3: image not found: missing.png")
    child.expect(r"img_\d{3}\.png: .*\r\n.*img_\d{3}\.png: .*\r\n.*img_\d{3}\.png: ")  # three examples
    s.at("Caption language?", CTRL_C)  # the next question comes after the check
    child.expect(pexpect.EOF)
