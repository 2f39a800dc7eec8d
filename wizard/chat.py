"""How an image and its instruction become model input: one place, used by training and captioning.

Training and generation must build the prompt identically, or the tuned model sees at inference a
prompt it never trained on. The family (wizard/families.py) decides the style:

  chat           the processor's chat template with add_generation_prompt (never a rendered
                 assistant turn: LLaVA-OneVision renders that differently from the generation prompt)
  prefix_suffix  the prompt is the processor's text as it is (PaliGemma: the processor adds the image
                 tokens and BOS; its `suffix=` carries the caption)
  task           the prompt is a task token such as <CAPTION> (Florence-2: the processor expands it)

The caption is followed by the family's end token (templates that do not close the assistant turn
get the tokenizer's eos), and generation stops on every end-of-turn token the family has.
"""

from __future__ import annotations

from typing import Any

from wizard import families


def user_messages(prompt: str) -> list[dict[str, Any]]:
    """One user turn: the image first, then the instruction (Qwen-VL's convention)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def _family(processor, family) -> families.Family:
    return family or families.for_processor(processor)


def prompt_text(processor, prompt: str, family: families.Family | None = None) -> str:
    """The prompt as the processor's text, ending where the caption begins."""
    style = _family(processor, family).prompt
    if style == "prefix_suffix":  # PaliGemma: the image tokens first; the processor adds BOS and "\n"
        return getattr(processor, "image_token", "") + prompt
    if style != "chat":
        return prompt
    return processor.apply_chat_template(user_messages(prompt), add_generation_prompt=True, tokenize=False)


def text_kwargs(processor, text: str) -> dict:
    """Processor-call arguments for a rendered prompt: no second BOS when the template wrote one
    (Gemma 3, Llama 3.2, Mistral 3 templates start with it; the tokenizer would add another)."""
    bos = getattr(getattr(processor, "tokenizer", processor), "bos_token", None)
    return {"add_special_tokens": False} if bos and text.startswith(bos) else {}


def _has(tok, token: str | None) -> bool:
    if not token:
        return False
    i = tok.convert_tokens_to_ids(token)  # get_vocab() would build a 150k-entry dict each time
    return i is not None and (i != tok.unk_token_id or token == tok.unk_token)


def end_token(processor, family: families.Family | None = None) -> str:
    """What follows every caption: the family's end-of-turn token, else the tokenizer's eos."""
    tok = getattr(processor, "tokenizer", processor)
    end = _family(processor, family).end_token
    return end if _has(tok, end) else (tok.eos_token or "")


def target_text(processor, caption: str, family: families.Family | None = None) -> str:
    """What the model learns to produce after the prompt: the caption, then the end token."""
    return caption.strip() + end_token(processor, family)


def stop_token_ids(processor, family: families.Family | None = None) -> list[int]:
    """Generation stops on any of these: the end token, the family's other turn ends, the eos."""
    tok = getattr(processor, "tokenizer", processor)
    fam = _family(processor, family)
    names = [end_token(processor, fam), *fam.stop_tokens, tok.eos_token]
    return list(dict.fromkeys(tok.convert_tokens_to_ids(t) for t in names if _has(tok, t)))


def resolve_prompt(recipe, family: families.Family | None = None) -> str:
    """The recipe's prompt, or the family's default (Florence-2: <CAPTION>), or the task's prompt in
    the recipe's language."""
    from wizard.catalog import model_family, task_prompt

    if recipe.data.prompt:
        return recipe.data.prompt
    fam = family or model_family(recipe.model)
    if fam is not None and fam.default_prompt:
        return fam.default_prompt.get(recipe.data.language) or next(iter(fam.default_prompt.values()))
    return task_prompt(recipe.task, recipe.data.language)
