"""What a question is (Question, Choice), and turning typed text into typed values.

    Question("epochs", "text", "Epochs:", key="train.epochs", parse=lambda t: number(t, float, "epochs"))

A question names the recipe key its answer sets (None: it only steers other questions), where its choices
and default come from (functions of the answers so far and the machine), when it is relevant, and how a text
answer is parsed (ValueError(message) when the text is not valid: the prompt shows the message and asks again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from wizard.machine import Machine

Answers = dict[str, Any]
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def fmt(value: Any) -> str:
    """A value as it is shown in a text question: 2.0 -> '2', 0.0001 -> '0.0001', None -> ''."""
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Choice:
    title: str
    value: Any
    description: str | None = None  # shown under the list while highlighted


@dataclass(frozen=True)
class Question:
    name: str
    kind: str  # select | text | confirm | checkbox
    message: str
    key: str | None = None  # dotted recipe path set by the answer; None: steers other questions
    choices: Callable[[Answers, Machine], list[Choice]] | None = None
    default: Callable[[Answers, Machine], Any] | None = None  # None: the base recipe's value at `key`
    when: Callable[[Answers, Machine], bool] | None = None  # None: always relevant
    advanced: bool = False  # asked only after "Advanced settings? yes"; otherwise the default is used
    parse: Callable[[str], Any] | None = None  # text -> value; ValueError(message) when invalid
    show: Callable[[Any], str] = fmt  # value -> the text a text question starts with
    to_recipe: Callable[[Any, Answers], Any] | None = None  # answer -> recipe value (default: as is)
    notice: Callable[[Answers, Machine], str | None] | None = None  # said after the answer

    def relevant(self, answers: Answers, machine: Machine) -> bool:
        return self.when is None or bool(self.when(answers, machine))


# ----------------------------------------------------------------------------- parsing typed text
def number(text: str, kind: type, what: str, low: float | None = 0, high: float | None = None,
           low_ok: bool = False) -> Any:
    try:
        value = kind(text.strip())
    except ValueError:
        raise ValueError(f"{what}: type a{'n integer' if kind is int else ' number'}, "
                         f"e.g. {kind(1)}") from None
    if low is not None and (value < low or (value == low and not low_ok)):
        raise ValueError(f"{what} must be {'at least' if low_ok else 'greater than'} {low}")
    if high is not None and value >= high:
        raise ValueError(f"{what} must be below {high}")
    return value


def parse_name(text: str) -> str:
    text = text.strip()
    if not NAME_RE.match(text) or len(text) > 80:
        raise ValueError("letters, digits, '.', '_' and '-' only, starting with a letter or digit")
    return text


def parse_model_ref(text: str) -> str:
    """A local folder (made absolute) or a ModelScope id owner/name."""
    text = text.strip()
    if not text:
        raise ValueError("type a ModelScope id such as Qwen/Qwen2-VL-2B-Instruct, or a folder")
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if text.startswith(("/", ".", "~")):
        raise ValueError(f"no folder at {text}")
    if not re.match(r"^[\w.-]+/[\w.-]+$", text):
        raise ValueError(f"{text} is neither a folder here nor a ModelScope id (owner/name)")
    return text


def parse_data_path(text: str) -> str:
    path = Path(text.strip()).expanduser()
    if not text.strip():
        raise ValueError("type the path of a folder of images or a captions file")
    if not path.exists():
        raise ValueError(f"nothing at {text.strip()}")
    return str(path.resolve())


def parse_optional_int(text: str) -> int | None:
    return None if not text.strip() else number(text, int, "the number of examples")


def refuse(message: str):
    """For a parse lambda: reject the text with `message`."""
    raise ValueError(message)
