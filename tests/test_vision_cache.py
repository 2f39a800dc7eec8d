"""tuning.cache_vision: a frozen vision tower's features computed once and reused across epochs,
bit-identical to computing them every step in fp32 (losses and adapter), in RAM and on disk; the
`auto` rule; the recipe key and the memory estimate's row."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tests.train_support import tiny_model, write_recipe  # noqa: F401
from wizard.data import Example
from wizard.demo.shapes import make_shapes
from wizard.recipe import apply_overrides, load_recipe
from wizard.cache_vision import GiB, choose_mode, expected_visits, vision_frozen


def _train(tmp_path, recipe_file, model_dir, mode: str, cache_root=None, monkeypatch=None, *, stop_at=None,
           resume=None):
    """Two epochs of 8 images x 2 captions, batch 4 (8 steps) in this process: (per-step losses,
    adapter tensors, the cache, its line). `stop_at`: save a checkpoint there and stop; `resume`: from it."""
    from transformers import TrainerCallback

    from transformers import set_seed

    from wizard.train.backend import Data, _training_args
    from wizard.train.callbacks import LossTracker
    from wizard.train.collate import CaptionCollator, build_dataset
    from wizard.train.load import load_model
    from wizard.train.trainer import CaptionTrainer
    from wizard.train.vision_cache import setup_vision_cache

    if cache_root is not None:
        monkeypatch.setenv("CAPTION_WIZARD_CACHE", str(cache_root))
    recipe = apply_overrides(load_recipe(recipe_file), [f"tuning.cache_vision={mode}"])
    torch.set_num_threads(1)
    set_seed(recipe.train.seed)
    model, processor = load_model(recipe, model_dir, for_training=True, device="cpu")
    shapes = make_shapes(8, seed=3)
    examples = [Example(f"s{i}", s.image, s.captions("en")[:2]) for i, s in enumerate(shapes)]
    captions = SimpleNamespace(digests={e.id: f"{i:064x}" for i, e in enumerate(examples)}, sizes={})
    train = build_dataset(examples, processor, "Describe this image.", max_target_length=16)
    data = Data(train, None, CaptionCollator(processor, train), "", [])
    cache, line = setup_vision_cache(recipe, {}, model, processor, captions, data, "cpu")

    class Recorded(LossTracker):
        seen: list = []

        def add(self, loss):
            self.seen.append(float(loss))

    losses = Recorded()
    losses.seen = []
    trainer = CaptionTrainer(model=model, args=_training_args(tmp_path / mode, recipe, "cpu", False),
                             train_dataset=train, data_collator=data.collator, losses=losses)
    if stop_at:
        class Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == stop_at:
                    control.should_save = control.should_training_stop = True

        trainer.add_callback(Stop())
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    adapter = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return losses.seen, adapter, cache, line


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory, tiny_model):  # noqa: F811
    folder = tmp_path_factory.mktemp("cache-vision")
    return write_recipe(folder, tiny_model, train={"max_steps": None, "epochs": 2, "batch_size": 4,
                                                   "precision": "fp32", "save_steps": 100})


@pytest.fixture(scope="module")
def uncached(tmp_path_factory, recipe_file, tiny_model):  # noqa: F811
    return _train(tmp_path_factory.mktemp("off"), recipe_file, tiny_model, "off")


def test_cached_features_train_bit_identically_to_computing_them_every_step(tmp_path, recipe_file, tiny_model,
                                                                             uncached):  # noqa: F811
    losses, adapter, cache, line = _train(tmp_path, recipe_file, tiny_model, "auto")
    assert uncached[2] is None and "computed every step" in uncached[3]
    assert cache is not None and cache.mode == "memory" and "reused" in line, line  # auto: 2 epochs x 2 captions
    assert cache.computed == 8 and cache.hits == 32 - 8  # 32 rows seen, each image computed once
    assert len(losses) == 8 and losses == uncached[0]  # exactly, not approximately
    assert adapter.keys() == uncached[1].keys()
    assert all(torch.equal(adapter[k], uncached[1][k]) for k in adapter)


def test_the_disk_cache_is_written_once_and_read_by_the_next_run(tmp_path, recipe_file, tiny_model, uncached,
                                                                 monkeypatch):  # noqa: F811
    root = tmp_path / "cw-cache"
    first = _train(tmp_path / "a", recipe_file, tiny_model, "disk", root, monkeypatch)
    files = sorted(root.glob("vision/*/*.safetensors"))
    assert len(files) == 8 and not list(root.glob("vision/*/.*.tmp"))  # one file per image, no leftovers
    assert first[2].computed == 8 and first[0] == uncached[0]
    second = _train(tmp_path / "b", recipe_file, tiny_model, "disk", root, monkeypatch)
    assert second[2].computed == 0 and second[2].hits == 32  # another run: every feature read from disk
    assert second[0] == uncached[0]


def test_auto_caches_only_a_frozen_tower_seen_twice_within_the_budget(recipe_file):
    recipe = load_recipe(recipe_file)
    ram = 16 * GiB
    assert choose_mode("auto", frozen=True, visits=2.0, total_bytes=GiB, ram_bytes=ram)[0] == "memory"
    mode, why = choose_mode("auto", frozen=True, visits=1.0, total_bytes=GiB, ram_bytes=ram)
    assert mode == "off" and "1.0 times" in why
    mode, why = choose_mode("auto", frozen=True, visits=3.0, total_bytes=3 * GiB, ram_bytes=ram)  # budget 2 GiB
    assert mode == "off" and "cache_vision=disk" in why
    assert choose_mode("disk", frozen=True, visits=1.0, total_bytes=50 * GiB, ram_bytes=ram)[0] == "disk"
    assert choose_mode("memory", frozen=False, visits=9.0, total_bytes=1, ram_bytes=ram)[0] == "off"
    assert vision_frozen(recipe)
    assert not vision_frozen(apply_overrides(recipe, ["tuning.freeze_vision=false"]))
    assert not vision_frozen(apply_overrides(recipe, ["tuning.lora.modules_to_save=[visual.merger]"]))
    assert expected_visits(recipe, n_items=16, n_images=8) == 4.0  # 2 epochs x 2 captions per image
    capped = apply_overrides(recipe, ["train.max_steps=2"])
    assert expected_visits(capped, n_items=16, n_images=8) == 1.0  # 2 steps x batch 4 over 8 images


def test_the_recipe_key_is_typed_and_the_estimate_counts_the_cache(recipe_file):
    from wizard.errors import UserError
    from wizard.estimate import estimate_memory

    recipe = load_recipe(recipe_file)
    assert recipe.tuning.cache_vision.value == "auto"
    with pytest.raises(UserError, match="cache_vision"):
        apply_overrides(recipe, ["tuning.cache_vision=ram"])
    on = apply_overrides(recipe, ["tuning.cache_vision=memory", "launch.devices=cpu", "data.max_samples=1000"])
    off = apply_overrides(on, ["tuning.cache_vision=off"])
    rows = {r[0]: r for r in estimate_memory(on, [], ram_bytes=64 * GiB).rows}
    assert "vision feature cache" in rows and "vision feature cache" not in {
        r[0] for r in estimate_memory(off, [], ram_bytes=64 * GiB).rows}
    assert "1000 images" in rows["vision feature cache"][2]


def test_a_resumed_run_rebuilds_the_cache_and_logs_the_same_losses(tmp_path, recipe_file, tiny_model,
                                                                   uncached):  # noqa: F811
    first = _train(tmp_path, recipe_file, tiny_model, "memory", stop_at=4)  # the end of epoch 1
    assert first[0] == uncached[0][:4]
    checkpoint = tmp_path / "memory" / "checkpoints" / "checkpoint-4"
    resumed = _train(tmp_path, recipe_file, tiny_model, "memory", resume=checkpoint)
    assert resumed[2].computed == 8  # a new process: the features are computed again, once
    assert resumed[0] == uncached[0][4:]
    assert all(torch.equal(resumed[1][k], uncached[1][k]) for k in uncached[1])


def test_the_disk_key_changes_with_the_model_files_pixel_caps_and_dtype(tiny_model):  # noqa: F811
    from wizard.demo.model import build_processor
    from wizard.model import cap_image_size
    from wizard.train.vision_cache import model_facts, namespace

    processor = build_processor()
    facts = model_facts({}, tiny_model)
    base = namespace(facts, processor, "fp32")
    assert namespace(model_facts({}, tiny_model), build_processor(), "fp32") == base  # stable
    assert namespace(facts, processor, "bf16") != base
    assert namespace({**facts, "revision": "v2"}, processor, "fp32") != base
    cap_image_size(processor, 3136, 2 * processor.image_processor.size["longest_edge"])
    assert namespace(facts, processor, "fp32") != base
    locked = model_facts({"model": {"files": {"model.safetensors": "ab" * 32}, "revision": "master"}}, tiny_model)
    assert locked == {"files": {"model.safetensors": "ab" * 32}, "revision": "master"}  # the lock's sha256 win
