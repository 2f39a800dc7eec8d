"""Walking the questions one by one, with "back" and "change an answer": the logic behind the prompts.

wizard/ask/prompting.py drives a Walk with real prompts; tests/test_questions.py drives it with values.
"""

from __future__ import annotations

from typing import Any

from wizard.ask.questions.base import Answers, Choice, Question
from wizard.ask.questions.flow import (BY_NAME, MUST_ANSWER, QUESTIONS, answers_to_recipe, complete, default_for,
                                       is_asked)
from wizard.machine import Machine


class Walk:
    """Which question comes next, and going back: the logic behind the prompts, without I/O.

        walk = Walk(machine)
        while not walk.done:
            q, default = walk.current, walk.default()
            walk.answer(value)   # or walk.back()

    Going back re-asks the previous question with the earlier answer as its default. When an
    answer changes, the later answers that were accepted defaults are forgotten, so they follow
    the new choice (demo -> 7B model: 2 epochs -> 3); answers the user changed are kept, and a
    kept choice that is no longer offered falls back to the new default.
    """

    def __init__(self, machine: Machine, answers: Answers | None = None):
        self.machine = machine
        self.answers: Answers = dict(answers or {})
        self.defaulted: set[str] = set()  # answers that were the default when given
        self.history: list[str] = []  # names of the questions answered, in order
        self.editing = False  # changing one answer from the summary (see `edit`)
        self._before_edit: tuple | None = None  # the answers as they were, until the change is complete
        self.current: Question | None = self._next(0)

    def _index(self, q: Question) -> int:
        return QUESTIONS.index(q)

    def _next(self, start: int) -> Question | None:
        for q in QUESTIONS[start:]:
            if self.editing and not (q.name in MUST_ANSWER and q.name not in self.answers):
                continue  # changing one answer: only a newly needed path or id is asked after it
            before = complete(self.answers, self.machine, upto=q.name)
            if is_asked(q, before, self.machine):
                return q
        if self.editing:  # the change is complete
            self.editing, self._before_edit = False, None
        return None

    # -- "Change an answer…" on the summary
    def fields(self) -> list[tuple[Question, Any]]:
        """Every setting the user can change, with its current value (advanced ones included)."""
        full = complete({**self.answers, "advanced": True}, self.machine)  # relevant questions only
        return [(q, full[q.name]) for q in QUESTIONS if q.name in full and q.name != "advanced"]

    def choices_for(self, q: Question) -> list[Choice]:
        full = complete({**self.answers, "advanced": True}, self.machine, upto=q.name)
        return q.choices(full, self.machine) if q.choices else []

    def edit(self, name: str) -> None:
        """Ask question `name` next; after its answer the walk is done again (back to the summary)."""
        q = BY_NAME[name]
        self._before_edit = (dict(self.answers), set(self.defaulted), list(self.history))
        if q.advanced and not self.answers.get("advanced"):
            # an advanced answer counts only with the advanced settings on; the others keep their values
            full = complete({**self.answers, "advanced": True}, self.machine)
            kept = {k: v for k, v in full.items() if BY_NAME[k].advanced and k not in self.answers}
            self.answers.update(kept)
            self.defaulted |= set(kept)  # still defaults: they follow later changes
            self.answers["advanced"] = True
        self.editing = True
        self.current = q

    def stop_editing(self) -> None:
        """Backed out of a change ("<"): the answers are as they were before it."""
        if self._before_edit is not None:
            self.answers, self.defaulted, self.history = self._before_edit
        self._before_edit = None
        self.editing = False
        self.current = None

    @property
    def done(self) -> bool:
        return self.current is None

    @property
    def can_go_back(self) -> bool:
        return bool(self.history)

    def context(self) -> Answers:
        """Completed answers before the current question (what its choices and default see)."""
        return complete(self.answers, self.machine, upto=self.current.name if self.current else None)

    def default(self) -> Any:
        """The previous answer to the current question if any (and still offered), else its default."""
        q = self.current
        if q.name in self.answers:
            value = self.answers[q.name]
            if q.kind != "select" or value in [c.value for c in self.choices()]:
                return value
        return default_for(q, self.context(), self.machine)

    def choices(self) -> list[Choice]:
        q = self.current
        return q.choices(self.context(), self.machine) if q.choices else []

    def answer(self, value: Any) -> None:
        q = self.current
        if value == default_for(q, self.context(), self.machine):
            self.defaulted.add(q.name)
        else:
            self.defaulted.discard(q.name)
        self._set({q.name: value})
        self.history.append(q.name)
        self.current = self._next(self._index(q) + 1)

    def _set(self, changes: Answers) -> None:
        """Record answers; if one changed, later accepted defaults are forgotten."""
        changed = [self._index(BY_NAME[k]) for k, v in changes.items()
                   if k in self.answers and self.answers[k] != v]
        self.answers.update(changes)
        if changed:
            later = {x.name for x in QUESTIONS[min(changed) + 1:]} - set(changes)
            self.answers = {k: v for k, v in self.answers.items() if not (k in later and k in self.defaulted)}

    def apply(self, overrides: list[str]) -> None:
        """Take `KEY=VALUE` overrides (a memory suggestion) as answers to the questions that set them."""
        import yaml

        by_key = {q.key: q for q in QUESTIONS if q.key}
        changes: Answers = {}
        for item in overrides:
            key, _, raw = item.partition("=")
            changes[by_key[key].name] = yaml.safe_load(raw)
        if any(BY_NAME[n].advanced for n in changes):
            changes["advanced"] = True  # the change is an advanced setting: it counts only with them on
        self.defaulted -= set(changes)
        self._set(changes)

    def back(self) -> bool:
        """Return to the previous question; False when there is none (the caller leaves)."""
        if not self.history:
            return False
        self.current = BY_NAME[self.history.pop()]
        return True

    def recipe(self):
        return answers_to_recipe(self.answers, self.machine)

