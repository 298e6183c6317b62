"""ENAS.py on ``TinyNetworkENAS`` and its ``Controller``: per step ``train_shared`` (a controller sample in eval mode
without gradient, ``update_arch``, a clipped weight step); per epoch ``train_controller`` (REINFORCE with the moving
baseline, network in eval mode)."""

from __future__ import annotations

import torch

from .base import ReferenceStep, logits


class ENASReference(ReferenceStep):
    network = "enas"

    def __init__(self, protocol, hparams=None, *, device="cpu", dtype=torch.float32, seed=0, num_classes=10):
        super().__init__(protocol, hparams, device=device, dtype=dtype, seed=seed, num_classes=num_classes)
        self.controller = self.net.create_controller().to(device, dtype)
        h = self.hparams
        adam = {} if h is None else dict(lr=h.controller_lr, betas=tuple(h.controller_betas), eps=h.controller_eps)
        wd = 0.0 if h is None else h.controller_weight_decay
        self.c_optimizer = torch.optim.Adam(self.controller.parameters(), weight_decay=wd, **adam)
        self.baseline: torch.Tensor | None = None

    def step(self, train_batch, valid_batch):
        self.controller.eval()
        with torch.no_grad():
            _, _, arch = self.controller()
        self.net.update_arch(arch)
        return {"train_loss": self.clipped_weight_step(*train_batch)}

    def set_cell(self, cell):
        self.net.update_arch(list(cell.ops))

    def train_controller(self, batches) -> float:
        """ENAS.py's train_controller over ``controller_steps x controller_aggregate`` batches; carries the baseline
        to the next epoch (``carry_baseline``: the last sample's, or the epoch's mean as NATS-Bench's search-cell.py
        carries BaselineMeter.avg) and returns it."""
        h, net, controller = self.hparams, self.net, self.controller
        net.eval()
        controller.train()
        controller.zero_grad(set_to_none=self.set_to_none)
        it = iter(batches)
        b_values = []
        baseline = self.baseline
        for step in range(h.controller_steps * h.controller_aggregate):
            x, y = next(it)
            log_prob, entropy, arch = controller()
            with torch.no_grad():
                net.update_arch(arch)
                acc = (logits(net, x).argmax(1) == y).float().sum().mul_(100.0 / len(y)).view(-1) / 100
            reward = acc + h.entropy_weight * entropy
            b = acc if baseline is None else baseline - (1 - h.baseline_decay) * (baseline - reward)
            (-1 * log_prob * (reward - b) / h.controller_aggregate).backward(retain_graph=True)
            b_values.append(b.item())
            if (step + 1) % h.controller_aggregate == 0:
                torch.nn.utils.clip_grad_norm_(controller.parameters(), h.controller_clip)
                self.c_optimizer.step()
                controller.zero_grad(set_to_none=self.set_to_none)
        net.train()
        self.baseline = b_values[-1] if h.carry_baseline == "last" else sum(b_values) / len(b_values)
        return self.baseline
