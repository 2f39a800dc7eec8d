"""Several processes: the launch section, the torchrun command, env composition, generated configs,
the Slurm script, and real 2-process runs on the CPU with gloo (the way a GPU run is launched).

The 2-process tests train the tiny demo model for a few steps; the same global batch (2 x 4 vs
1 x 8) must log the same losses as one process, a killed rank must leave an interrupted run that
resumes to the same losses, and a NaN on one rank must stop both with one error event.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types

import pytest
import yaml

from tests.conftest import ROOT
from tests.train_support import (checkpoint_events, events, losses, nan_backend_script, only_run, run, start, state,
                                 tiny_model, train_env, wait_for, write_recipe)
from wizard.errors import UserError
from wizard.recipe import apply_overrides, load_recipe
from wizard import launch
from wizard.train import dist

__all__ = ["tiny_model"]  # the session fixture, imported for pytest

DEMO = ROOT / "recipes" / "demo-shapes.yaml"


def demo(*overrides: str):
    return apply_overrides(load_recipe(DEMO), list(overrides))


# ----------------------------------------------------------------------------- the launch section
def test_launch_section_is_typed_and_its_errors_name_the_key():
    r = demo("launch.processes=2", "launch.strategy=fsdp", "launch.nodes=2", "launch.node_rank=1")
    assert (r.launch.processes, r.launch.strategy.value, r.launch.nodes, r.launch.node_rank) == (2, "fsdp", 2, 1)
    with pytest.raises(UserError, match=r"node_rank=2 but launch.nodes=2: node ranks are 0..1"):
        demo("launch.nodes=2", "launch.node_rank=2")
    with pytest.raises(UserError, match=r"launch.strategy = 'zero4'.*ddp.*fsdp.*zero2.*zero3"):
        demo("launch.strategy=zero4")
    with pytest.raises(UserError, match="did you mean launch.processes"):
        demo("launch.procesess=2")
    with pytest.raises(UserError, match="processes=3 but launch.devices lists 2 GPUs"):
        demo("launch.devices=[0,1]", "launch.processes=3")
    with pytest.raises(UserError, match="distinct"):
        demo("launch.devices=[1,1]")


# ----------------------------------------------------------------------------- plan, command, env
def test_cpu_processes_run_under_torchrun_with_gloo_and_a_long_shutdown_timeout(tmp_path):
    plan = launch.plan_launch(demo("launch.processes=2"), gpus=[])
    assert (plan.processes, plan.world_size, plan.gpus) == (2, 2, None)
    cmd = launch.backend_command(plan, tmp_path, resume=True, python="python")
    assert cmd[:3] == ["python", "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in cmd and "--standalone" in cmd
    assert f"--shutdown-timeout={launch.SHUTDOWN_TIMEOUT_S}" in cmd and launch.SHUTDOWN_TIMEOUT_S >= 300
    assert cmd[-4:] == ["-m", "wizard.train.backend", str(tmp_path), "--resume"]
    env = launch.backend_env(plan, {"CUDA_VISIBLE_DEVICES": "0"})
    assert env["CUDA_VISIBLE_DEVICES"] == "" and int(env["OMP_NUM_THREADS"]) >= 1
    one = launch.plan_launch(demo(), gpus=[])
    assert launch.backend_command(one, tmp_path, python="python") == ["python", "-m", "wizard.train.backend",
                                                                        str(tmp_path)]


def test_devices_index_the_users_visible_gpus_and_auto_runs_one_process_per_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    visible = launch.visible_gpus()
    assert visible == ["2", "3"]
    picked = launch.plan_launch(demo("launch.devices=[1]"), gpus=visible)
    assert picked.gpus == ("3",) and picked.processes == 1  # composed, not overwritten: physical GPU 3
    assert launch.backend_env(picked, {"CUDA_VISIBLE_DEVICES": "2,3"})["CUDA_VISIBLE_DEVICES"] == "3"
    auto = launch.plan_launch(demo("launch.devices=auto"), gpus=visible)
    assert auto.gpus == ("2", "3") and auto.processes == 2  # one process per GPU: never DataParallel
    assert "--nproc-per-node=2" in launch.backend_command(auto, "RUN")
    uuids = launch.plan_launch(demo("launch.devices=auto", "launch.processes=1"), gpus=["GPU-aa", "GPU-bb"])
    assert uuids.gpus == ("GPU-aa",)  # a single process sees a single GPU
    with pytest.raises(UserError, match=r"GPU 2 is not visible here \(2 GPUs: CUDA_VISIBLE_DEVICES=2,3\)"):
        launch.plan_launch(demo("launch.devices=[0,2]"), gpus=visible)
    with pytest.raises(UserError, match="sharding runs on CUDA GPUs only"):
        launch.plan_launch(demo("launch.processes=2", "launch.strategy=fsdp"), gpus=[])


def test_several_machines_node_zero_prints_the_others_command():
    recipe = demo("launch.processes=2", "launch.nodes=3", "launch.master_addr=10.0.0.5")
    plan = launch.plan_launch(recipe, gpus=[])
    cmd = launch.backend_command(plan, "RUN", python="python")
    assert {"--nnodes=3", "--node-rank=0", "--master-addr=10.0.0.5", "--master-port=29500"} <= set(cmd)
    assert "--standalone" not in cmd
    others = launch.other_nodes_command("recipes/x.yaml", ["launch.nodes=3", "train.epochs=1"], plan)
    assert others == [f"caption-wizard run recipes/x.yaml launch.nodes=3 train.epochs=1 "
                      f"launch.master_addr=10.0.0.5 launch.node_rank={k}" for k in (1, 2)]


def test_print_launch_slurm_is_a_submittable_batch_script(tmp_path):
    from tests.conftest import run_cli

    out = run_cli("run", "recipes/qwen2-vl-7b-coco-cn-2gpu.yaml", "launch.nodes=2", "--print-launch", "slurm")
    assert out.returncode == 0, out.stderr
    script = out.stdout
    assert script.startswith("#!/bin/bash\n")
    assert "#SBATCH --nodes=2" in script and "#SBATCH --gpus-per-node=2" in script
    assert "srun" in script and "torch.distributed.run" in script and "--rdzv-backend=c10d" in script
    assert "--nproc-per-node=2" in script and "python -m wizard.commands.prepare" in script
    path = tmp_path / "job.slurm"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0  # valid shell


# ----------------------------------------------------------------------------- configs
def test_zero_configs_pass_deepspeeds_own_validation_once_the_trainer_fills_auto(tmp_path):
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    for strategy, stage in (("zero2", 2), ("zero3", 3)):
        recipe = demo("launch.devices=[0,1]", f"launch.strategy={strategy}", "train.precision=bf16")
        written = launch.write_configs(recipe, tmp_path)
        config = json.loads(written["deepspeed"].read_text())
        args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8,
                                 gradient_accumulation_steps=2, use_cpu=True, report_to="none")
        hf = HfTrainerDeepSpeedConfig(config)
        hf.trainer_config_process(args)
        hf.trainer_config_finalize(args, types.SimpleNamespace(config=types.SimpleNamespace(hidden_size=64)), 100)
        ds = DeepSpeedConfig(hf.config)
        assert ds.zero_optimization_stage == stage
        assert (ds.train_micro_batch_size_per_gpu, ds.gradient_accumulation_steps) == (8, 2)
        assert ds.zero_config.gather_16bit_weights_on_model_save is (stage == 3)  # adapter/ gets whole tensors
        kw = dist.training_arguments(recipe, tmp_path, world_size=2)
        assert kw["deepspeed"] == str(written["deepspeed"]) and kw["ddp_find_unused_parameters"] is False


def test_fsdp_config_is_accepted_by_the_trainer_arguments(tmp_path):
    from transformers import TrainingArguments

    recipe = demo("launch.devices=[0,1]", "launch.strategy=fsdp")
    launch.write_configs(recipe, tmp_path)
    kw = dist.training_arguments(recipe, tmp_path, world_size=2)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kw)
    assert args.fsdp and args.fsdp_config["use_orig_params"] is True  # LoRA: frozen and trained in one shard
    assert args.fsdp_config["auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"


def test_deepspeed_missing_says_which_extra_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    with pytest.raises(UserError, match="needs DeepSpeed") as e:
        launch.write_configs(demo("launch.devices=[0,1]", "launch.strategy=zero3"), tmp_path)
    assert "caption-wizard[deepspeed]" in e.value.hint


# ----------------------------------------------------------------------------- exit status, resume
def test_after_a_signal_torchruns_status_reads_as_stopped(tmp_path):
    from wizard import rundir

    rundir.write_state(tmp_path, status="stopped")
    assert launch.exit_status(tmp_path, 1) == 130
    rundir.write_state(tmp_path, status="running")  # a rank died: interrupted, resumable
    assert launch.exit_status(tmp_path, 1) == 130
    rundir.write_state(tmp_path, status="failed")
    assert launch.exit_status(tmp_path, 1) == 1 and launch.exit_status(tmp_path, None) is None


def test_resume_with_another_number_of_processes_is_refused_or_announced(monkeypatch):
    from wizard.runner import check_resize

    lock = {"device": {"kind": "cpu", "world_size": 2}}
    with pytest.raises(UserError, match=r"trained with 2 processes; resuming with 1 changes the global batch"):
        check_resize(lock, demo(), allow=False)
    assert check_resize(lock, demo("launch.processes=2"), allow=False) is None  # same count: fine
    assert "changed: processes 2 -> 1 (--allow-resize)" in check_resize(lock, demo(), allow=True)
    # the training processes read the allowance from lock.json's latest resume (the run-folder contract)
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(UserError, match=r"trained with 2 processes"):
        dist.check_world_size(lock, resume=True)
    warned: list[str] = []
    dist.check_world_size({**lock, "resumes": [{"allow_resize": True}]}, resume=True, warn=warned.append)
    assert "--allow-resize" in warned[0]


# ----------------------------------------------------------------------------- GPUs and memory
def test_nvml_handles_are_matched_by_uuid_or_pci_bus_id_not_by_index(monkeypatch):
    from wizard import machine

    class Info:
        def __init__(self, used, total):
            self.used, self.total = used, total

    gpus = {"GPU-aaa": ("00000000:3B:00.0", Info(1, 10)), "GPU-bbb": ("00000000:5E:00.0", Info(7, 80))}
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: list(gpus)[i],
        nvmlDeviceGetName=lambda h: "NVIDIA H100", nvmlDeviceGetUUID=lambda h: h,
        nvmlDeviceGetMemoryInfo=lambda h: gpus[h][1],
        nvmlDeviceGetHandleByUUID=lambda u: gpus[u] and u,
        nvmlDeviceGetHandleByPciBusId=lambda p: next(u for u, (b, _) in gpus.items() if b == p))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(machine, "_nvml_ready", None)
    assert machine.nvml_memory("GPU-bbb", None) == (7, 80)  # CUDA device 0 of CUDA_VISIBLE_DEVICES=1
    assert machine.nvml_memory(None, "00000000:5E:00.0") == (7, 80)
    assert machine.nvml_memory("GPU-zzz", None) == (None, None)
    monkeypatch.delenv(machine.FAKE_GPUS_ENV, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bb")  # a UUID prefix, as CUDA accepts
    assert [(g.index, g.uuid, g.total_bytes) for g in machine.detect_gpus()] == [(0, "GPU-bbb", 80)]


def test_memory_of_each_rank_is_merged_for_the_panel():
    from wizard.train.callbacks import merge_memory

    gpus = merge_memory([{"kind": "cuda", "devices": [{"index": 0, "allocated": 5}]},
                         {"kind": "cuda", "devices": [{"index": 1, "allocated": 9}]}])
    assert [d["allocated"] for d in gpus["devices"]] == [5, 9]  # each GPU from the rank that owns it
    cpu = merge_memory([{"kind": "cpu", "rss": 3, "peak_rss": 4, "total": 100}] * 2)
    assert (cpu["rss"], cpu["peak_rss"], cpu["processes"]) == (6, 8, 2)


# ----------------------------------------------------------------------------- real 2-process runs (gloo)
TWO = {"launch": {"processes": 2}, "train": {"batch_size": 4, "max_steps": 10, "save_steps": 2}}
ONE = {"train": {"batch_size": 8, "max_steps": 10, "save_steps": 2}}


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("two")
    out = run("run", str(write_recipe(folder, tiny_model, **TWO)), "--plain", "--runs-dir", str(folder / "runs"),
              cwd=folder)
    assert out.returncode == 0, out.stdout + out.stderr + (only_run(folder / "runs") / "train.log").read_text()
    return only_run(folder / "runs")


@pytest.mark.slow
def test_two_processes_log_the_losses_of_one_process_with_the_same_global_batch(tmp_path, tiny_model,
                                                                                   two_process_run):
    run_dir = two_process_run
    out = run("run", str(write_recipe(tmp_path, tiny_model, **ONE)), "--plain", "--runs-dir", str(tmp_path / "r"),
              cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    two, one = losses(run_dir), losses(only_run(tmp_path / "r"))
    assert sorted(two) == sorted(one) == list(range(1, 11))
    assert all(abs(two[s] - one[s]) <= 0.02 * abs(one[s]) for s in one), (two, one)
    end = next(e for e in events(run_dir) if e["type"] == "end")
    assert end["final_loss"] == pytest.approx(two[10]) and end["best_loss"] == pytest.approx(min(two.values()))
    assert state(run_dir)["status"] == "completed" and state(run_dir)["last_loss"] == pytest.approx(two[10])
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(run_dir.glob(".adapter*"))  # rank 0 alone wrote it: no leftovers of a second writer
    assert sum(e["type"] == "start" for e in events(run_dir)) == 1  # one voice in events.jsonl...
    log = (run_dir / "train.log").read_text()
    assert log.count("training: steps 1..10") == 1 and log.count("completed: ") == 1  # ...and in train.log
    start_ev = next(e for e in events(run_dir) if e["type"] == "start")
    assert start_ev["devices"] == ["cpu x2 (gloo)"]
    mem = [e["memory"] for e in events(run_dir) if e["type"] == "log"][-1]
    assert mem["processes"] == 2  # both ranks' memory, gathered
    lock = json.loads((run_dir / "lock.json").read_text())
    assert lock["device"]["world_size"] == 2


RANK1_NAN = nan_backend_script('os.environ["RANK"] == "1"')


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_every_rank_with_one_error_event(tmp_path, tiny_model):
    from wizard.runner import create_run

    class Resolved:
        path, files, revision = tiny_model, {}, None

    recipe = load_recipe(write_recipe(tmp_path, tiny_model, **TWO))
    run_dir = create_run(recipe, Resolved(), runs_dir=tmp_path / "runs")
    script = tmp_path / "nan_rank1.py"
    script.write_text(RANK1_NAN)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(script), str(run_dir)], cwd=ROOT, env=train_env(CUDA_VISIBLE_DEVICES=""),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    errors = [e for e in events(run_dir) if e["type"] == "error"]
    assert len(errors) == 1 and "the loss became nan at step 3" in errors[0]["message"], errors
    assert state(run_dir)["status"] == "failed" and sorted(losses(run_dir)) == [1, 2]


@pytest.mark.slow
def test_killing_one_rank_interrupts_the_run_and_it_resumes_to_the_same_losses(tmp_path, tiny_model,
                                                                               two_process_run):
    recipe = write_recipe(tmp_path, tiny_model, **TWO)
    runs_dir = tmp_path / "runs"
    proc = start("run", str(recipe), "--plain", "--runs-dir", str(runs_dir), cwd=tmp_path)
    wait_for(lambda: checkpoint_events(runs_dir), what="the first checkpoint")
    run_dir = only_run(runs_dir)
    agent = state(run_dir)["pid"]
    ranks = subprocess.run(["ps", "--ppid", str(agent), "-o", "pid="], capture_output=True, text=True).stdout.split()
    assert len(ranks) == 2
    os.kill(int(ranks[-1]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out  # interrupted, not failed
    assert state(run_dir)["status"] == "running"  # ... and `runs` shows it as interrupted:
    from wizard import rundir

    assert rundir.load_run(run_dir).status == "interrupted"

    # another number of processes: refused with the reason, nothing started
    edited = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    edited["launch"]["processes"] = 1
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(edited))
    refused = run("resume", str(run_dir), "--plain", cwd=tmp_path)
    assert refused.returncode == 2 and "trained with 2 processes; resuming with 1" in refused.stderr, refused.stderr
    edited["launch"]["processes"] = 2
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(edited))

    resumed = run("resume", str(run_dir), "--plain", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert losses(run_dir) == pytest.approx(losses(two_process_run), rel=1e-5)
    assert state(run_dir)["status"] == "completed"


# ----------------------------------------------------------------------------- the wizard
def test_the_wizard_asks_how_several_gpus_share_the_model_with_the_memory_per_gpu():
    from wizard.ask.questions import BY_NAME, answers_to_recipe, is_asked
    from wizard.machine import GiB, GpuInfo, Machine

    two = Machine(gpus=(GpuInfo(0, "NVIDIA H100", 80 * GiB), GpuInfo(1, "NVIDIA H100", 80 * GiB)))
    q = BY_NAME["gpu_sharing"]
    base = {"model": "Qwen/Qwen2-VL-7B-Instruct", "strategy": "full"}
    assert is_asked(q, {**base, "devices": [0, 1]}, two) and not is_asked(q, {**base, "devices": [0]}, two)
    choices = q.choices({**base, "devices": [0, 1]}, two)
    assert [c.value for c in choices] == ["ddp", "fsdp", "zero3"]
    per_gpu = {c.value: float(c.title.split("about ")[1].split(" GiB")[0]) for c in choices}
    assert per_gpu["fsdp"] < 0.7 * per_gpu["ddp"]  # a 7B full fine-tune: shards fit where a copy does not
    assert answers_to_recipe({**base, "devices": [0, 1], "gpu_sharing": "fsdp"}, two).launch.strategy.value == "fsdp"
    assert BY_NAME["nodes"].advanced


def test_qlora_weights_are_stored_in_the_compute_dtype_when_sharded():
    import torch

    from wizard.train.load import quant_config

    sharded = apply_overrides(load_recipe(ROOT / "recipes" / "qwen2-vl-7b-coco-cn-2gpu.yaml"), ["launch.strategy=fsdp"])
    assert quant_config(sharded, "bf16", ["visual"]).bnb_4bit_quant_storage == torch.bfloat16  # FSDP can flatten it
    copy = load_recipe(ROOT / "recipes" / "qwen2-vl-7b-coco-cn-2gpu.yaml")
    assert quant_config(copy, "bf16", ["visual"]).bnb_4bit_quant_storage == torch.uint8
