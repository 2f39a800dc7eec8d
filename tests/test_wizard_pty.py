"""The real `caption-wizard` in a pseudo-terminal (pexpect): arrow keys, Enter, "<" back, Ctrl-C.

Every test runs the installed console script in a temporary folder with no GPU
(CAPTION_WIZARD_FAKE_GPUS=""), so the defaults are the offline demo's on any machine.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pexpect
import pyte
import pytest

from wizard.recipe import load_recipe

from .conftest import CLI, ROOT, cli_env, run_cli

UP, DOWN, ENTER, CTRL_C, BACKSPACE = "\x1b[A", "\x1b[B", "\r", "\x03", "\x7f"
CTRL_U = "\x15"  # clear the line in a text question


def wizard_env(rows: int = 40, cols: int = 120) -> dict[str, str]:
    # NO_COLOR keeps the screen searchable; PROMPT_TOOLKIT_NO_CPR: pexpect does not answer cursor queries
    return cli_env(TERM="xterm-256color", CAPTION_WIZARD_FAKE_GPUS="", PROMPT_TOOLKIT_NO_CPR="1",
                   LINES=str(rows), COLUMNS=str(cols))


def spawn(*args: str, cwd, rows: int = 40, cols: int = 120) -> pexpect.spawn:
    child = pexpect.spawn(CLI, list(args), cwd=str(cwd), env=wizard_env(rows, cols), dimensions=(rows, cols),
                          encoding="utf-8", timeout=60)
    return child


class Terminal:
    """What a user sees: everything the child printed, fed through a pyte screen of the same size."""

    def __init__(self, child: pexpect.spawn, rows: int, cols: int):
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)
        child.logfile_read = self  # pexpect hands every chunk it reads to write()

    def write(self, data: str) -> None:
        self.stream.feed(data)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def text(self) -> str:
        return "\n".join(self.lines())


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
                     "Random seed", "Learning-rate schedule", "Warmup", "Weight decay", "Beams when captioning",
                     "Longest generated caption"]:
        s.at(question, ENTER)
    s.at("Recipe name", CTRL_U, "pty-shapes", ENTER)
    s.at("memory")
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
    s.at("Save to mine.yaml", DOWN, DOWN, ENTER)  # Quit without saving (below "Change an answer…")
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
    _decline_training_and_exit(child)
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
        import wizard.commands.menu  # what `caption-wizard` loads before the menu's first prompt
        heavy = {"torch", "transformers", "peft", "modelscope", "datasets", "bitsandbytes"}
        print(sorted(heavy & set(sys.modules)))
        print(sorted({"questionary", "pydantic"} & set(sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]"]


def test_help_answers(tmp_path):
    done = run_cli("--help", cwd=tmp_path)
    assert done.returncode == 0 and "caption-wizard" in done.stdout


# ----------------------------------------------------------------------------- the summary screen
DEMO_QUESTIONS = ["Which data?", "Caption language?", "How to tune it?", "Epochs", "Batch size", "Learning rate",
                  "LoRA rank", "Largest image size", "Advanced settings?", "Recipe name"]


def _decline_training_and_exit(child) -> None:
    """After "Saved ...": answer no to training now (when offered) and expect a clean exit 0."""
    if child.expect_exact(["Start training now?", "not available"]) == 0:
        child.send("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def _to_summary(s: Screen, *, epochs: str | None = None) -> None:
    s.at("Which model do you want to fine-tune?", ENTER)
    for q in DEMO_QUESTIONS:
        s.at(q, *([epochs] if q == "Epochs" and epochs else []), ENTER)
    s.at("Save this recipe?")


@pytest.mark.parametrize("rows,cols", [(24, 80), (40, 120)])
def test_change_an_answer_edits_the_learning_rate_in_four_keys(tmp_path, rows, cols):
    child = spawn("new", "--out", "mine.yaml", cwd=tmp_path, rows=rows, cols=cols)
    term = Terminal(child, rows, cols)
    s = Screen(child)
    _to_summary(s)
    # at most 4 key presses from the summary to the learning-rate question
    s.at("Quit without saving", DOWN, ENTER)  # "Change an answer…" is one below Save
    s.at("Change which answer?", "7", ENTER)  # its shortcut jumps to the learning rate
    s.at("Learning rate", "0.002", ENTER)  # the default (0.004) is shown, typing replaces it
    s.at("Save this recipe?")
    child.expect_exact("Quit without saving")
    assert "lr 0.002" in term.text()  # the summary came back, recomputed
    child.send(ENTER)
    s.at("Saved mine.yaml")
    _decline_training_and_exit(child)
    recipe = load_recipe(tmp_path / "mine.yaml")
    assert recipe.train.learning_rate == pytest.approx(0.002)
    assert recipe.train.epochs == 5.0  # the other answers kept


def test_typing_at_a_default_replaces_it(tmp_path):
    child = spawn("new", "--out", "mine.yaml", cwd=tmp_path)
    s = Screen(child)
    _to_summary(s, epochs="2")  # the Epochs default is 5: typing 2 gives 2, not 52
    child.send(ENTER)
    s.at("Saved mine.yaml")
    _decline_training_and_exit(child)
    assert load_recipe(tmp_path / "mine.yaml").train.epochs == 2.0


def test_backing_out_leaves_no_stale_answers_on_screen(tmp_path):
    child = spawn("new", cwd=tmp_path, rows=24, cols=80)
    term = Terminal(child, 24, 80)
    s = Screen(child)
    s.at("Which model do you want to fine-tune?", ENTER)
    s.at("Which data?", ENTER)
    s.at("Caption language?", ENTER)
    s.at("How to tune it?", ENTER)
    s.at("Epochs", "3", "<")  # back to the strategy (a number never holds "<": it goes back after typing) ...
    s.at("How to tune it?", "<")  # ... and once more, to the language
    s.at("Caption language?")
    child.expect_exact("← Back")
    screen = term.text()
    assert "Epochs" not in screen and "How to tune it?" not in screen
    assert screen.count("Caption language?") == 1  # the prompt, not also its earlier answer
    assert "? Which data? Demo: synthetic shapes" in screen  # answers before it stay
    child.send(CTRL_C)
    child.expect(pexpect.EOF)
    child.close()


def test_backing_out_erases_a_wrapped_notice_too(tmp_path):
    child = spawn("new", cwd=tmp_path, rows=24, cols=80)
    term = Terminal(child, 24, 80)
    s = Screen(child)
    s.at("Which model do you want to fine-tune?", DOWN, ENTER)  # a real model: "needs a CUDA GPU" notice
    s.at("Which data?")
    child.expect_exact("← Back")
    assert "this machine has none" in term.text()
    child.send("<")
    s.at("Which model do you want to fine-tune?")
    child.expect_exact("Other: a ModelScope id")
    screen = term.text()
    assert "this machine has none" not in screen and "replay it on a GPU" not in screen
    assert screen.count("Which model do you want to fine-tune?") == 1
    child.send(CTRL_C)
    child.expect(pexpect.EOF)
    child.close()


def test_summary_and_estimate_fit_in_24_rows(tmp_path):
    child = spawn("new", "--out", "mine.yaml", cwd=tmp_path, rows=24, cols=80)
    term = Terminal(child, 24, 80)
    s = Screen(child)
    _to_summary(s)
    child.expect_exact("← Back: the last question")
    lines = term.lines()
    assert lines[0].startswith("Summary")  # its top is on screen, no scrollback needed
    labels = [line.split(" ")[0] for line in lines]
    for label in ["name", "model", "data", "trains", "training", "steps", "time", "memory"]:
        assert label in labels, (label, term.text())
    words = " ".join(term.text().split())  # wrapped values read as one line
    assert "290 (922 captions" in words  # the demo's step count, from its data
    assert "fits, even at the upper bound" in words
    assert "lm_head, embed_tokens fully" in words  # what it trains, by name
    assert "measured" in words  # the time says how it was found
    assert any(line.startswith("? Save this recipe?") for line in lines)
    child.send(CTRL_C)
    child.expect(pexpect.EOF)
    child.close()


def test_readme_first_screen_is_todays_program():
    """README's first screen is a capture of `caption-wizard new` (tests/readme_screen.py): it cannot drift."""
    from tests import readme_screen

    assert readme_screen.normalize(readme_screen.capture()) == readme_screen.normalize(readme_screen.readme_block()), \
        "the wizard changed: python -m tests.readme_screen --write"


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
    child.close()
    assert child.exitstatus == 130 and not list(tmp_path.glob("recipes/*.yaml")), "Ctrl-C writes nothing"
