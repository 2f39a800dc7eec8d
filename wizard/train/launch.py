"""How the training process(es) start: one process, or one per GPU (or N on the CPU) via torchrun.

    plan = plan_launch(recipe)                  # processes, nodes, which GPUs, strategy (no torch)
    proc = start_backend(run_dir, recipe)       # python -m wizard.train.backend, or torchrun -m ... of it
    training_arguments(recipe, run_dir)         # the Trainer's own DDP/FSDP/DeepSpeed settings
    slurm_script(recipe, "recipes/x.yaml")      # `caption-wizard run X --print-launch slurm`

    python -m wizard.train.launch prepare RECIPE [KEY=VALUE ...]   # make the run folder, print its path

Several processes always go through torchrun (torch.distributed.run), the engine that also
spans machines; the process group is the Trainer's (accelerate's): gloo on the CPU, NCCL on
GPUs. FSDP and DeepSpeed ZeRO are the Trainer's own integrations, fed with configs this module
writes into RUN/launch/ (fsdp.json, deepspeed.json), so a run folder shows exactly what ran.

Which GPUs: launch.devices indexes the GPUs this process sees, i.e. the user's
CUDA_VISIBLE_DEVICES is composed with it, never overwritten: CUDA_VISIBLE_DEVICES=2,3 with
devices [1] trains on physical GPU 3. One process never sees several GPUs (the Trainer would
wrap the model in nn.DataParallel, which splits Qwen2-VL's packed pixel_values by patch).

No torch import at module level: the runner and the wizard use the plan before any training.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard.errors import UserError
from wizard.recipe import LaunchStrategy, Recipe

# torchrun waits this long after forwarding a stop signal before it SIGKILLs the workers: long
# enough for the step in progress, a checkpoint and the exit (its default, 30 s, is not).
SHUTDOWN_TIMEOUT_S = 900
LAUNCH_DIR = "launch"  # RUN/launch/: the generated FSDP / DeepSpeed configs
ALLOW_RESIZE_ENV = "CAPTION_WIZARD_ALLOW_RESIZE"


# ----------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class LaunchPlan:
    processes: int  # on this machine
    nodes: int
    node_rank: int
    gpus: tuple[str, ...] | None  # CUDA_VISIBLE_DEVICES entries for this machine; None: the CPU
    strategy: LaunchStrategy
    master_addr: str
    master_port: int

    @property
    def world_size(self) -> int:
        return self.processes * self.nodes

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        where = f"GPU {','.join(self.gpus)}" if self.gpus else "the CPU (gloo)"
        nodes = f" x {self.nodes} machines" if self.nodes > 1 else ""
        return f"{self.processes} process{'es' if self.processes > 1 else ''} on {where}{nodes}, {self.strategy.value}"


def describe_launch(recipe: Recipe) -> str:
    """One line for --dry-run: what would start on this machine (or why it cannot)."""
    try:
        plan = plan_launch(recipe)
    except UserError as e:
        return f"not on this machine: {e.message}"
    how = "torchrun" if plan.distributed else "one process"
    return f"{plan.describe()} ({how}; global batch {plan.world_size} x {recipe.train.batch_size})"


def visible_gpus(env: dict[str, str] | None = None, count: int | None = None) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (indices, UUIDs or MIG ids)."""
    env = os.environ if env is None else env
    spec = env.get("CUDA_VISIBLE_DEVICES")
    if spec is not None:
        entries = [x.strip() for x in spec.split(",") if x.strip()]
        if not entries or entries[0] == "-1":
            return []
        # CUDA stops at the first invalid entry; NVML tells how many really exist
        return entries[:count] if count is not None else entries
    if count is None:
        from wizard.machine import detect_gpus

        count = len(detect_gpus())
    return [str(i) for i in range(count)]


def plan_launch(recipe: Recipe, gpus: list[str] | None = None) -> LaunchPlan:
    """Processes and GPUs for `recipe` on this machine; `gpus`: the visible GPUs (tests pass them)."""
    launch = recipe.launch
    visible = visible_gpus() if gpus is None else list(gpus)
    if launch.devices == "cpu" or (launch.devices == "auto" and not visible):
        if launch.strategy != LaunchStrategy.ddp:  # accelerate shards (FSDP, DeepSpeed) on accelerators only
            raise UserError(f"launch.strategy = {launch.strategy.value}: sharding runs on CUDA GPUs only "
                            "(the Trainer's FSDP and DeepSpeed integrations do not shard CPU processes)",
                            hint="on the CPU use launch.strategy=ddp: N processes with gloo")
        chosen = None
        processes = launch.processes or 1
    else:
        if launch.devices == "auto":
            chosen = visible[:launch.processes] if launch.processes else visible
            if launch.processes and launch.processes > len(visible):
                raise UserError(f"launch.processes = {launch.processes} but only {len(visible)} GPUs are visible "
                                f"({_visible_text()})", hint="one process per GPU: leave launch.processes out")
        else:
            missing = [i for i in launch.devices if i >= len(visible)]
            if missing and not visible:
                raise UserError(f"launch.devices = {launch.devices}: no CUDA GPU is visible on this machine",
                                hint="run it on a GPU machine, or train on the CPU with launch.devices=cpu")
            if missing:
                raise UserError(f"launch.devices = {launch.devices}: GPU {missing[0]} is not visible here "
                                f"({len(visible)} GPUs: {_visible_text()})",
                                hint="indices count from 0 among the visible GPUs; or use launch.devices=auto")
            chosen = [visible[i] for i in launch.devices]
        processes = len(chosen)
    return LaunchPlan(processes=processes, nodes=launch.nodes, node_rank=launch.node_rank,
                      gpus=tuple(chosen) if chosen is not None else None, strategy=launch.strategy,
                      master_addr=launch.master_addr, master_port=launch.master_port)


def _visible_text() -> str:
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"CUDA_VISIBLE_DEVICES={spec}" if spec is not None else "all of this machine's GPUs"


# ----------------------------------------------------------------------------- command and env
def backend_command(plan: LaunchPlan, run_dir: str | os.PathLike, *, resume: bool = False,
                    python: str = sys.executable) -> list[str]:
    backend = ["-m", "wizard.train.backend", str(run_dir)] + (["--resume"] if resume else [])
    if not plan.distributed:
        return [python, *backend]
    torchrun = [python, "-m", "torch.distributed.run", f"--nproc-per-node={plan.processes}",
                f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}"]
    if plan.nodes == 1:
        torchrun.append("--standalone")  # a free port on localhost: several runs side by side
    else:
        torchrun += [f"--nnodes={plan.nodes}", f"--node-rank={plan.node_rank}",
                     f"--master-addr={plan.master_addr}", f"--master-port={plan.master_port}"]
    return [*torchrun, *backend]


def backend_env(plan: LaunchPlan, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    if plan.gpus is None:
        env["CUDA_VISIBLE_DEVICES"] = ""  # CPU processes: no CUDA context, gloo
    else:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(plan.gpus)  # the user's list, narrowed to launch.devices
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # same numbering as nvidia-smi and NVML
    if plan.distributed and plan.gpus is None:
        # one OpenMP thread pool per process would oversubscribe the cores: share them out
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        env.setdefault("OMP_NUM_THREADS", str(max(1, cores // plan.processes)))
    return env


def start_backend(run_dir: Path, recipe: Recipe, *, resume: bool = False, env: dict[str, str] | None = None,
                  log_header: str = "run", pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """The training process(es) in their own session; stdout and stderr go to RUN/train.log."""
    from wizard import runs

    plan = plan_launch(recipe)
    cmd = backend_command(plan, run_dir, resume=resume)
    env = backend_env(plan, env)
    write_configs(recipe, run_dir, plan)
    with open(Path(run_dir) / runs.LOG_FILE, "ab") as log:
        log.write(f"=== caption-wizard {log_header} {runs.now_iso()}: {plan.describe()}: {shlex.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, pass_fds=pass_fds)  # pass_fds: the run lock
    return Launched(proc, Path(run_dir)) if plan.distributed else proc


class Launched:
    """A torchrun process whose exit status reads as the run's: stopped -> 130, not torchrun's 1."""

    def __init__(self, proc: subprocess.Popen, run_dir: Path):
        self._proc, self.run_dir = proc, run_dir

    def poll(self) -> int | None:
        return exit_status(self.run_dir, self._proc.poll())

    def wait(self, timeout: float | None = None) -> int:
        return exit_status(self.run_dir, self._proc.wait(timeout))

    @property
    def returncode(self) -> int | None:
        return exit_status(self.run_dir, self._proc.returncode)

    def __getattr__(self, name: str):  # pid, send_signal, terminate, kill, ...
        return getattr(self._proc, name)


def exit_status(run_dir: str | os.PathLike, returncode: int | None) -> int | None:
    """The run's verdict from state.json when the launcher's own exit status says less.

    torchrun exits 1 (with a traceback) after forwarding a stop signal, and with the status of
    whichever worker failed first; state.json, written by rank 0, says what happened."""
    from wizard import runs

    if returncode is None:
        return None
    status = runs.read_state(run_dir).get("status")
    if status == "stopped" or (status == "running" and returncode != 0):
        return 130  # stopped by a signal, or interrupted: a process died and took the others down
    if status == "completed" and returncode != 0:
        return 0
    return returncode


# ----------------------------------------------------------------------------- several machines
def other_nodes_command(recipe_path: str, overrides: list[str], plan: LaunchPlan) -> list[str]:
    """What to type on the other machines: the same recipe and overrides, another node_rank."""
    keep = [o for o in overrides if not o.startswith(("launch.node_rank=", "launch.master_addr="))]
    addr = plan.master_addr if plan.master_addr not in ("127.0.0.1", "localhost") else _my_address()
    return [shlex.join(["caption-wizard", "run", recipe_path, *keep, f"launch.master_addr={addr}",
                        f"launch.node_rank={k}"]) for k in range(1, plan.nodes)]


def _my_address() -> str:
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent: picks the outgoing interface
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def slurm_script(recipe: Recipe, recipe_path: str, overrides: list[str] | None = None) -> str:
    """A Slurm batch script: prepare the run folder once, then srun one torchrun per node (c10d rendezvous)."""
    launch = recipe.launch
    gpus = len(launch.devices) if isinstance(launch.devices, list) else launch.processes
    per_node = gpus or 8
    on_cpu = launch.devices == "cpu"
    args = shlex.join([recipe_path, *(o for o in overrides or [] if not o.startswith("launch.nodes="))])
    lines = [
        "#!/bin/bash",
        f"# caption-wizard: {recipe.name} on {launch.nodes} node(s) x {per_node} {'process' if on_cpu else 'GPU'}(s), "
        f"strategy {launch.strategy.value}",
        f"# submit with: sbatch {recipe.name}.slurm   (written by: caption-wizard run {args} --print-launch slurm)",
        f"#SBATCH --job-name={recipe.name}",
        f"#SBATCH --nodes={launch.nodes}",
        "#SBATCH --ntasks-per-node=1               # one torchrun per node; it starts the per-GPU processes",
        *([] if on_cpu else [f"#SBATCH --gpus-per-node={per_node}"]),
        "#SBATCH --cpus-per-task=16",
        "#SBATCH --output=%x-%j.out",
        "set -euo pipefail",
        "",
        "# the run folder must be on storage every node sees (checkpoints are written by all ranks)",
        f"RUN_DIR=$(python -m wizard.train.launch prepare {args} launch.nodes=$SLURM_NNODES)",
        'HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        'echo "run folder: $RUN_DIR  (watch it with: caption-wizard watch $RUN_DIR)"',
        "export OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1",
        "",
        "srun --kill-on-bad-exit=1 python -m torch.distributed.run \\",
        f"    --nnodes=$SLURM_NNODES --nproc-per-node={per_node} \\",
        f"    --rdzv-backend=c10d --rdzv-endpoint=$HEAD:{launch.master_port} --rdzv-id=$SLURM_JOB_ID \\",
        f"    --shutdown-timeout={SHUTDOWN_TIMEOUT_S} \\",
        '    -m wizard.train.backend "$RUN_DIR" >> "$RUN_DIR/train.log" 2>&1',
        "",
        "# stopped or preempted: continue with  caption-wizard resume $RUN_DIR  (same number of GPUs)",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- configs for the Trainer
def deepspeed_config(stage: int) -> dict[str, Any]:
    """ZeRO-2/3; "auto" values are filled from the TrainingArguments by transformers."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True,
                            "reduce_bucket_size": "auto"}
    if stage == 3:
        zero.update({"stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto",
                     "stage3_gather_16bit_weights_on_model_save": True})  # adapter/ gets whole tensors
    else:
        zero.update({"allgather_partitions": True, "reduce_scatter": True, "allgather_bucket_size": 2e8})
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1_000_000_000,  # progress comes from our events, not DeepSpeed's prints
        "wall_clock_breakdown": False,
    }


def fsdp_config(recipe: Recipe) -> dict[str, Any]:
    """FSDP for a PEFT model: use_orig_params because frozen and trained weights share a shard.

    Wrapped per decoder layer and vision block (the model's own _no_split_modules)."""
    return {
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "use_orig_params": True,
        "sync_module_states": True,  # rank 0's weights everywhere (LoRA init is seeded, but be sure)
        "limit_all_gathers": True,
        "state_dict_type": "SHARDED_STATE_DICT",  # checkpoints: each rank its shard, no gather
        "activation_checkpointing": False,  # train.gradient_checkpointing does it inside the model
    }


def write_configs(recipe: Recipe, run_dir: str | os.PathLike, plan: LaunchPlan | None = None) -> dict[str, Path]:
    """RUN/launch/fsdp.json or deepspeed.json for the chosen strategy (none for ddp)."""
    from wizard.fsutil import atomic_write_text

    strategy = recipe.launch.strategy
    folder = Path(run_dir) / LAUNCH_DIR
    out: dict[str, Path] = {}
    if strategy == LaunchStrategy.fsdp:
        out["fsdp"] = folder / "fsdp.json"
        config = fsdp_config(recipe)
    elif strategy in (LaunchStrategy.zero2, LaunchStrategy.zero3):
        require_deepspeed()
        out["deepspeed"] = folder / "deepspeed.json"
        config = deepspeed_config(2 if strategy == LaunchStrategy.zero2 else 3)
    else:
        return out
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(next(iter(out.values())), json.dumps(config, indent=2) + "\n")
    return out


def require_deepspeed() -> None:
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise UserError("launch.strategy zero2/zero3 needs DeepSpeed, which is not installed",
                        hint="pip install 'caption-wizard[deepspeed]' (or use launch.strategy=fsdp, which "
                             "needs nothing extra)")


def training_arguments(recipe: Recipe, run_dir: str | os.PathLike, world_size: int) -> dict[str, Any]:
    """TrainingArguments keywords for several processes (an empty dict for one)."""
    if world_size <= 1:
        return {}
    kw: dict[str, Any] = {
        # every trainable weight (LoRA, modules_to_save, the vision tower when it trains) takes part in
        # every forward: no search for unused ones (it costs a graph walk per step)
        "ddp_find_unused_parameters": False,
        "ddp_timeout": 1800,  # a rank saving a big checkpoint must not time out the others' barrier
        "save_on_each_node": False,
    }
    folder = Path(run_dir) / LAUNCH_DIR
    strategy = recipe.launch.strategy
    if strategy == LaunchStrategy.fsdp:
        kw["fsdp"] = "full_shard auto_wrap"
        kw["fsdp_config"] = json.loads((folder / "fsdp.json").read_text(encoding="utf-8"))
    elif strategy in (LaunchStrategy.zero2, LaunchStrategy.zero3):
        require_deepspeed()
        kw["deepspeed"] = str(folder / "deepspeed.json")
    return kw


# ----------------------------------------------------------------------------- memory per GPU
SHARDED_ROWS = {  # estimate rows each strategy splits across the processes (the rest every GPU holds whole)
    LaunchStrategy.ddp: (),
    LaunchStrategy.zero2: ("gradients + AdamW states",),
    LaunchStrategy.zero3: ("model weights", "LoRA adapter", "gradients + AdamW states"),
    LaunchStrategy.fsdp: ("model weights", "LoRA adapter", "gradients + AdamW states"),
}


def per_gpu_bytes(recipe: Recipe, strategy: str | LaunchStrategy, gpus: list | None = None) -> int:
    """The memory estimate per GPU when `strategy` spreads the recipe over its GPUs (wizard.estimate's rows)."""
    from wizard.estimate import SLACK, estimate_memory

    strategy = LaunchStrategy(strategy)
    est = estimate_memory(recipe, gpus, suggest=False)
    n = max(1, len(est.devices))
    rows = [(what, size / n if what in SHARDED_ROWS[strategy] else size) for what, size, _ in est.rows
            if what != "allocator slack"]
    return int((1 + SLACK) * sum(size for _, size in rows))


# ----------------------------------------------------------------------------- inside each process
def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def bind_local_device() -> None:
    """torch.cuda.set_device(LOCAL_RANK) before anything touches CUDA: no stray context on GPU 0."""
    if "LOCAL_RANK" not in os.environ or os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


def check_world_size(lock: dict, *, resume: bool, warn=None, run_dir: str | os.PathLike | None = None) -> None:
    """In each process of a resume: another number of processes than the checkpoint's is refused
    (it changes the global batch and the data position) unless the runner allowed it (--allow-resize)."""
    device = lock.get("device")
    if not resume or not device:
        return
    before, now = int(device.get("world_size") or 1), world_size()
    if before == now:
        return
    if os.environ.get(ALLOW_RESIZE_ENV) != "1":
        raise UserError(resize_message(before, now), hint=RESIZE_HINT)
    if warn is not None:
        warn(f"resumed with {now} processes after {before} (--allow-resize): the global batch is now {now} x "
             "batch_size and the data order differs from an uninterrupted run")
    if run_dir is not None and rank() == 0:
        from wizard.train.lock import update_lock

        update_lock(run_dir, device={"world_size": now})


RESIZE_HINT = ("resume with the same launch.processes / launch.devices / launch.nodes, or pass --allow-resize "
               "to accept a different global batch and data order")


def resize_message(before: int, now: int) -> str:
    return (f"this run trained with {before} process{'es' if before > 1 else ''}; resuming with {now} changes the "
            f"global batch ({before} x batch_size -> {now} x batch_size), so the learning-rate schedule and the "
            "position in the data no longer match the checkpoint")


def check_resize(lock: dict, recipe: Recipe, *, allow: bool) -> None:
    """Before a resume: refuse another number of processes, or (allow) announce it and let it through."""
    from wizard.console import console

    device = lock.get("device")
    if not device:
        return  # the first session never started training: nothing to compare with
    before, now = int(device.get("world_size") or 1), plan_launch(recipe).world_size
    if before == now:
        return
    if not allow:
        raise UserError(resize_message(before, now), hint=RESIZE_HINT)
    console.print(f"  changed: processes {before} -> {now} (--allow-resize): the global batch and the data order "
                  "change from here on", markup=False)
    os.environ[ALLOW_RESIZE_ENV] = "1"


def announce_nodes(recipe: Recipe, args, start) -> int:
    """Several machines: node 0 prints the others' command; the others say where progress shows."""
    from wizard.console import console

    plan = plan_launch(recipe)
    plain = True if args.plain else None
    if plan.node_rank == 0:
        console.print(f"machine 0 of {plan.nodes} ({plan.describe()}). On each other machine run:", markup=False)
        for line in other_nodes_command(args.recipe, list(args.overrides or []), plan):
            console.print(f"  {line}", markup=False, soft_wrap=True)
        return start(recipe, recipe_path=args.recipe, runs_dir=args.runs_dir, plain=plain)
    console.print(f"machine {plan.node_rank} of {plan.nodes}: training together with machine 0 "
                  f"({plan.master_addr}:{plan.master_port}); progress and the run's record show there", markup=False)
    return _follow_other_node(recipe, args, plan)


def _follow_other_node(recipe: Recipe, args, plan: LaunchPlan) -> int:
    """Machines 1..N-1: their processes write nothing (rank 0 does); this folder records how they ended."""
    import signal

    from wizard import runs
    from wizard.console import console, console_err
    from wizard.hub import resolve_model
    from wizard.runner import create_run, launch_backend
    from wizard.ui.download_progress import RichDownloadProgress

    resolved = resolve_model(recipe.model, progress=RichDownloadProgress(console_err))
    run_dir = create_run(recipe, resolved, runs_dir=args.runs_dir, recipe_path=args.recipe)
    proc = launch_backend(run_dir, recipe)
    runs.write_state(run_dir, pid=proc.pid)
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # torchrun forwards it to this machine's processes; rank 0 saves the checkpoint
        proc.send_signal(signal.SIGINT)
        code = proc.wait()
    status = {0: "completed", 130: "stopped"}.get(code, "failed")
    runs.write_state(run_dir, status=status, message=f"machine {plan.node_rank} of {plan.nodes}: events, "
                     "checkpoints and the adapter are in machine 0's run folder")
    console.print(f"machine {plan.node_rank}: {status} (exit status {code})", markup=False)
    return code


def peer_lost(error: BaseException) -> bool:
    """Did a collective fail because another process of the run died (killed, OOM-killed, node lost)?"""
    if world_size() <= 1:
        return False
    try:
        from torch.distributed import DistBackendError
    except ImportError:  # older torch
        DistBackendError = ()  # noqa: N806
    text = str(error)
    return isinstance(error, DistBackendError) or (isinstance(error, RuntimeError) and any(
        s in text for s in ("Connection reset by peer", "Connection closed by peer", "Broken pipe",
                            "Socket Timeout", "NCCL communicator was aborted")))


# ----------------------------------------------------------------------------- python -m wizard.train.launch
def _prepare(argv: list[str]) -> int:
    """Make the run folder for RECIPE (a cluster job's first step) and print its path."""
    from wizard.console import console_err
    from wizard.hub import resolve_model
    from wizard.recipe import apply_overrides, load_recipe
    from wizard.runner import create_run
    from wizard.ui.download_progress import RichDownloadProgress

    recipe_path, *overrides = argv
    recipe = apply_overrides(load_recipe(recipe_path), overrides)
    resolved = resolve_model(recipe.model, progress=RichDownloadProgress(console_err))
    run_dir = create_run(recipe, resolved, recipe_path=recipe_path)
    write_configs(recipe, run_dir)
    print(run_dir.resolve())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] != "prepare":
        print("usage: python -m wizard.train.launch prepare RECIPE [KEY=VALUE ...]", file=sys.stderr)
        return 2
    try:
        return _prepare(argv[1:])
    except UserError as e:
        print(f"error: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
