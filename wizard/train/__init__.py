"""What runs inside a training process (one per rank): `python -m wizard.train.backend RUN_DIR [--resume]`.

backend (setup, train, save, finish), dist (rank, world size, the Trainer's DDP/FSDP/DeepSpeed
arguments), load (the model as the plan says: 4-bit, LoRA, freezing), collate, trainer (the loss on
caption positions), callbacks (events, state, checkpoints, signals), vision_cache, swiglu, stages.

May import: torch, transformers, peft, bitsandbytes, accelerate; the torch-free planning modules
(recipe, catalog, model, estimate, data, hub, evaluate, metrics, plot, progress) and wizard.rundir.
Never the front end (cli, commands, ask, dashboard, runner, launch, console): the two processes share
only the run folder. Nothing outside train/ (and the tests) imports it; the runner starts it by name.
"""
