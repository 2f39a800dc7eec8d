"""The questionnaire without a terminal: plain answer dicts -> Recipe (wizard/ask/questions/)."""

from __future__ import annotations

import pytest

from wizard.ask.questions import BY_NAME, OTHER_MODEL, OWN_DATA, Walk, answers_to_recipe, complete, notices
from wizard.catalog import DEMO_DATASET_ID, DEMO_MODEL_ID, MODELS, task_prompt
from wizard.chat import resolve_prompt
from wizard.estimate import estimate_memory
from wizard.machine import GiB, GpuInfo, Machine, detect_gpus
from wizard.recipe import load_recipe

from .conftest import ROOT

NO_GPU = Machine(gpus=(), ram_bytes=16 * GiB, cpu_count=2)
DEMO_RECIPE_EPOCHS = load_recipe(ROOT / "recipes" / "demo-shapes.yaml").train.epochs
QWEN2B = "Qwen/Qwen2-VL-2B-Instruct"
QWEN7B = "Qwen/Qwen2-VL-7B-Instruct"


def gpus(*sizes_gib: int) -> Machine:
    return Machine(gpus=tuple(GpuInfo(i, "NVIDIA test GPU", s * GiB) for i, s in enumerate(sizes_gib)),
                   ram_bytes=64 * GiB, cpu_count=16)


def asked(machine: Machine, answers: dict) -> list[str]:
    """The questions a user is shown, in order, when answering with `answers` (defaults elsewhere)."""
    walk, names = Walk(machine), []
    while not walk.done:
        q = walk.current
        names.append(q.name)
        walk.answer(answers[q.name] if q.name in answers else walk.default())
    return names


# ----------------------------------------------------------------------------- no GPU: the demo
def test_no_gpu_defaults_are_the_demo_recipe_exactly():
    recipe = answers_to_recipe({}, NO_GPU)
    assert recipe == load_recipe(ROOT / "recipes" / "demo-shapes.yaml")
    assert recipe.model.id == DEMO_MODEL_ID and recipe.data.dataset == DEMO_DATASET_ID


def test_walking_every_default_on_a_laptop_gives_the_demo_recipe_and_asks_the_common_questions():
    walk = Walk(NO_GPU)
    order = []
    while not walk.done:
        order.append(walk.current.name)
        walk.answer(walk.default())
    assert order == ["model", "dataset", "language", "strategy", "epochs", "batch_size", "learning_rate",
                     "lora_rank", "max_pixels", "advanced", "name"]
    assert walk.recipe() == load_recipe(ROOT / "recipes" / "demo-shapes.yaml")


def test_picking_a_real_model_without_gpu_warns_that_training_needs_one():
    model_q = BY_NAME["model"]
    note = notices(model_q, {"model": QWEN2B}, NO_GPU)
    assert note and "needs a CUDA GPU" in note and "Qwen2-VL 2B" in note
    assert notices(model_q, {"model": DEMO_MODEL_ID}, NO_GPU) is None
    assert notices(model_q, {"model": QWEN2B}, gpus(24)) is None
    choices = model_q.choices({}, NO_GPU)
    assert all(("needs a CUDA GPU" in c.title) == MODELS[c.value].needs_gpu for c in choices[:-1])
    assert choices[-1].title.startswith("Other: a ModelScope id or a local folder")


def test_real_model_without_gpu_still_makes_a_portable_recipe():
    recipe = answers_to_recipe({"model": QWEN2B}, NO_GPU)
    assert recipe.model.source == "modelscope"
    assert recipe.launch.devices == "auto"  # not "cpu": it is meant for a GPU machine
    assert recipe.data.dataset == "modelscope/coco_2014_caption" and recipe.data.language == "en"
    assert recipe.name == "qwen2-vl-2b-coco-en-qlora"


# ----------------------------------------------------------------------------- GPUs (fake)
def test_fake_gpus_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CAPTION_WIZARD_FAKE_GPUS", "NVIDIA H100:80,NVIDIA H100:80")
    found = detect_gpus()
    assert [(g.index, g.name, g.total_bytes) for g in found] == [(0, "NVIDIA H100", 80 * GiB),
                                                                 (1, "NVIDIA H100", 80 * GiB)]
    monkeypatch.setenv("CAPTION_WIZARD_FAKE_GPUS", "")
    assert detect_gpus() == []


@pytest.mark.parametrize("sizes", [(80, 80), (24,), (8,)])
def test_gpu_defaults_pick_a_real_model_that_fits(sizes):
    machine = gpus(*sizes)
    recipe = answers_to_recipe({}, machine)
    assert recipe.model.id in MODELS and recipe.model.source == "modelscope"
    est = estimate_memory(recipe, list(machine.gpus))
    assert est.fits, (recipe.model.id, est.per_device_bytes / GiB)
    assert est.warning is None


def test_gpu_defaults_scale_with_the_gpu():
    big, mid, small = (answers_to_recipe({}, gpus(*s)) for s in [(80, 80), (24,), (8,)])
    assert MODELS[big.model.id].params_b > MODELS[small.model.id].params_b
    assert big.tuning.strategy.value == "lora" and big.launch.devices == [0, 1]
    assert mid.launch.devices == "auto"
    assert small.tuning.strategy.value == "qlora"
    # batch size shrinks to fit, keeping the effective batch with gradient accumulation
    assert small.train.batch_size * small.train.grad_accum == big.train.batch_size * big.train.grad_accum


def test_devices_question_only_with_gpus():
    assert "devices" not in asked(NO_GPU, {})
    assert "devices" in asked(gpus(80, 80), {})
    values = [c.value for c in BY_NAME["devices"].choices({}, gpus(80, 80))]
    assert values == [[0, 1], [0], [1], "cpu"]
    assert answers_to_recipe({"devices": [1]}, gpus(80, 80)).launch.devices == [1]


def test_strategy_choices_show_needs_cost_and_memory():
    machine = gpus(24)
    context = complete({"model": QWEN7B}, machine, upto="strategy")
    choices = {c.value: c for c in BY_NAME["strategy"].choices(context, machine)}
    assert set(choices) == {"qlora", "lora", "full"}
    assert "GiB per GPU" in choices["qlora"].title and "more than" not in choices["qlora"].title
    assert "more than the 24.0 GiB here" in choices["full"].title
    assert "needs:" in choices["full"].description and "costs:" in choices["full"].description


# ----------------------------------------------------------------------------- strategies
@pytest.mark.parametrize("strategy", ["qlora", "lora", "full"])
def test_each_strategy(strategy):
    answers = {"model": QWEN2B, "strategy": strategy, "lora_rank": 64}
    recipe = answers_to_recipe(answers, gpus(80))
    assert recipe.tuning.strategy.value == strategy
    names = asked(gpus(80), answers)
    if strategy == "full":
        assert "lora_rank" not in names
        assert recipe.tuning.lora.rank == 16  # the rank answer does not count for a full fine-tune
        assert recipe.train.learning_rate == pytest.approx(1e-5)
    else:
        assert "lora_rank" in names
        assert recipe.tuning.lora.rank == 64
        assert recipe.tuning.lora.alpha == 128  # follows the rank while advanced settings are off
        assert recipe.train.learning_rate == pytest.approx(1e-4)
    assert recipe.name == f"qwen2-vl-2b-coco-en-{strategy}"


def test_demo_with_another_strategy_gets_its_own_name():
    assert answers_to_recipe({"strategy": "qlora"}, NO_GPU).name == "demo-shapes-qlora"
    assert answers_to_recipe({"language": "en"}, NO_GPU).name == "demo-shapes-en"


# ----------------------------------------------------------------------------- advanced settings
ADVANCED = {"lora_alpha": 7, "precision": "bf16", "save_steps": 5, "grad_accum": 3,
            "gradient_checkpointing": True, "max_target_length": 48, "prompt": "What is in this picture?",
            "eval_fraction": 0.25, "max_samples": 100, "seed": 7, "lora_targets": ["q_proj", "v_proj"],
            "lora_dropout": 0.1, "scheduler": "linear", "warmup_ratio": 0.1, "weight_decay": 0.01,
            "num_beams": 2, "max_new_tokens": 40}


def test_advanced_off_ignores_advanced_answers_and_uses_defaults():
    recipe = answers_to_recipe({**ADVANCED, "advanced": False}, NO_GPU)
    assert recipe == load_recipe(ROOT / "recipes" / "demo-shapes.yaml")
    names = asked(NO_GPU, {"advanced": False})
    assert not set(ADVANCED) & set(names)


def test_advanced_on_asks_and_applies_every_setting():
    names = asked(NO_GPU, {"advanced": True})
    assert set(ADVANCED) <= set(names)
    assert names.index("advanced") < names.index("lora_alpha") < names.index("name")
    r = answers_to_recipe({**ADVANCED, "advanced": True}, NO_GPU)
    assert (r.tuning.lora.alpha, r.train.precision.value, r.train.save_steps, r.train.grad_accum) == (7, "bf16", 5, 3)
    assert r.train.gradient_checkpointing and r.train.max_target_length == 48 and r.train.seed == 7
    assert (r.data.prompt, r.data.eval_fraction, r.data.max_samples) == ("What is in this picture?", 0.25, 100)
    assert r.tuning.lora.target_modules == ["q_proj", "v_proj"]
    assert (r.tuning.lora.dropout, r.train.scheduler, r.train.warmup_ratio, r.train.weight_decay) == (
        0.1, "linear", 0.1, 0.01)
    assert (r.generation.num_beams, r.generation.max_new_tokens) == (2, 40)


def test_advanced_defaults_keep_catalog_values_as_null():
    r = answers_to_recipe({"advanced": True}, NO_GPU)
    assert r.tuning.lora.target_modules is None  # all catalog modules ticked -> "the family's default"
    assert r.data.prompt is None  # the task prompt unchanged -> follows the language
    default_prompt = complete({"advanced": True}, NO_GPU)["prompt"]
    assert default_prompt == task_prompt("caption", "zh")


# ----------------------------------------------------------------------------- data
def test_prompt_language_follows_the_dataset():
    cn = answers_to_recipe({"model": QWEN2B, "dataset": "AI-ModelScope/M3IT:coco-cn"}, NO_GPU)
    assert (cn.data.subset, cn.data.format, cn.data.language) == ("coco-cn", "m3it", "zh")
    assert resolve_prompt(cn) == task_prompt("caption", "zh")
    en = answers_to_recipe({"model": QWEN2B, "dataset": "modelscope/coco_2014_caption"}, NO_GPU)
    assert resolve_prompt(en) == task_prompt("caption", "en")
    assert "language" not in asked(NO_GPU, {"model": QWEN2B, "dataset": "AI-ModelScope/M3IT:coco-cn"})


def test_own_data_asks_for_a_path_and_a_language(tmp_path):
    folder = tmp_path / "my images"
    folder.mkdir()
    answers = {"dataset": OWN_DATA, "dataset_path": BY_NAME["dataset_path"].parse(str(folder)), "language": "en"}
    names = asked(NO_GPU, answers)
    assert names[names.index("dataset") + 1:names.index("dataset") + 3] == ["dataset_path", "language"]
    recipe = answers_to_recipe(answers, NO_GPU)
    assert recipe.data.dataset == str(folder.resolve())
    assert (recipe.data.format, recipe.data.language, recipe.data.subset) == ("auto", "en", None)
    assert resolve_prompt(recipe) == task_prompt("caption", "en")
    assert recipe.name == "demo-my-images"
    with pytest.raises(ValueError, match="nothing at"):
        BY_NAME["dataset_path"].parse(str(tmp_path / "missing"))
    with_format = answers_to_recipe({**answers, "advanced": True, "data_format": "coco"}, NO_GPU)
    assert with_format.data.format == "coco"


def test_other_model_local_folder_or_modelscope_id(tmp_path):
    parse = BY_NAME["model_other"].parse
    local = answers_to_recipe({"model": OTHER_MODEL, "model_other": parse(str(tmp_path))}, gpus(24))
    assert (local.model.id, local.model.source) == (str(tmp_path.resolve()), "local")
    hub = answers_to_recipe({"model": OTHER_MODEL, "model_other": parse("someone/Qwen2-VL-2B-Instruct-ft")},
                            gpus(24))
    assert (hub.model.id, hub.model.source) == ("someone/Qwen2-VL-2B-Instruct-ft", "modelscope")
    for bad in ["", "not an id", "./missing-folder"]:
        with pytest.raises(ValueError):
            parse(bad)


# ----------------------------------------------------------------------------- typed text answers
@pytest.mark.parametrize("name,text,ok", [
    ("epochs", "1.5", 1.5), ("epochs", "0", None), ("epochs", "x", None),
    ("batch_size", "4", 4), ("batch_size", "2.5", None), ("batch_size", "-1", None),
    ("learning_rate", "2e-4", 2e-4), ("learning_rate", "1", None),
    ("name", "my-run_1.0", "my-run_1.0"), ("name", "bad name", None), ("name", "-x", None),
    ("max_samples", "", None), ("eval_fraction", "0", 0.0), ("eval_fraction", "1", None),
])
def test_text_answers_are_typed_and_checked(name, text, ok):
    q = BY_NAME[name]
    if ok is None and not (name == "max_samples"):
        with pytest.raises(ValueError):
            q.parse(text)
    else:
        assert q.parse(text) == ok


def test_text_defaults_are_shown_as_typed():
    assert BY_NAME["learning_rate"].show(0.002) == "0.002"
    assert BY_NAME["epochs"].show(2.0) == "2"
    assert BY_NAME["max_samples"].show(None) == ""


# ----------------------------------------------------------------------------- back
def test_back_returns_to_the_previous_question_with_its_answer_as_default():
    walk = Walk(NO_GPU)
    assert not walk.can_go_back and walk.back() is False  # nothing before the first question
    walk.answer(DEMO_MODEL_ID)
    walk.answer("modelscope/coco_2014_caption")
    assert walk.current.name == "strategy"
    assert walk.back() and walk.current.name == "dataset"
    assert walk.default() == "modelscope/coco_2014_caption"
    assert walk.back() and walk.current.name == "model"
    assert walk.default() == DEMO_MODEL_ID


def test_back_then_same_answer_keeps_later_answers():
    walk = Walk(NO_GPU)
    for value in [DEMO_MODEL_ID, DEMO_DATASET_ID, "en", "qlora"]:
        walk.answer(value)
    assert walk.current.name == "epochs"
    walk.back()
    walk.back()  # at language
    walk.answer("en")  # unchanged
    assert walk.current.name == "strategy" and walk.default() == "qlora"


def test_back_then_changed_answer_resets_accepted_defaults_but_keeps_typed_answers():
    walk = Walk(NO_GPU)
    typed = DEMO_RECIPE_EPOCHS + 1  # typed: differs from the demo's default
    for value in [DEMO_MODEL_ID, DEMO_DATASET_ID, "zh", "lora", typed]:
        walk.answer(value)
    walk.answer(walk.default())  # batch size: the demo's default, accepted
    for _ in range(6):
        walk.back()
    assert walk.current.name == "model"
    walk.answer(QWEN2B)  # changed: the demo's accepted defaults no longer apply
    assert walk.answers == {"model": QWEN2B, "epochs": typed}
    assert walk.current.name == "dataset" and walk.default() == "modelscope/coco_2014_caption"
    while walk.current.name != "max_pixels":
        walk.answer(walk.default())
    assert walk.default() == 401408  # the 2B model's recommended size, not the demo's
    recipe = walk.recipe()
    assert recipe.train.epochs == typed and recipe.train.batch_size == 8


def test_a_kept_choice_no_longer_offered_falls_back_to_the_new_default():
    walk = Walk(NO_GPU)
    for value in [DEMO_MODEL_ID, DEMO_DATASET_ID, "zh", "lora", 2.0, 16, 0.002, 16, 25088]:
        walk.answer(value)  # max_pixels 25088: typed (not the default 12544)
    while walk.current.name != "model":
        walk.back()
    walk.answer(QWEN2B)
    while walk.current.name != "max_pixels":
        walk.answer(walk.default())
    assert walk.default() == 401408  # 25088 is not among the 2B model's sizes


def test_applying_a_memory_suggestion_is_like_answering_it():
    machine = gpus(24)
    walk = Walk(machine)
    for name, value in [("model", QWEN7B), ("dataset", "AI-ModelScope/M3IT:coco-cn"), ("strategy", "full"),
                        ("epochs", 1.0)]:
        assert walk.current.name == name
        walk.answer(value)
    while not walk.done:
        walk.answer(walk.default())
    before = walk.recipe()
    est = estimate_memory(before, list(machine.gpus))
    assert est.fits is False and est.suggested_overrides
    walk.apply(est.suggested_overrides)
    after = walk.recipe()
    assert after.tuning.strategy.value != "full"
    assert after.train.learning_rate == pytest.approx(1e-4)  # accepted default follows the strategy
    assert after.name.endswith(after.tuning.strategy.value)
    assert after.train.epochs == 1.0  # typed: kept
    assert estimate_memory(after, list(machine.gpus)).fits


def test_applying_an_advanced_suggestion_turns_advanced_settings_on():
    walk = Walk(NO_GPU)
    while not walk.done:
        walk.answer(walk.default())
    walk.apply(["train.gradient_checkpointing=true", "train.batch_size=4", "train.grad_accum=4"])
    recipe = walk.recipe()
    assert recipe.train.gradient_checkpointing and (recipe.train.batch_size, recipe.train.grad_accum) == (4, 4)


def test_back_over_a_question_that_appeared_only_because_of_an_answer():
    walk = Walk(NO_GPU)
    walk.answer(DEMO_MODEL_ID)
    walk.answer(DEMO_DATASET_ID)
    walk.answer("zh")
    walk.answer("full")
    for _ in range(5):  # epochs, batch, lr, (no lora rank for full) max_pixels, advanced
        walk.answer(walk.default())
    assert walk.current.name == "name"
    walk.back()
    assert walk.current.name == "advanced"
    walk.back()
    assert walk.current.name == "max_pixels"
    walk.back()
    assert walk.current.name == "learning_rate"  # lora_rank was never asked, so back skips it


# ----------------------------------------------------------------------------- "Change an answer…"
def _done_walk(machine: Machine, **answers) -> Walk:
    walk = Walk(machine)
    while not walk.done:
        q = walk.current
        walk.answer(answers[q.name] if q.name in answers else walk.default())
    return walk


def test_change_an_answer_lists_every_field_and_edits_only_that_one():
    walk = _done_walk(NO_GPU, epochs=2.0)
    names = [q.name for q, _ in walk.fields()]
    assert "learning_rate" in names and "seed" in names and "advanced" not in names  # advanced ones too
    walk.edit("learning_rate")
    assert walk.current.name == "learning_rate" and walk.default() == pytest.approx(0.004)
    walk.answer(0.002)
    assert walk.done  # straight back to the summary
    r = walk.recipe()
    assert r.train.learning_rate == pytest.approx(0.002) and r.train.epochs == 2.0


def test_changing_an_advanced_answer_with_advanced_settings_off_keeps_the_rest():
    walk = _done_walk(NO_GPU)
    walk.edit("seed")
    walk.answer(7)
    assert walk.done
    demo = load_recipe(ROOT / "recipes" / "demo-shapes.yaml")
    assert walk.recipe().model_copy(update={"train": demo.train}) == demo  # nothing else moved
    assert walk.recipe().train.model_dump() == {**load_recipe(ROOT / "recipes" / "demo-shapes.yaml")
                                                .train.model_dump(), "seed": 7}


def test_changing_to_own_data_asks_for_its_path_then_returns(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    walk = _done_walk(NO_GPU)
    walk.edit("dataset")
    walk.answer(OWN_DATA)
    assert walk.current.name == "dataset_path"  # no usable default: asked
    walk.answer(str(tmp_path))
    assert walk.done and walk.recipe().data.dataset == str(tmp_path)


def test_backing_out_of_a_change_leaves_the_answers_as_they_were():
    walk = _done_walk(NO_GPU)
    before = walk.recipe()
    walk.edit("dataset")
    walk.answer(OWN_DATA)
    assert walk.current.name == "dataset_path"
    walk.stop_editing()  # "<" at the path question: back to the summary, nothing changed
    assert walk.done and walk.recipe() == before


# ----------------------------------------------------------------------------- the summary's numbers
def test_demo_plan_counts_the_trainers_steps_and_says_the_time_is_measured():
    from wizard.plan import make_plan

    p = make_plan(answers_to_recipe({}, NO_GPU), NO_GPU)
    assert p.steps == 290  # 461 images x 2 phrasings = 922 captions, batch 16, 5 epochs (train.log agrees)
    assert "measured" in p.time_basis and p.download_lines == ["model: built in, nothing to download",
                                                               "data: generated, nothing to download"]
    half = make_plan(answers_to_recipe({"batch_size": 32, "epochs": 1.0}, NO_GPU), NO_GPU)
    assert half.steps == 29


def test_gpu_time_is_rough_and_unknown_gpus_get_none():
    from wizard.plan import make_plan

    machine = Machine(gpus=(GpuInfo(0, "NVIDIA H100 80GB HBM3", 80 * GiB),), ram_bytes=64 * GiB, cpu_count=16)
    r = answers_to_recipe({"model": QWEN2B, "max_samples": 1000, "advanced": True}, machine)
    p = make_plan(r, machine, downloads=False)
    assert p.steps is None and "at most" in p.steps_text  # real data: counted when read
    r = r.model_copy(update={"train": r.train.model_copy(update={"max_steps": 100})})
    p = make_plan(r, machine, downloads=False)
    assert p.steps == 100 and "rough" in p.time_basis and "not measured" in p.time_basis
    other = Machine(gpus=(GpuInfo(0, "Mystery GPU", 80 * GiB),), ram_bytes=64 * GiB, cpu_count=16)
    assert make_plan(r, other, downloads=False).time_text == "no estimate"


def test_tight_when_only_the_upper_bound_does_not_fit_and_the_suggestion_comes_first():
    from wizard.ask.summary import summarize

    # checkpointing fixed on: with auto it would switch itself on for the smaller GPU and fit easily
    recipe = _with_overrides(answers_to_recipe({"model": QWEN2B, "strategy": "lora"}, gpus(80)),
                             ["train.gradient_checkpointing=true"])
    need = estimate_memory(recipe, list(gpus(80).gpus)).per_device_bytes
    machine = Machine(gpus=(GpuInfo(0, "NVIDIA test GPU", int(need * 1.15)),), ram_bytes=64 * GiB, cpu_count=16)
    r = summarize(recipe, machine, downloads=False)
    assert r.verdict == "tight" and r.suggested_overrides  # offered first on the summary
    fixed = estimate_memory(_with_overrides(recipe, r.suggested_overrides), list(machine.gpus))
    assert fixed.per_device_bytes * 1.3 <= machine.gpus[0].total_bytes  # the upper bound fits after it
    assert summarize(recipe, gpus(200), downloads=False).verdict == "fits"


def _with_overrides(recipe, overrides):
    from wizard.recipe import apply_overrides

    return apply_overrides(recipe, overrides)


def test_download_line_from_the_hub_list_then_the_cache_then_the_catalog(hub_server, hub_env, tmp_path):
    from tests.hubserver import serve_folder_as_model, tiny_safetensors
    from wizard import hub
    from wizard.plan import _model_download

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(tiny_safetensors(300_000_000 // 1000))
    serve_folder_as_model(hub_server, "owner/tiny", folder)
    _model_download.cache_clear()
    listed = _model_download("owner/tiny", "master")
    assert "to download (the hub's file list)" in listed
    hub.fetch_snapshot("owner/tiny", "model")
    _model_download.cache_clear()
    assert _model_download("owner/tiny", "master").startswith("in the cache")
    hub_server.stop()
    _model_download.cache_clear()
    offline = _model_download(QWEN2B, "master")  # nothing cached, hub gone: the catalog's figure
    assert "4.1 GiB" in offline and "catalog" in offline and "not reachable" in offline
    _model_download.cache_clear()
