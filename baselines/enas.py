"""ENAS (Pham et al., ICML 2018, "Efficient neural architecture search via parameter sharing"), as NB201's ENAS
script runs it.

* Controller: xautodl's ``Controller`` - a 2-layer LSTM (hidden 32) that emits one op per edge in the official edge
  order; logits ``tanh_constant * tanh(W h / temperature)``; the next input is the embedding of the sampled op.
* Shared weights (the epoch's steps): one controller sample per train batch (no gradient into the controller), one
  SGD step with the protocol's clip. ENAS's own LR schedule (0.05 -> 0.0005, cosine with T_max = 10), weight decay
  2.5e-4 and batch 128 are protocol values, in the presets' ``methods: enas`` sections.
* Controller phase, once per epoch after the shared-weight steps (:meth:`end_epoch`, where the script calls
  ``train_controller``): ``controller_steps`` x ``controller_aggregate`` samples, each rewarded with its top-1
  accuracy (fraction) on the next batch of a fresh pass over the validation part (the script's
  ``iter(valid_loader)`` per call: ``select_batch_size`` images, augmented under NB201's ENAS script whose
  valid_loader takes the train transform, the test transform under NATS-Bench's), shared network in eval mode, plus
  ``entropy_weight`` x the sample's entropy. REINFORCE loss ``-log_prob * (reward - baseline)`` averaged over
  ``controller_aggregate`` samples, then clip ``controller_clip`` and one Adam step.
  The baseline is the script's: within an epoch every sample uses ``b = B - (1 - decay) * (B - reward)`` where
  ``B`` is the value carried over from the previous epoch (the last sample's ``b``); in the first epoch ``B`` does
  not exist and ``b`` is the sample's own accuracy (so the first epoch only follows the entropy term). Reward and
  baseline carry the entropy's gradient, as in the script. NATS-Bench's script carries the epoch's MEAN ``b``
  instead (``carry_baseline=mean``).
* Derived cell: ``epoch_samples`` (10) controller samples each scored on one selection batch, the best; at the last
  epoch ``select_candidates`` (100), the script's final ``controller_num_samples``. Samples for selection come from
  a generator seeded by (seed, epoch), so deriving never changes the search (the script draws them from the global
  RNG).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch.distributions.categorical import Categorical

from nasbench_suite.config import setting
from nasbench_suite.method import OneShotMethod, ce_and_acc, register
from nasbench_suite.space import NUM_EDGES, NUM_OPS, Cell


class Controller(nn.Module):
    """The ENAS LSTM controller of NB201 (same parameters, names and initialisation as xautodl's)."""

    def __init__(
        self,
        num_edge: int = NUM_EDGES,
        num_ops: int = NUM_OPS,
        lstm_size: int = 32,
        lstm_num_layers: int = 2,
        tanh_constant: float = 2.5,
        temperature: float = 5.0,
    ):
        super().__init__()
        self.num_edge, self.num_ops = num_edge, num_ops
        self.tanh_constant, self.temperature = tanh_constant, temperature
        self.input_vars = nn.Parameter(torch.empty(1, 1, lstm_size))
        self.w_lstm = nn.LSTM(input_size=lstm_size, hidden_size=lstm_size, num_layers=lstm_num_layers)
        self.w_embd = nn.Embedding(num_ops, lstm_size)
        self.w_pred = nn.Linear(lstm_size, num_ops)
        for p in (
            self.input_vars,
            self.w_lstm.weight_hh_l0,
            self.w_lstm.weight_ih_l0,
            self.w_embd.weight,
            self.w_pred.weight,
        ):
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(
        self, generator: torch.Generator | None = None, actions: list[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Sample a cell: (sum of log-probs, sum of entropies, op per edge).

        Without ``generator`` the ops are drawn like ``Categorical.sample`` from torch's global RNG (the
        reference's draw); with one, from that CPU generator; with ``actions``, those ops are scored instead.
        """
        inputs, hidden = self.input_vars, None
        log_probs, entropies, arch = [], [], []
        for e in range(self.num_edge):
            out, hidden = self.w_lstm(inputs, hidden)
            logits = self.tanh_constant * torch.tanh(self.w_pred(out) / self.temperature)
            dist = Categorical(logits=logits)
            if actions is not None:
                op = torch.tensor([[int(actions[e])]], device=logits.device)
            elif generator is not None:
                probs = dist.probs.detach().reshape(-1, self.num_ops).cpu()
                op = torch.multinomial(probs, 1, True, generator=generator).view(1, 1).to(logits.device)
            else:
                op = dist.sample()
            arch.append(int(op.item()))
            log_probs.append(dist.log_prob(op).view(-1))
            entropies.append(dist.entropy().view(-1))
            inputs = self.w_embd(op)
        return torch.cat(log_probs).sum(), torch.cat(entropies).sum(), arch

    @torch.no_grad()
    def greedy_probs(self) -> torch.Tensor:
        """The op probabilities per edge (edges x ops) along the controller's most likely walk (each edge fed the
        previous edge's argmax op): deterministic, no random draw."""
        inputs, hidden, rows = self.input_vars, None, []
        for _ in range(self.num_edge):
            out, hidden = self.w_lstm(inputs, hidden)
            probs = torch.softmax(self.tanh_constant * torch.tanh(self.w_pred(out) / self.temperature), -1)
            rows.append(probs.reshape(self.num_ops))
            inputs = self.w_embd(probs.reshape(1, -1).argmax(-1).view(1, 1))
        return torch.stack(rows)


@register("enas")
class ENAS(OneShotMethod):
    display_name = "ENAS"
    vectorize_note = "the shared-weight steps; the controller phase runs per seed"
    reference = f"{__package__}.reference.enas:ENASReference"  # its NB201 script on xautodl (timing, tests)

    @dataclass(frozen=True)
    class Hparams:
        controller_steps: int = setting(50, ge=1, le=1_000_000)  # controller updates per epoch
        controller_aggregate: int = setting(20, ge=1, le=100_000)  # samples averaged per update
        entropy_weight: float = setting(1e-4, ge=0, le=1e6)
        baseline_decay: float = setting(0.99, ge=0, le=1)
        controller_lr: float = setting(1e-3, gt=0, le=100)
        controller_betas: tuple[float, float] = setting((0.0, 0.999), ge=0, lt=1)
        controller_eps: float = setting(1e-3, gt=0, le=1)
        # NB201's ENAS.config has no weight decay; NATS-Bench's unified script 1e-3
        controller_weight_decay: float = setting(0.0, ge=0, lt=1)
        controller_clip: float = setting(5.0, gt=0)
        lstm_size: int = setting(32, ge=1, le=4096)
        lstm_layers: int = setting(2, ge=1, le=64)
        tanh_constant: float = setting(2.5, gt=0, le=1e6)
        temperature: float = setting(5.0, gt=0, le=1e6)
        epoch_samples: int = setting(10, ge=1, le=15_625)  # per-epoch candidates; the last epoch: select_candidates
        #: the baseline carried to the next epoch: the last sample's (NB201's ENAS.py) or the epoch's mean
        #: (NATS-Bench's search-cell.py returns BaselineMeter.avg)
        carry_baseline: str = setting("last", choices=("last", "mean"))

    def setup(self, ctx):
        super().setup(ctx)
        h = self.hparams
        self.controller = Controller(NUM_EDGES, NUM_OPS, h.lstm_size, h.lstm_layers, h.tanh_constant, h.temperature)
        self.controller.to(ctx.device)
        self.c_optimizer = torch.optim.Adam(
            self.controller.parameters(),
            lr=h.controller_lr,
            betas=tuple(float(b) for b in h.controller_betas),
            eps=h.controller_eps,
            weight_decay=h.controller_weight_decay,
        )
        self.baseline: float | None = None

    def arch_parameters(self):
        return list(self.controller.parameters())

    def search_step(self, train_batch, valid_batch, epoch, step):
        with torch.no_grad():
            _, _, arch = self.controller()
        x, y = train_batch
        loss, acc = ce_and_acc(self.ctx.supernet.forward_cell(x, Cell(tuple(arch))), y)
        self.ctx.weight_step(loss)
        return {"train_loss": loss.item(), "train_acc": acc}

    @classmethod
    def group_step(cls, group, train_batch, valid_batch, epoch, step):
        """The shared-weight steps of every seed at once (each controller samples from its seed's torch stream); the
        controller phase (:meth:`end_epoch`) runs per seed after the epoch's steps, as in a single run."""
        cells = []
        for k, m in enumerate(group.members):
            with group.rng(k), torch.no_grad():
                cells.append(Cell(tuple(m.controller()[2])))
        x, y = train_batch
        loss, acc = group.ce_and_acc(group.net.forward_cells(x, cells), y)
        group.weight_step(loss)
        return group.logs(train_loss=loss, train_acc=acc)

    def reinforce_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        """One controller sample's REINFORCE loss (not yet divided by the aggregate); returns (loss, b, acc)."""
        log_prob, entropy, arch = self.controller()
        with torch.no_grad():
            logits = self.ctx.supernet.forward_cell(x, Cell(tuple(arch)))
            acc = (logits.argmax(1) == y).float().sum().mul_(100.0 / y.numel()).div_(100)
        reward = acc + self.hparams.entropy_weight * entropy
        if self.baseline is None:
            baseline = acc
        else:
            baseline = self.baseline - (1 - self.hparams.baseline_decay) * (self.baseline - reward)
        return -log_prob * (reward - baseline), float(baseline.item()), float(acc.item())

    def end_epoch(self, epoch: int) -> None:
        h, net = self.hparams, self.ctx.supernet
        stream = self.ctx.selection_batches(epoch, salt=1)
        was_training = net.training
        net.eval()
        self.controller.train()
        self.c_optimizer.zero_grad(set_to_none=True)
        last_baseline = self.baseline
        baselines = []
        for step in range(h.controller_steps * h.controller_aggregate):
            x, y = next(stream)
            loss, last_baseline, _ = self.reinforce_loss(x, y)
            baselines.append(last_baseline)
            (loss / h.controller_aggregate).backward()
            if (step + 1) % h.controller_aggregate == 0:
                nn.utils.clip_grad_norm_(self.controller.parameters(), h.controller_clip)
                self.c_optimizer.step()
                self.c_optimizer.zero_grad(set_to_none=True)
        self.baseline = (
            last_baseline if h.carry_baseline == "last" or not baselines else sum(baselines) / len(baselines)
        )
        net.train(was_training)

    def arch_distribution(self):
        # the controller is autoregressive: its per-edge distribution depends on the ops chosen before; shown
        # along its most likely walk
        return self.controller.greedy_probs()

    def derive(self, epoch: int) -> Cell:
        n = self.ctx.protocol.select_candidates if epoch >= self.ctx.epochs - 1 else self.hparams.epoch_samples
        gen = torch.Generator(device="cpu")
        gen.manual_seed(int(np.random.SeedSequence([self.ctx.seed, epoch, 0xE4A5]).generate_state(1)[0]))
        with torch.no_grad():
            cells = [Cell(tuple(self.controller(generator=gen)[2])) for _ in range(max(1, n))]
        return self.best_of(cells, epoch)

    def state_dict(self):
        return {
            "controller": self.controller.state_dict(),
            "c_optimizer": self.c_optimizer.state_dict(),
            "baseline": self.baseline,
        }

    def load_state_dict(self, state):
        self.controller.load_state_dict(state["controller"])
        self.c_optimizer.load_state_dict(state["c_optimizer"])
        self.baseline = state["baseline"]
