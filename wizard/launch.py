"""The parent side of launching: which processes start where, and starting them.

    plan = plan_launch(recipe)                  # processes, nodes, which GPUs, strategy (no torch)
    proc = start_backend(run_dir, recipe)       # python -m wizard.train.backend, or torchrun -m ... of it
    slurm_script(recipe, "recipes/x.yaml")      # `caption-wizard run X --print-launch slurm`

    python -m wizard.commands.prepare RECIPE [KEY=VALUE ...]  # a cluster job's first step: the run folder

Several processes always go through torchrun (torch.distributed.run), the engine that also
spans machines; the process group is the Trainer's (accelerate's): gloo on the CPU, NCCL on
GPUs. FSDP and DeepSpeed ZeRO are the Trainer's own integrations, fed with configs this module
writes into RUN/launch/ (fsdp.json, deepspeed.json), so a run folder shows exactly what ran;
the training process reads them back (wizard.train.dist.training_arguments).

Which GPUs: launch.devices indexes the GPUs this process sees, i.e. the user's
CUDA_VISIBLE_DEVICES is composed with it, never overwritten: CUDA_VISIBLE_DEVICES=2,3 with
devices [1] trains on physical GPU 3. One process never sees several GPUs (the Trainer would
wrap the model in nn.DataParallel, which splits Qwen2-VL's packed pixel_values by patch).

The training process is started by module name (rundir.BACKEND_MODULE): nothing here imports
wizard.train. No torch import: the runner and the wizard use the plan before any training.
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

from wizard import rundir
from wizard.errors import UserError
from wizard.recipe import LaunchStrategy, Recipe

# torchrun waits this long after forwarding a stop signal before it SIGKILLs the workers: long
# enough for the step in progress, a checkpoint and the exit (its default, 30 s, is not).
SHUTDOWN_TIMEOUT_S = 900


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
    from wizard.machine import cuda_visible_entries, detect_gpus

    entries = cuda_visible_entries(env)
    if entries is not None:
        # CUDA stops at the first invalid entry; NVML tells how many really exist
        return entries[:count] if count is not None else entries
    if count is None:
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
    backend = ["-m", rundir.BACKEND_MODULE, str(run_dir)] + (["--resume"] if resume else [])
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
    from wizard import rundir

    plan = plan_launch(recipe)
    cmd = backend_command(plan, run_dir, resume=resume)
    env = backend_env(plan, env)
    write_configs(recipe, run_dir, plan)
    with open(Path(run_dir) / rundir.LOG_FILE, "ab") as log:
        log.write(f"=== caption-wizard {log_header} {rundir.now_iso()}: {plan.describe()}: {shlex.join(cmd)}\n".encode())
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
    from wizard import rundir

    if returncode is None:
        return None
    status = rundir.read_state(run_dir).get("status")
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
        f"RUN_DIR=$(python -m wizard.commands.prepare {args} launch.nodes=$SLURM_NNODES)",
        'HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        'echo "run folder: $RUN_DIR  (watch it with: caption-wizard watch $RUN_DIR)"',
        "export OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1",
        "",
        "srun --kill-on-bad-exit=1 python -m torch.distributed.run \\",
        f"    --nnodes=$SLURM_NNODES --nproc-per-node={per_node} \\",
        f"    --rdzv-backend=c10d --rdzv-endpoint=$HEAD:{launch.master_port} --rdzv-id=$SLURM_JOB_ID \\",
        f"    --shutdown-timeout={SHUTDOWN_TIMEOUT_S} \\",
        f'    -m {rundir.BACKEND_MODULE} "$RUN_DIR" >> "$RUN_DIR/{rundir.LOG_FILE}" 2>&1',
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
    folder = Path(run_dir) / rundir.LAUNCH_DIR
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
