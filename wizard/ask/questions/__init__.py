"""The questionnaire as data, and the pure function that turns answers into a Recipe.

    machine = detect_machine()                             # wizard/machine.py
    recipe = answers_to_recipe({}, machine)                # every answer at its default
    recipe = answers_to_recipe({"model": "Qwen/Qwen2-VL-2B-Instruct", "strategy": "lora",
                                "batch_size": 4}, machine) # the rest at their defaults

Nothing here prompts, prints or writes: wizard/ask/prompting.py asks QUESTIONS one by one (through `Walk`,
which also knows how to go back), and the tests feed plain dicts. Answers hold typed values (2.0, 16,
"qlora", [0, 1]); text questions turn what was typed into that value with `parse`. Defaults, machine-aware
ones included, come from wizard/defaults.py.

    base.py      Question, Choice, parsing typed text
    model.py     which model                        data.py      task, data, language, image size, prompt
    tuning.py    strategy and the LoRA adapter      training.py  epochs, batch size, schedule, precision ...
    launch.py    devices, GPU sharing, machines
    flow.py      the order they are asked in; answers -> Recipe (complete, answers_to_recipe)
    walk.py      Walk: next question, back, change an answer

May import planning (defaults, catalog, machine, estimate, recipe, data.detect); never prompting or commands.
"""

from wizard.ask.questions.base import Answers, Choice, Question, parse_name
from wizard.ask.questions.flow import (BY_NAME, MUST_ANSWER, QUESTIONS, answers_to_recipe, complete, default_for,
                                       is_asked, notices)
from wizard.ask.questions.walk import Walk
from wizard.defaults import OTHER_MODEL, OWN_DATA, base_recipe, default_recipe, model_ref

__all__ = ["Answers", "BY_NAME", "Choice", "MUST_ANSWER", "OTHER_MODEL", "OWN_DATA", "QUESTIONS", "Question", "Walk",
           "answers_to_recipe", "base_recipe", "complete", "default_for", "default_recipe", "is_asked", "model_ref",
           "notices", "parse_name"]
