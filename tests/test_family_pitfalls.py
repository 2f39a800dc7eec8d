"""The template and processor pitfalls of the families, each with the behaviour a user would see.

- LLaVA-1.5's template does not close the assistant turn: the caption must end with the eos.
- LLaVA-OneVision renders an assistant turn differently from its generation prompt: training must
  use the generation prompt, token for token.
- InternVL's processor pads on the left unless told: batches must still be right-padded for training
  and left-padded for generation.
- Gemma 3's turn ends with <end_of_turn>, not its eos: generation must stop on both.
- Every processor output reaches the model as the processor made it.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tests.families_support import examples, recipe  # noqa: E402


def _processor(folder):
    from wizard.model import load_processor

    return load_processor(folder)


def _batch(folder, processor, family, ex=None):
    from wizard.chat import resolve_prompt
    from wizard.train.collate import build_dataset, collator_for

    ex = ex or examples()
    data = build_dataset(ex, processor, resolve_prompt(recipe(folder), family), max_target_length=32,
                         loader=lambda e: e.image, family=family)
    return collator_for(processor, data)(list(data.items)), ex


def test_llava_template_leaves_the_turn_open_so_the_caption_ends_with_eos(tiny_family):
    from wizard.families import FAMILIES

    folder = tiny_family("llava")
    processor = _processor(folder)
    turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a red circle"}]}]
    rendered = processor.apply_chat_template(turn, tokenize=False)
    assert rendered.endswith("a red circle ") and "</s>" not in rendered  # the real template: nothing closes it
    batch, ex = _batch(folder, processor, FAMILIES["llava"])
    labels = batch["labels"][0]
    assert labels[labels != -100][-1] == processor.tokenizer.eos_token_id  # so the model learns to stop


def test_onevision_trains_on_the_generation_prompt_not_a_rendered_assistant_turn(tiny_family):
    from wizard.chat import prompt_text, user_messages
    from wizard.families import FAMILIES

    folder = tiny_family("llava_onevision")
    processor = _processor(folder)
    family = FAMILIES["llava_onevision"]
    generation = prompt_text(processor, "Describe this image.", family)
    with_answer = processor.apply_chat_template(
        user_messages("Describe this image.") + [{"role": "assistant", "content": [{"type": "text", "text": "X"}]}],
        tokenize=False)
    assert not with_answer.startswith(generation)  # " \nX": the rendered turn is not the generation prompt
    batch, ex = _batch(folder, processor, family)
    inference = processor(text=[generation], images=[[ex[0].image]], return_tensors="pt", padding_side="left")
    n = int(inference["attention_mask"].sum())
    assert torch.equal(batch["input_ids"][0, :n], inference["input_ids"][0])  # what captioning will show
    assert (batch["labels"][0, :n] == -100).all() and (batch["labels"][0, n:n + 2] != -100).all()


def test_internvl_batches_are_right_padded_for_training_and_left_padded_for_generation(tiny_family):
    from wizard.families import FAMILIES
    from wizard.inference import Captioner

    folder = tiny_family("internvl")
    processor = _processor(folder)
    short = processor(text=["<IMG_CONTEXT>a", "<IMG_CONTEXT>a b c d e f"], images=[[e.image] for e in examples()],
                      return_tensors="pt", padding=True)
    assert short["attention_mask"][0, 0] == 0  # its own default: left padding
    ex = examples()
    ex[1].captions[0] = ex[1].captions[0] + " and nothing else in the picture"
    batch, _ = _batch(folder, processor, FAMILIES["internvl"], ex)
    mask = batch["attention_mask"]
    assert (mask[:, 0] == 1).all() and mask[0, -1] == 0  # real tokens first, padding at the end
    seen = []

    class Recording(torch.nn.Module):  # records what generate() receives
        def __init__(self, model):
            super().__init__()
            self.inner, self.config = model, model.config

        def generate(self, **inputs):
            seen.append(inputs["attention_mask"])
            return self.inner.generate(**inputs)

    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(folder)
    Captioner(Recording(model), processor, "Hi, describe this image in many words").caption(
        [e.image for e in ex], recipe(folder).generation, prompt=None)
    Captioner(Recording(model), processor, "x").caption([ex[0].image, ex[1].image.resize((28, 56))],
                                                        recipe(folder).generation)
    assert seen and all((m[:, -1] == 1).all() for m in seen)  # generation continues right after each prompt


def test_gemma3_generation_stops_at_end_of_turn_which_is_not_its_eos(tiny_family):
    from transformers import AutoModelForImageTextToText

    from wizard.chat import stop_token_ids
    from wizard.inference import Captioner, generate_kwargs

    folder = tiny_family("gemma3")
    processor = _processor(folder)
    tok = processor.tokenizer
    end = tok.convert_tokens_to_ids("<end_of_turn>")
    assert end != tok.eos_token_id and set(stop_token_ids(processor)) == {end, tok.eos_token_id}
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    model.lm_head.register_forward_hook(lambda m, i, out: out.index_add(
        -1, torch.tensor([end]), torch.full((*out.shape[:-1], 1), 100.0)))  # the model says <end_of_turn> at once
    generation = recipe(folder).generation
    image = examples()[0].image
    assert Captioner(model, processor, "Describe this image.").caption([image], generation) == [""]
    inputs = processor(text=[processor.apply_chat_template([{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "Describe this image."}]}], add_generation_prompt=True,
        tokenize=False)], images=[[image]], return_tensors="pt", add_special_tokens=False)
    eos_only = model.generate(**inputs, **generate_kwargs(generation, tok, [tok.eos_token_id]))
    assert eos_only.shape[1] - inputs["input_ids"].shape[1] == generation.max_new_tokens  # would run on


@pytest.mark.parametrize("family,keys", [
    ("qwen2_5_vl", {"image_grid_thw", "mm_token_type_ids"}), ("gemma3", {"token_type_ids"}),
    ("idefics3", {"pixel_attention_mask"}), ("llava_next", {"image_sizes"}),
    ("mllama", {"aspect_ratio_ids", "aspect_ratio_mask", "cross_attention_mask"}), ("mistral3", {"image_sizes"}),
])
def test_every_processor_output_reaches_the_model_as_the_processor_made_it(family, keys, tiny_family):
    from wizard.chat import prompt_text, text_kwargs
    from wizard.families import FAMILIES

    folder = tiny_family(family)
    processor = _processor(folder)
    fam = FAMILIES[family]
    batch, ex = _batch(folder, processor, fam)
    text = prompt_text(processor, "Describe this image.", fam)
    out = processor(text=[text] * 2, images=[[e.image] for e in ex], return_tensors="pt", padding=True,
                    padding_side="right", **text_kwargs(processor, text))
    assert keys <= set(out) and set(out) <= set(batch)
    n = int(out["attention_mask"][0].sum())
    for key, value in out.items():
        if value.dim() >= 2 and value.shape[:2] == out["input_ids"].shape:  # token-aligned: the prompt part
            assert torch.equal(batch[key][0, :n], value[0, :n]), key
        else:
            assert torch.equal(batch[key], value), key
