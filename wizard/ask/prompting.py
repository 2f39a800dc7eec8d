"""The interactive side: the only module that imports questionary. A thin I/O layer.

    caption-wizard new            -> new_recipe(machine, out=None)
    caption-wizard (New run)      -> new_recipe(machine, from_menu=True)

It asks the questions of wizard/ask/questions/ through a `Walk` (which knows
the order, the defaults and how to go back), shows the summary (recipe table,
target file, memory estimate), saves the recipe only at the very end, and
offers to start training.

Going back: every prompt accepts "<" (on a free-text question such as the
prompt or a path: while nothing is typed), and every list has a "← Back" entry; the instruction line of each prompt
says so. A prompt erases itself when done: the wizard prints the one-line answer
("? Epochs: 2"), and going back erases that line too, so no stale answer stays
on screen. A text question shows its default greyed out (a placeholder): typing
replaces it, Enter accepts it. The summary offers "Change an answer…": every
field with its value; one is edited and the summary comes back, recomputed.
Ctrl-C raises KeyboardInterrupt from any prompt
(`unsafe_ask`); the CLI turns it into exit status 130. Nothing is written
before "Save".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import questionary
from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings
from questionary import Separator
from rich.markup import escape

from wizard.ask.questions import Choice, Question, Walk, notices
from wizard.console import console
from wizard.errors import UserError
from wizard.machine import Machine


class _Back:
    def __repr__(self) -> str:
        return "BACK"


BACK = _Back()  # returned by a prompt when the user asks to go back
FREE_TEXT = {"prompt", "model_other", "dataset_path"}  # answers that may contain "<" when typed
BACK_TITLE = "← Back"
SELECT_HELP = "(↑↓ move, Enter picks, < back)"
SELECT_HELP_FIRST = "(↑↓ move, Enter picks)"
TEXT_HELP = "(Enter accepts, < back)"
CHECKBOX_HELP = "(↑↓ move, Space toggles, Enter accepts, < back)"
STYLE = questionary.Style([("instruction", "fg:#888888 italic"), ("answer", "fg:#5fafff bold")])


def require_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UserError("the wizard asks questions, so it needs an interactive terminal",
                        hint="without questions: caption-wizard new --defaults --out recipes/mine.yaml, "
                             "or replay a recipe: caption-wizard run recipes/demo-shapes.yaml")


# ----------------------------------------------------------------------------- one prompt
def _wrap(description: str | None) -> str | None:
    """questionary shows a description on one line after "  Description: ": wrap it to the terminal."""
    if not description:
        return None
    import shutil
    import textwrap

    width = max(40, shutil.get_terminal_size().columns - 16)
    return ("\n" + " " * 15).join(textwrap.wrap(description, width))


def _with_back(question: questionary.Question, enabled: Callable[[], bool] = lambda: True):
    """Add the "<" key (go back) to a questionary prompt."""
    kb = KeyBindings()

    @kb.add("<", filter=Condition(enabled), eager=True)
    def _(event):
        event.app.exit(result=BACK)

    app = question.application
    app.key_bindings = merge_key_bindings([app.key_bindings, kb]) if app.key_bindings else kb
    return question


def _erase_when_done(question: questionary.Question) -> questionary.Question:
    """The prompt leaves nothing behind: the caller prints the answer (echo) or nothing (back)."""
    question.application.erase_when_done = True
    return question


def ask_select(message: str, choices: list[Choice], default: Any = None, *, can_go_back: bool = True,
               back_title: str = BACK_TITLE, shortcuts: bool = False, erase: bool = False) -> Any:
    """A list; returns the chosen value, or BACK. `shortcuts`: 1-9, a-z jump to an entry."""
    items: list[Any] = [questionary.Choice(c.title, value=i, description=_wrap(c.description))
                        for i, c in enumerate(choices)]
    start = next((i for i, c in enumerate(choices) if c.value == default), None)
    if can_go_back:
        items += [Separator(" "), questionary.Choice(back_title, value=-1, shortcut_key=False)]
    help_text = SELECT_HELP if can_go_back else SELECT_HELP_FIRST
    if shortcuts:
        help_text = help_text.replace("↑↓ move", "↑↓ or 1-9/a-z move")
    q = questionary.select(message, items, default=start, instruction=help_text, style=STYLE,
                           use_shortcuts=shortcuts, use_jk_keys=not shortcuts)
    if erase:
        _erase_when_done(q)
    if can_go_back:
        _with_back(q)
    picked = q.unsafe_ask()
    if picked is BACK or picked == -1:
        return BACK
    return choices[picked].value


def ask_text(message: str, default: str = "", *, parse: Callable[[str], Any] | None = None,
             can_go_back: bool = True, erase: bool = False, back_anytime: bool = False) -> Any:
    """A line of text, checked by `parse` (ValueError -> shown, asked again); returns parse(text) or BACK.

    The default is shown greyed out, not typed: typing replaces it, Enter on an empty line accepts it,
    and "<" goes back while nothing is typed (`back_anytime`: always, for answers that never hold "<")."""
    from prompt_toolkit.formatted_text import FormattedText

    parse = parse or (lambda t: t)

    def validate(text: str) -> bool | str:
        try:
            parse(text or default)
            return True
        except ValueError as e:
            return str(e)

    q = questionary.text(message, default="", validate=validate,
                         instruction=TEXT_HELP if can_go_back else "(Enter accepts)", style=STYLE,
                         placeholder=FormattedText([("fg:#888888", default)]) if default else None)
    if erase:
        _erase_when_done(q)
    if can_go_back:
        app = q.application
        _with_back(q, lambda: back_anytime or app.current_buffer.text == "")
    text = q.unsafe_ask()
    return BACK if text is BACK else parse(text or default)


def ask_confirm(message: str, default: bool = True, *, can_go_back: bool = True, erase: bool = False) -> Any:
    hint = "(Y/n" if default else "(y/N"
    q = questionary.confirm(message, default=default, style=STYLE,
                            instruction=f"{hint}{', < back' if can_go_back else ''}) ")
    if erase:
        _erase_when_done(q)
    if can_go_back:
        _with_back(q)
    return q.unsafe_ask()


def ask_checkbox(message: str, choices: list[Choice], checked: list[Any], *, can_go_back: bool = True,
                 erase: bool = False) -> Any:
    items = [questionary.Choice(c.title, value=i, checked=c.value in checked, description=_wrap(c.description))
             for i, c in enumerate(choices)]
    q = questionary.checkbox(message, items, style=STYLE, instruction=CHECKBOX_HELP,
                             validate=lambda picked: bool(picked) or "pick at least one")
    if erase:
        _erase_when_done(q)
    if can_go_back:
        _with_back(q)
    picked = q.unsafe_ask()
    return BACK if picked is BACK else [choices[i].value for i in picked]


def ask_question(q: Question, walk: Walk, *, can_go_back: bool, back_title: str = BACK_TITLE,
                 erase: bool = False) -> Any:
    """Put one questionnaire question; returns the typed answer or BACK."""
    default = walk.default()
    if q.kind == "select":
        return ask_select(q.message, walk.choices(), default, can_go_back=can_go_back, back_title=back_title,
                          erase=erase)
    if q.kind == "text":  # numbers and names never hold "<": there it goes back even after typing
        return ask_text(q.message, q.show(default), parse=q.parse, can_go_back=can_go_back, erase=erase,
                        back_anytime=q.name not in FREE_TEXT)
    if q.kind == "confirm":
        return ask_confirm(q.message, bool(default), can_go_back=can_go_back, erase=erase)
    if q.kind == "checkbox":
        return ask_checkbox(q.message, walk.choices(), list(default or []), can_go_back=can_go_back, erase=erase)
    raise ValueError(f"unknown question kind {q.kind!r}")


# ----------------------------------------------------------------------------- the questionnaire
class Transcript:
    """The answer lines the wizard printed, so going back can erase them (no stale answers on screen)."""

    def __init__(self):
        self.printed: list[int] = []  # terminal lines printed per answered question, in order

    def _lines(self, text) -> int:
        if isinstance(text, str):
            text = console.render_str(text)
        return len(console.render_lines(text, console.options.update(height=None), pad=False))

    def echo(self, q: Question, value: Any, choices: list[Choice], note: str | None) -> None:
        """'? Epochs: 2' (and the question's notice), counted."""
        from rich.text import Text

        line = Text.assemble(("? ", "bold green"), (f"{q.message} ", "bold"), (answer_text(q, value, choices),
                                                                              "bold cyan"))
        line.truncate(console.width - 1, overflow="ellipsis")
        console.print(line)
        n = 1
        if note:
            shown = Text(f"! {note}", style="yellow")
            console.print(shown)
            n += self._lines(shown)
        self.printed.append(n)

    def say(self, renderable) -> None:
        """Print more under the last answer (a data check...): going back erases it with that answer."""
        console.print(renderable)
        n = self._lines(renderable)
        if self.printed:
            self.printed[-1] += n
        else:
            self.printed.append(n)

    def erase_last(self) -> None:
        """Erase the answer printed last (on a terminal; a pipe keeps what it got)."""
        if not self.printed:
            return
        n = self.printed.pop()
        if console.is_terminal:
            console.file.write(f"\x1b[{n}F\x1b[J")
            console.file.flush()

    def forget(self) -> None:
        self.printed.clear()


def answer_text(q: Question, value: Any, choices: list[Choice]) -> str:
    """How an answer reads on one line: a list's title, a text's value, Yes/No, a comma list."""
    if q.kind == "select":
        return next((c.title for c in choices if c.value == value), q.show(value))
    if q.kind == "confirm":
        return "Yes" if value else "No"
    if q.kind == "checkbox":
        return ", ".join(map(str, value))
    return q.show(value)


def run_questions(walk: Walk, *, from_menu: bool, transcript: Transcript | None = None) -> bool:
    """Ask until every question is answered; False when the user backs out of the first one."""
    transcript = transcript or Transcript()
    while not walk.done:
        q = walk.current
        first = not walk.can_go_back
        choices = walk.choices()
        value = ask_question(q, walk, can_go_back=(not first) or from_menu,
                             back_title="← Back to the main menu" if first else BACK_TITLE, erase=True)
        if value is BACK:
            if walk.editing:  # backing out of a change: the summary comes back as it was
                walk.stop_editing()
                return True
            if not walk.back():
                return False
            transcript.erase_last()
            continue
        walk.answer(value)
        transcript.echo(q, value, choices, notices(q, walk.answers, walk.machine))
        after_answer(q, walk, transcript)
    return True


def after_answer(q: Question, walk: Walk, transcript: Transcript) -> None:
    """Hook point after each answer (e.g. a quick look at the data after the dataset answer).
    Print through `transcript.say(...)`, so that going back erases it with the answer."""
    if q.name == "dataset_path":  # the user's own data: checked now; the summary and 3 examples
        check_own_data(walk.answers["dataset_path"], say=transcript.say, console=console)


def check_own_data(dataset: str, *, say, console=None) -> bool:
    """The user's own data, right after they named it: the summary line, the first bad rows and 3
    examples, or the reason it cannot be used (wizard.data.check). `say(renderable)` prints (the
    wizard's transcript); `console`: a status line while checking. True when the data can be used."""
    from rich.text import Text

    from wizard.ui.progress import RichProgress
    from wizard.data.check import check_own_data as check

    lines, error = check(dataset, progress=RichProgress(console) if console is not None else None)
    if error is None:
        say(Text("\n".join(lines)))
        return True
    text = Text.assemble(("this data cannot be used yet: ", "bold red"), error.message)
    if error.hint:
        text.append("\n  hint: ", style="yellow")
        text.append(error.hint)
    say(text)
    return False


def recipe_table(recipe, path: Path | None = None):
    """The recipe as a compact two-column table (one row per topic)."""
    from rich.table import Table

    from wizard.ask.summary import checkpointing_text
    from wizard.catalog import model_info
    from wizard.chat import resolve_prompt
    from wizard.recipe import recipe_hash

    info = model_info(recipe.model.id)
    d, t, tu = recipe.data, recipe.train, recipe.tuning
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("name", recipe.name)
    table.add_row("model", f"{recipe.model.id} ({recipe.model.source})")
    table.add_row("data", f"{d.dataset}" + (f" / {d.subset}" if d.subset else "") + f" · format {d.format}"
                  + f" · {d.language}" + (f" · at most {d.max_samples} examples" if d.max_samples else "")
                  + f" · {d.eval_fraction:.0%} held out for eval")
    table.add_row("prompt", resolve_prompt(recipe))
    table.add_row("images", f"max_pixels {d.max_pixels} = {d.max_pixels // info.pixels_per_token} image tokens")
    tuning = tu.strategy.value
    if tu.strategy.value != "full":
        targets = ", ".join(tu.lora.target_modules or info.lora_targets)
        tuning += f" · rank {tu.lora.rank}, alpha {tu.lora.alpha} · modules {targets}"
    if tu.strategy.value == "qlora":
        tuning += f" · 4-bit {tu.quant.type}"
    table.add_row("tuning", tuning)
    table.add_row("training", f"{t.epochs:g} epochs · batch {t.batch_size} x grad_accum {t.grad_accum} · "
                  f"lr {t.learning_rate:g} {t.scheduler} · {t.precision.value} · checkpointing "
                  f"{checkpointing_text(recipe)} · captions up to {t.max_target_length} tokens")
    keep = "all" if t.save_total_limit is None else f"the last {t.save_total_limit}"
    table.add_row("saving", f"checkpoint every {t.save_steps} steps, keep {keep} · seed {t.seed}")
    devices = recipe.launch.devices
    table.add_row("devices", devices if isinstance(devices, str) else "GPUs " + ", ".join(map(str, devices)))
    table.add_row("hash", recipe_hash(recipe))
    if path is not None:
        table.add_row("file", str(path))
    return table


def show_summary(recipe, path: Path | None, machine: Machine):
    """Print the summary (compact under 40 rows) with the plan and the memory estimate; return the estimate."""
    from wizard.ask.summary import render_summary, summarize

    r = summarize(recipe, machine)
    console.rule("[bold]Summary")
    console.print(render_summary(r, path, compact=console.height < 50))
    return r.estimate


def default_path(recipe, out: str | None) -> Path:
    if out and (Path(out).is_dir() or str(out).endswith("/")):  # `new --out DIR/`: the recipe goes inside
        return Path(out) / f"{recipe.name}.yaml"
    return Path(out) if out else Path("recipes") / f"{recipe.name}.yaml"


def _free_name(path: Path) -> Path:
    n = 2
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return candidate


def save_interactively(recipe, path: Path, *, overwrite: bool = False) -> tuple[Any, Path] | None:
    """Save, asking before replacing a file; returns (recipe, path) saved, or None (back)."""
    from wizard.ask.questions import parse_name
    from wizard.recipe import save_recipe

    while True:
        if path.exists() and not overwrite:
            what = ask_select(f"{path} already exists.", [
                Choice(f"Overwrite {path}", "overwrite"),
                Choice("Save under another name", "rename")])
            if what is BACK:
                return None
            if what == "overwrite":
                overwrite = True
                continue
            suggestion = _free_name(path)
            name = ask_text("Recipe name:", suggestion.stem, parse=parse_name)
            if name is BACK:
                continue
            recipe = recipe.model_copy(update={"name": name})
            path = path.with_name(f"{name}{path.suffix or '.yaml'}")
            continue
        try:
            save_recipe(recipe, path, overwrite=overwrite)
        except UserError:  # appeared since we looked: ask again
            if path.exists() and not overwrite:
                continue
            raise  # read-only or full: the message names the folder
        return recipe, path


def start_training(recipe, path: Path, machine: Machine, start) -> int:
    """Offer to start the run now: `start(path)` runs it as `caption-wizard run PATH` would (the command
    that asked hands it in: the wizard never imports the commands)."""
    runnable_here = recipe.model.source == "demo" or recipe.launch.devices == "cpu" or bool(machine.gpus)
    answer = ask_confirm("Start training now?", default=runnable_here, can_go_back=False)
    if not answer:
        console.print(f"Start it later with: caption-wizard run {path}", markup=False)
        return 0
    return int(start(path) or 0)


def _summary_screen(recipe, path: Path, machine: Machine):
    """Clear the screen (a terminal), print the summary; compact under 40 rows. Returns the Review."""
    from wizard.ask.summary import render_summary, summarize

    r = summarize(recipe, machine)
    if console.is_terminal:
        console.clear()
    compact = console.height < 50
    console.rule("[bold]Summary") if not compact else console.print("[bold]Summary[/]")
    console.print(render_summary(r, path, compact=compact))
    return r


def review(recipe, path: Path, machine: Machine) -> tuple[str, list[str]]:
    """Summary, then "Save this recipe?": save | apply (the memory suggestion's overrides) | change | back | quit.

    When the estimate is tight or does not fit, the suggestion is highlighted, not Save."""
    r = _summary_screen(recipe, path, machine)
    choices = [Choice(f"Save to {path}", "save")]
    if r.suggested_overrides:
        choices.append(Choice(f"Apply the suggestion ({' '.join(r.suggested_overrides)}) and review again",
                              "apply"))
    choices.append(Choice("Change an answer…", "change"))
    choices.append(Choice("Quit without saving", "quit"))
    start = "apply" if r.suggested_overrides and r.verdict in ("tight", "does not fit") else "save"
    what = ask_select("Save this recipe?", choices, start, back_title="← Back: the last question")
    return ("back" if what is BACK else what), r.suggested_overrides


def change_answer(walk: Walk) -> None:
    """'Change an answer…': every field with its value; the one picked is asked again (then the summary)."""
    fields = walk.fields()
    width = max(len(q.name) for q, _ in fields) + 2
    choices = []
    for q, value in fields:
        shown = answer_text(q, value, walk.choices_for(q) if q.kind == "select" else [])
        choices.append(Choice(f"{q.name.replace('_', ' '):<{width}}{shown}", q.name))
    picked = ask_select("Change which answer?", choices, can_go_back=True, back_title="← Back to the summary",
                        shortcuts=True, erase=True)
    if picked is BACK:
        return
    walk.edit(picked)
    run_questions(walk, from_menu=True)  # "<" during the change: stop_editing() puts the answers back


def new_recipe(machine: Machine, *, start, out: str | None = None, force: bool = False,
               from_menu: bool = False) -> int:
    """The whole questionnaire: questions -> summary -> save -> offer to train. Returns an exit status.
    `start(path)`: trains the saved recipe (the caller's `caption-wizard run PATH`)."""
    require_terminal()
    console.print(f"[bold]New recipe[/] · this machine: {machine.describe()}")
    console.print("[dim]Press < (or pick ← Back) to return to the previous question; Ctrl-C quits "
                  "without writing anything.[/]")
    walk = Walk(machine)
    transcript = Transcript()
    while True:
        if not run_questions(walk, from_menu=from_menu, transcript=transcript):
            return 0
        while True:  # summary -> save, until saved, quit, or back to the questions
            recipe = walk.recipe()
            path = default_path(recipe, out)
            what, overrides = review(recipe, path, machine)
            if what == "apply":  # as if those answers had been given: defaults that depend on them follow
                walk.apply(overrides)
                continue
            if what == "change":
                change_answer(walk)
                continue
            if what == "quit":
                console.print("Nothing saved.")
                return 0
            if what == "back":
                break
            saved = save_interactively(recipe, path, overwrite=force)
            if saved is not None:
                recipe, path = saved
                console.print(f"[green]Saved {escape(str(path))}[/]")
                console.print(f"Replay it any time with: caption-wizard run {path}", markup=False)
                return start_training(recipe, path, machine, start)
        if console.is_terminal:  # the summary filled the screen: the questions start again at its top
            console.clear()
        transcript.forget()
        walk.back()
