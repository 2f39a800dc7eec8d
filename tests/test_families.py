"""Every family of wizard/families.py, end to end on a tiny offline model (tests/families_support.py).

Per family, through caption-wizard's own code (the model plan, wizard.train.load, the dataset and
collator, the trainer's loss, the captioner, `export --merge`'s merge):
- the labels are the caption and its end token, nothing of the prompt or the image;
- LoRA adapters sit in the language model only (none under the vision tower or the projector);
- two optimizer steps change the adapter and leave the frozen vision tower as it was;
- captioning runs, and `export --merge`'s folder reloads in transformers with the same outputs.
QLoRA keeps LLaVA's, Gemma 3's and Mllama's vision towers unquantized; full fine-tunes freeze them.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tests.families_support import END, examples, recipe  # noqa: E402
from wizard.demo.families import TINY  # noqa: E402


def _setup(folder, strategy="lora", **sections):
    from wizard.chat import resolve_prompt
    from wizard.train.collate import build_dataset, collator_for
    from wizard.train.load import load_model

    torch.manual_seed(0)
    r = recipe(folder, strategy, **sections)
    model, processor = load_model(r, folder, for_training=True, device="cpu")
    family = model.wizard_plan.family
    ex = examples()
    prompt = resolve_prompt(r, family)
    data = build_dataset(ex, processor, prompt, max_target_length=32, loader=lambda e: e.image, family=family)
    batch = collator_for(processor, data)([data[0], data[1]])
    return r, model, processor, family, ex, prompt, batch


def _steps(model, batch, n=2):
    from wizard.train.trainer import sliced_loss

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(n):
        loss, _ = sliced_loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def _in(name: str, prefixes) -> bool:
    return any(f".{p}." in f".{name}." for p in prefixes)


@pytest.mark.parametrize("family", TINY)
def test_family_trains_on_the_caption_only_captions_and_merges(family, tiny_family, tmp_path):
    from wizard.export import _write_merged
    from wizard.inference import Captioner, load_captioner

    folder = tiny_family(family)
    r, model, processor, fam, ex, prompt, batch = _setup(folder)
    assert fam.model_type == family

    # the labels: the caption and its end token, exactly
    tok = processor.tokenizer
    for row, example in zip(batch["labels"], ex):
        assert tok.decode(row[row != -100]) == example.captions[0] + END[family]

    # LoRA in the language model only
    lora = [n for n, _ in model.named_modules() if n.endswith(".lora_A")]
    assert lora and all(_in(n, [fam.language_model]) for n in lora), lora
    assert not any(_in(n, fam.vision) for n in lora)

    # two optimizer steps: the adapter moves, the frozen vision tower does not
    vision = {n: p.detach().clone() for n, p in model.named_parameters() if _in(n, fam.vision)}
    lora_b = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    losses = _steps(model, batch)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(p, lora_b[n]) for n, p in model.named_parameters() if n in lora_b)
    assert vision and all(torch.equal(p, vision[n]) for n, p in model.named_parameters() if n in vision)

    # caption with the adapter, then merge it as `export --merge` does and reload the folder
    images = [e.image for e in ex]
    tuned = Captioner(model, processor, prompt, r.generation, recipe=r, has_adapter=True)
    captions = tuned.caption(images)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    specials = set(tok.all_special_tokens) - {""}
    assert not any(s in c for c in captions for s in specials), captions

    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    processor.save_pretrained(adapter)
    _write_merged(r, tmp_path, adapter, tmp_path / "merged", None)
    merged = load_captioner(tmp_path / "merged")  # AutoModelForImageTextToText + AutoProcessor, no adapter
    assert merged.family.model_type == family and not merged.has_adapter
    model.eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        expect, got = model(**inputs).logits, merged.model(**inputs).logits
    assert torch.allclose(expect, got, atol=1e-4), (expect - got).abs().max()
    assert merged.caption(images, r.generation) == captions


@pytest.mark.parametrize("family", ["llava", "gemma3", "mllama", "florence2"])
def test_qlora_quantizes_the_language_model_and_leaves_the_vision_tower_alone(family, tiny_family):
    _, model, _, fam, _, _, batch = _setup(tiny_family(family), "qlora")
    kinds = {n: type(m).__name__ for n, m in model.named_modules()}
    four_bit = [n for n, k in kinds.items() if k == "Linear4bit"]
    assert four_bit and all(_in(n, [fam.language_model]) for n in four_bit), four_bit
    vision_linears = [n for n, m in model.named_modules() if _in(n, fam.vision) and isinstance(m, torch.nn.Linear)]
    assert vision_linears and not any(kinds[n] == "Linear4bit" for n in vision_linears)
    assert all(torch.isfinite(torch.tensor(_steps(model, batch))))


@pytest.mark.parametrize("family", ["idefics3", "paligemma", "glm4v"])
def test_full_fine_tune_trains_the_language_model_and_freezes_the_vision_tower(family, tiny_family):
    _, model, _, fam, _, _, batch = _setup(tiny_family(family), "full")
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and not any(_in(n, fam.vision) for n in trained)
    assert any(_in(n, [fam.language_model]) for n in trained)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n in trained}
    _steps(model, batch)
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)


def test_data_check_counts_tokens_with_the_familys_processor_and_end_token(tiny_family):
    """`caption-wizard data` with a Gemma 3 folder: caption lengths include <end_of_turn>, image tokens
    are what its processor makes of each image (not Qwen's pixel grid)."""
    from wizard.data.check import check_recipe, report_lines
    from wizard.model import load_processor

    folder = tiny_family("gemma3")
    r = recipe(folder, data={"dataset": "shapes", "max_samples": 6, "language": "en", "format": "shapes"})
    check = check_recipe(r)
    assert "gemma3's tokenizer" in check.token_counter
    processor = load_processor(folder)
    first = check.captions.examples[0]
    want = len(processor.tokenizer(first.captions[0] + "<end_of_turn>", add_special_tokens=False)["input_ids"])
    assert check.lengths[0] == want
    assert set(check.image_tokens) == {4}  # mm_tokens_per_image: fixed whatever the image size
    assert any("counted by its processor" in line and "Gemma 3" in line for line in report_lines(check, r))


def test_serving_a_family_counts_prompt_tokens_with_its_processor(tiny_family):
    from PIL import Image

    from wizard.inference import load_captioner
    from wizard.serve.app import TransformersEngine

    from wizard.chat import prompt_text

    engine = TransformersEngine(load_captioner(tiny_family("llava")))
    text = engine.count_tokens(prompt_text(engine.captioner.processor, "Describe this image."))
    try:
        reply = engine.submit(Image.new("RGB", (40, 30), (200, 0, 0)), recipe(tiny_family("llava")).generation,
                              "Describe this image.").result(timeout=60)
    finally:
        engine.close()
    assert isinstance(reply["caption"], str)
    assert reply["prompt_tokens"] == text + 4  # + LLaVA's 4 image tokens at 28 px (+1 CLS -1 with "default")
