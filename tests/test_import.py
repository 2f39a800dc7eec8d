"""`caption-wizard import`: recipes from ms-swift and LLaMA-Factory setups (sample files in tests/fixtures/import,
written from the tools' documentation and examples)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import ROOT
from wizard.errors import UserError
from wizard.importer import build_recipe, read_source

FIX = ROOT / "tests" / "fixtures" / "import"


def recipe_of(source, **kw):
    imp = read_source(str(source), **kw)
    return imp, build_recipe(imp, "imported", str(source))


def unmapped(imp) -> dict:
    return {key: why for key, _, why in imp.unmapped}


def test_ms_swift_caption_example_script():
    imp, r = recipe_of(FIX / "caption.sh")
    assert (r.model.id, r.model.source) == ("Qwen/Qwen2-VL-7B-Instruct", "modelscope")
    assert (r.data.dataset, r.data.format, r.data.language, r.data.max_samples) == \
        ("modelscope/coco_2014_caption", "coco_csv", "en", 20000)
    assert r.data.max_pixels == 1003520  # from MAX_PIXELS=... in front of the command
    assert r.tuning.strategy.value == "lora" and r.tuning.freeze_vision
    assert (r.tuning.lora.rank, r.tuning.lora.alpha, r.tuning.lora.target_modules) == (8, 32, None)
    assert r.tuning.lora.dropout == 0.05  # ms-swift's default: the script does not set it
    t = r.train
    assert (t.epochs, t.batch_size, t.grad_accum, t.learning_rate, t.warmup_ratio) == (1, 1, 16, 1e-4, 0.05)
    assert (t.save_steps, t.save_total_limit, t.eval_steps, t.logging_steps, t.seed) == (100, 5, 100, 5, 42)
    assert t.precision.value == "bf16" and t.scheduler == "cosine"
    assert t.max_target_length == 2048 - 1280 - 64  # max_length minus the image and prompt tokens
    assert r.launch.devices == [0]
    why = unmapped(imp)
    assert set(why) == {"--dataloader_num_workers", "--output_dir", "--per_device_eval_batch_size"}
    assert "runs/NAME-TIME" in why["--output_dir"]


def test_old_ms_swift_names_and_a_script_with_variables():
    imp, r = recipe_of(FIX / "swift2_qlora.sh")
    assert r.model.id == "Qwen/Qwen2-VL-2B-Instruct"  # --model_type qwen2-vl-2b-instruct (ms-swift 2.x)
    assert r.tuning.strategy.value == "qlora"  # --sft_type lora + --quantization_bit 4
    assert (r.tuning.lora.rank, r.tuning.lora.alpha, r.tuning.lora.dropout) == (64, 128, 0.05)
    assert r.tuning.lora.target_modules == ["q_proj", "v_proj"]
    assert r.data.dataset == str(FIX / "train.jsonl")  # $DATA expanded, resolved next to the script
    assert r.data.eval_fraction == 0.05 and r.train.precision.value == "bf16"
    assert (r.train.max_steps, r.train.warmup_ratio, r.train.batch_size, r.train.learning_rate) == \
        (300, 0.1, 4, 2e-4)
    assert (r.train.grad_accum, r.train.save_steps, r.train.seed) == (2, 50, 7)
    assert r.launch.devices == [0, 1]
    why = unmapped(imp)
    assert "one process per listed device" in why["NPROC_PER_NODE"]
    assert "imported as cosine" in why["--lr_scheduler_type"]
    assert "one dataset" in why["--dataset"]
    assert "DATA" not in why  # a shell variable, not the tool's environment


def test_command_line_with_tuner_type_full():
    imp, r = recipe_of("swift sft --model Qwen/Qwen2.5-VL-3B-Instruct --tuner_type full "
                       "--dataset 'AI-ModelScope/M3IT:flickr8k-cn' --lora_rank 8 --lr_scheduler_type linear")
    assert r.tuning.strategy.value == "full"
    assert (r.data.format, r.data.subset, r.data.language) == ("m3it", "flickr8k-cn", "zh")
    assert r.train.scheduler == "linear"
    assert unmapped(imp)["--lora_rank"] == "a full fine-tune has no LoRA"


def test_ms_swift_args_json_accounts_for_every_key():
    imp, r = recipe_of(FIX / "args.json")
    assert r.tuning.strategy.value == "qlora" and r.tuning.quant.type == "nf4" and r.tuning.quant.double_quant
    assert (r.data.dataset, r.data.subset, r.data.max_samples, r.data.max_pixels) == \
        ("AI-ModelScope/M3IT", "coco-cn", 5000, 602112)
    assert r.train.max_steps is None and r.train.epochs == 3 and r.train.weight_decay == 0.1
    assert (r.generation.max_new_tokens, r.generation.num_beams, r.generation.do_sample) == (64, 1, False)
    keys = set(json.loads((FIX / "args.json").read_text()))
    seen = {k for k, _ in imp.mapped} | set(unmapped(imp))
    assert keys <= seen, sorted(keys - seen)
    assert unmapped(imp)["attn_impl"] == "not set in the source"


def test_llamafactory_yaml_with_dataset_info(monkeypatch):
    monkeypatch.chdir(FIX / "llamafactory")  # LLaMA-Factory resolves dataset_dir from where it runs
    imp, r = recipe_of("examples/train_qlora/qwen2vl_lora_sft.yaml")
    assert r.model.id == "Qwen/Qwen2-VL-7B-Instruct" and r.tuning.strategy.value == "qlora"
    assert (r.tuning.lora.rank, r.tuning.lora.alpha, r.tuning.lora.dropout) == (8, 16, 0.0)  # alpha: 2 x rank
    assert r.data.dataset == str(FIX / "llamafactory" / "data" / "mllm_demo.json")
    assert (r.data.format, r.data.max_pixels, r.data.max_samples) == ("messages", 262144, 1000)
    assert (r.train.epochs, r.train.batch_size, r.train.grad_accum, r.train.warmup_ratio) == (3, 1, 8, 0.1)
    assert r.train.precision.value == "bf16" and r.train.logging_steps == 10
    why = unmapped(imp)
    assert "captions images" in why["video_max_pixels"]
    assert [v for k, v, _ in imp.unmapped if k == "dataset"] == ["identity", "alpaca_en_demo"]


def test_llamafactory_without_its_dataset_info(tmp_path, monkeypatch):
    src = tmp_path / "lf.yaml"
    shutil.copy(FIX / "llamafactory" / "examples" / "train_qlora" / "qwen2vl_lora_sft.yaml", src)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        read_source(str(src))
    assert "dataset_info.json" in e.value.message and "--dataset-info" in e.value.hint
    imp, r = recipe_of(src, dataset_info=str(FIX / "llamafactory" / "data"))
    assert r.data.dataset.endswith("mllm_demo.json")


def test_sources_that_are_not_training_setups(tmp_path):
    script = tmp_path / "infer.sh"
    script.write_text("swift infer --model Qwen/Qwen2-VL-2B-Instruct\n")
    with pytest.raises(UserError, match="no `swift sft` command"):
        read_source(str(script))
    with pytest.raises(UserError, match="no such file"):
        read_source(str(tmp_path / "missing.json"))
    with pytest.raises(UserError, match="already a caption-wizard recipe"):
        read_source(str(ROOT / "recipes" / "demo-shapes.yaml"))
    with pytest.raises(UserError, match="--lora_rank 'eight'"):
        read_source("swift sft --model Qwen/Qwen2-VL-2B-Instruct --dataset x.jsonl --lora_rank eight")


def test_cli_writes_a_recipe_that_replays_and_never_overwrites(tmp_path, cli):
    out = tmp_path / "recipes" / "coco-swift.yaml"
    res = cli("import", str(FIX / "caption.sh"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "not mapped  --output_dir output: caption-wizard writes each run" in res.stdout
    assert "mapped      --lora_rank -> tuning.lora.rank = 8" in res.stdout
    text = out.read_text()
    assert "name: coco-swift" in text
    res = cli("run", str(out), "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "dry run: nothing was trained" in res.stdout + res.stderr  # piped: the YAML alone on stdout

    out.write_text("# mine\n")
    res = cli("import", str(FIX / "caption.sh"), "--out", str(out))
    assert res.returncode == 2 and "already exists" in res.stderr and "--force" in res.stderr
    assert out.read_text() == "# mine\n"
    res = cli("import", str(FIX / "caption.sh"), "--out", str(out), "--force")
    assert res.returncode == 0 and "name: coco-swift" in out.read_text()
