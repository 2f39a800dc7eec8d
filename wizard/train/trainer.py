"""The HF Trainer, with the three things caption-wizard needs on top.

1. Every step's exact loss goes to a LossTracker (logged losses are exact means, resumes included).
2. A NaN/inf loss stops training before the optimizer step: nothing bad reaches a checkpoint.
3. On resume, an edited learning rate is applied (the scheduler state in the checkpoint would
   otherwise silently keep the old one).

And less per-step Python: the base class walks every module and parameter of the model three
times a step (train mode, gradient clipping, zero_grad) although only the adapter trains. On
the demo model that was ~15% of a step; here each walk covers the trainable parameters only.
"""

from __future__ import annotations

import math

import torch
from transformers import Trainer

from wizard.train.callbacks import LossTracker


class NonFiniteLoss(RuntimeError):
    def __init__(self, step: int, value: float):
        super().__init__(f"the loss became {value} at step {step}")
        self.step, self.value = step, value


class CaptionTrainer(Trainer):
    def __init__(self, *args, losses: LossTracker, tokens=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.losses = losses
        self.tokens = tokens  # a TokenCounter (wizard.train.collate): tokens/s for the dashboard
        self.lr_changed: tuple[float, float] | None = None  # (checkpoint's, recipe's) when they differ
        self._trainable = [p for p in self.model.parameters() if p.requires_grad]
        _lean_mode_and_zero_grad(self.model, self._trainable)

    def _clip_grad_norm(self, model):
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or self.args.world_size > 1:
            return super()._clip_grad_norm(model)
        # the same gradients in the same order as model.parameters() (frozen ones have none): same norm
        return self.accelerator.clip_grad_norm_(self._trainable, self.args.max_grad_norm)

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.tokens is not None:
            self.tokens.add(inputs)
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.args.world_size > 1:  # the global batch's loss, the same on every rank: a NaN anywhere stops all
            loss = self.accelerator.reduce(loss.detach().clone(), reduction="mean")
        if not torch.isfinite(loss):  # checked before the optimizer step: the weights stay good
            raise NonFiniteLoss(self.state.global_step + 1, float(loss))
        self.losses.add(loss)
        return loss

    def floating_point_ops(self, inputs) -> int:
        return 0  # the base class walks every parameter on every step to estimate FLOPs; we never report them

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or not hasattr(self.lr_scheduler, "lr_lambdas"):
            return
        wanted = self.args.learning_rate
        saved = self.lr_scheduler.base_lrs[0]
        if math.isclose(saved, wanted, rel_tol=0, abs_tol=0):
            return
        sched = self.lr_scheduler
        sched.base_lrs = [wanted for _ in sched.base_lrs]
        lrs = [wanted * lam(sched.last_epoch) for lam in sched.lr_lambdas]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["initial_lr"] = wanted
            group["lr"] = lr
        sched._last_lr = lrs
        self.lr_changed = (saved, wanted)


def _lean_mode_and_zero_grad(model, trainable: list) -> None:
    """model.train() when already training and model.zero_grad() cost a walk over every module or
    parameter; make them touch only what changes. eval()/train(False) still reach every module."""
    full_train = model.train

    def train(mode: bool = True):
        return model if mode and model.training else full_train(mode)

    def zero_grad(set_to_none: bool = True):
        for p in trainable:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    model.train, model.zero_grad = train, zero_grad
