"""How an image and its instruction become model input: one place, used by training and captioning.

Training and generation must build the prompt identically, or the tuned model
sees at inference a prompt it never trained on.
"""

from __future__ import annotations

from typing import Any


def user_messages(prompt: str) -> list[dict[str, Any]]:
    """One user turn: the image first, then the instruction (Qwen-VL's convention)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def prompt_text(processor, prompt: str) -> str:
    """The chat-formatted prompt, ending where the assistant's caption begins."""
    return processor.apply_chat_template(user_messages(prompt), add_generation_prompt=True, tokenize=False)


def target_text(processor, caption: str) -> str:
    """What the model learns to produce after the prompt: the caption, then the end-of-turn token."""
    tok = getattr(processor, "tokenizer", processor)
    end = "<|im_end|>" if "<|im_end|>" in tok.get_vocab() else (tok.eos_token or "")
    return caption.strip() + end


def resolve_prompt(recipe) -> str:
    """The recipe's prompt, or the task's default prompt in the recipe's language."""
    from wizard.catalog import task_prompt

    return recipe.data.prompt or task_prompt(recipe.task, recipe.data.language)
