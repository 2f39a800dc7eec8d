"""The HF Trainer, with the three things caption-wizard needs on top.

1. Every step's exact loss goes to a LossTracker (logged losses are exact means, resumes included).
2. A NaN/inf loss stops training before the optimizer step: nothing bad reaches a checkpoint.
3. On resume, an edited learning rate is applied (the scheduler state in the checkpoint would
   otherwise silently keep the old one).

And less per-step Python: the base class walks every module and parameter of the model three
times a step (train mode, gradient clipping, zero_grad) although only the adapter trains. On
the demo model that was ~15% of a step; here each walk covers the trainable parameters only.

And logits only where the loss is: the model projects onto its 152k-word vocabulary only the
hidden states of the caption positions (transformers' `logits_to_keep` with a boolean mask, the
labels shifted by one), not the ~300 image and prompt positions of each row; the cross-entropy
runs in fp32 chunks and keeps only the logits and one log-sum-exp per position for backward
(SummedCrossEntropy), so no fp32 log-softmax of all positions is ever held beside them. The loss
is the one the model's own loss function computes (sum over the caption tokens /
num_items_in_batch, or their mean).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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
        from wizard.train.vision_cache import find_cache

        self.vision_cache = find_cache(self.model)  # tuning.cache_vision: features looked up by image key
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

    def _save_checkpoint(self, model, trial):
        from pathlib import Path

        from wizard.train.diskspace import cleaned_on_disk_full

        target = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        with cleaned_on_disk_full(target):  # a full disk: DiskFull, and no half-written checkpoint left
            return super()._save_checkpoint(model, trial)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        keys = inputs.pop("image_keys", None)
        if self.vision_cache is not None:
            with self.vision_cache.batch(keys):
                loss, outputs = sliced_loss(model, inputs, num_items_in_batch)
        else:
            loss, outputs = sliced_loss(model, inputs, num_items_in_batch)
        if (self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs
                and num_items_in_batch is not None):  # as Trainer.compute_loss scales the model's loss
            loss = loss * (self.accelerator.num_processes if self.args.n_gpu <= 1 else self.args.n_gpu)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        from wizard.train.collate import grouped_sampler

        dataset = train_dataset if train_dataset is not None else self.train_dataset
        grouped = grouped_sampler(dataset, self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                  self.args.data_seed if self.args.data_seed is not None else self.args.seed)
        if grouped is not None and self.args.world_size <= 1:
            return grouped
        return super()._get_train_sampler(train_dataset)

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


IGNORE = -100
LOSS_CHUNK = 256  # caption positions per cross-entropy chunk: 256 x 152k fp32 = 0.16 GB at a time


def sliced_loss(model, inputs: dict, num_items_in_batch=None, chunk: int | None = None):
    """(loss, outputs): the model's causal-LM loss with logits computed at the labelled positions only.
    Encoder-decoder batches (decoder_input_ids: the labels shifted right) predict the labels in place."""
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    if "decoder_input_ids" in inputs:  # decoder position p predicts label p (its input is label p - 1)
        shifted = labels
    else:
        shifted = F.pad(labels, (0, 1), value=IGNORE)[:, 1:]  # position p predicts token p + 1
    keep = shifted != IGNORE
    outputs = model(**inputs, logits_to_keep=keep)  # logits: [kept positions, vocab]
    return caption_loss(outputs.logits, shifted[keep], num_items_in_batch, chunk or LOSS_CHUNK), outputs


def caption_loss(logits, targets, num_items_in_batch=None, chunk: int = LOSS_CHUNK):
    """Cross-entropy of [N, vocab] logits against N targets: sum / num_items_in_batch, else the mean.

    In fp32 (each chunk of rows upcast on its own), keeping for backward only the logits and each
    row's log-sum-exp (SummedCrossEntropy), not an fp32 log-softmax of all N positions beside them.
    """
    if targets.numel():
        total = SummedCrossEntropy.apply(logits, targets, chunk)
    else:
        total = logits.new_zeros((), dtype=torch.float32)
    if num_items_in_batch is None:
        return total / targets.numel()  # 0/0 = nan when nothing is labelled, as the model's own loss
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


class SummedCrossEntropy(torch.autograd.Function):
    """sum_i -log softmax(logits_i)[target_i] in fp32, `chunk` rows at a time.

    F.cross_entropy keeps its fp32 log-softmax (N x vocab) for backward, and its backward makes two
    more of that size (the one-hot gradient and the log-softmax gradient). Here backward recomputes
    softmax = exp(logits - lse) from the logits (kept anyway, as the lm_head's output) and the saved
    log-sum-exp, into one gradient buffer: on Qwen's 152k vocabulary and 88 caption positions that
    is 100 MB less at the step's peak; on a GPU with batch 8 x 128 caption tokens, 1.2 GB less.
    """

    @staticmethod
    def forward(ctx, logits, targets, chunk):
        lse = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
        picked = logits.gather(1, targets[:, None]).squeeze(1).float()
        for start in range(0, logits.shape[0], chunk):
            lse[start:start + chunk] = torch.logsumexp(logits[start:start + chunk].float(), dim=-1)
        ctx.save_for_backward(logits, targets, lse)
        ctx.chunk = chunk
        return (lse - picked).sum()

    @staticmethod
    def backward(ctx, grad):
        logits, targets, lse = ctx.saved_tensors
        n = logits.shape[0]
        rows = torch.arange(min(n, ctx.chunk), device=logits.device)
        out = torch.empty_like(logits) if n > ctx.chunk else None  # one chunk: its buffer is the gradient
        for start in range(0, n, ctx.chunk):
            end = min(start + ctx.chunk, n)
            p = torch.sub(logits[start:end].float(), lse[start:end, None])  # a new fp32 chunk
            p.exp_().mul_(grad)
            p[rows[: end - start], targets[start:end]] -= grad
            if out is None:
                return p.to(logits.dtype), None, None
            out[start:end] = p
        return out, None, None


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
