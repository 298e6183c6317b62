"""E2NAS (Zhang et al., NeurIPS 2020) on NB201: gradient search on one latent vector z of a frozen graph VAE.

Per step (spec ``e2nas.md``; docs/e2nas.md for the full story):

0. (setup) z starts at the encoder mean of a uniformly drawn cell (seeded), so every seed starts elsewhere;
1. decode z -> cell a_t (deterministic argmax walk of the decoder) and the straight-through probabilities
   P = softmax(logits / st_tau) (6 x 5) along a_t's path, one decoder walk with autograd to z; the temperature
   st_tau (annealed per epoch) keeps dP/dz alive at cells, where the decoder is saturated;
2. weight step with architecture complementation: a_prev (the previous step's cell), a_bar (see
   :mod:`.complement`), ``L_w = (1-eps) CE(a_t) + eps/2 (CE(a_prev) + CE(a_bar))``, every term with gradient,
   each distinct cell computed once (equal cells are merged: same gradient, fewer passes);
3. arch step: ``L_val = CE(w; H)`` on a valid batch with straight-through hard weights
   ``H = onehot(a_t) - P.detach() + P`` (only the chosen op per edge is computed, dL/dz flows through P into the
   decoder), ``N(z)`` = archive log-likelihood (:mod:`.novelty`), whose gradient is rescaled to the validation
   gradient's norm (``kappa``), ``grad = (1-gamma_k) dL_val/dz + gamma_k kappa dN/dz``; Adam on z without weight
   decay.

The ``official_*`` switches reproduce what the authors' code does instead (each independently; ``official=true``
turns all of them on).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from nasbench_suite.config import setting
from nasbench_suite.errors import ConfigError
from nasbench_suite.method import OneShotMethod, SearchContext, ce_and_acc, register
from nasbench_suite.space import NUM_EDGES, NUM_OPS, Cell, all_ops_array, sample_cell

from .complement import complementary_cell, weight_terms
from .novelty import ArchiveNovelty
from .schedules import parse_gamma


class StepPlan(NamedTuple):
    """A step's cells (:meth:`E2NAS.plan_step`): the roles' cells, P, a_t, a_prev and the complement a_bar."""

    cells: dict[str, tuple[int, ...]]
    P: torch.Tensor
    a_t: tuple[int, ...]
    a_prev: tuple[int, ...]
    a_bar: tuple[int, ...]


#: The official-behaviour switches, in the order of the variant label, with their short names.
OFFICIAL_SWITCHES: dict[str, str] = {
    "official_stochastic_decode": "sampled decode",
    "official_softmax_st": "softmax(z) ST",
    "official_nograd_complement": "no-grad complement",
    "official_nograd_novelty": "no-grad novelty",
    "official_reset_prev": "prev reset per epoch",
    "official_z_init": "z0 near 0",
    "official_z_adam": "z Adam 3e-4 + decay",
}
#: The cells a step uses, by role, in the order the authors' code decodes them within a step. With the argmax
#: decode they are all the same cell; under ``official_stochastic_decode`` each is its own fresh draw, as each is
#: a separate ``model_dvae.decode`` call there (forward of the weight step, ``get_index_hardwts`` for the
#: complement, the forward whose cell becomes the next a_prev, ``gene()`` for the archive, the arch-step forward).
ROLES = ("weight", "complement", "next_prev", "archive", "arch")

_GAMMA_GRID = ["static:0", "static:0.1", "static:0.5", "static:0.9", "sig:1", "sig:5", "sig:10", "sig:20"]
_EPS_GRID = ["0", "0.25", "0.5", "0.75"]
#: floor of the novelty fit's scales, as a fraction of each latent dimension's spread over all cells
MIN_SCALE_FRACTION = 0.1


@register("e2nas")
class E2NAS(OneShotMethod):
    display_name = "E2NAS"
    grids = {
        "gamma": [{"gamma": g} for g in _GAMMA_GRID],
        "eps": [{"eps": e} for e in _EPS_GRID],
        "official": [{"official": "false"}, {"official": "true"}],
    }

    @dataclass(frozen=True)
    class Hparams:
        eps: float = setting(0.5, ge=0, le=1)  # complementation weight; 0 = plain single-cell weight step
        gamma: str = setting("sig:10", check=parse_gamma, doc="'static:g' with 0 <= g <= 1, or 'sig:s' with s > 0")
        # FIFO of visited cells for the novelty fit; N(z) = 0 until it is full
        archive_size: int = setting(50, ge=2, le=15_625)
        # draws per decode under official_stochastic_decode (>1: the mode; official: 1)
        decode_samples: int = setting(1, ge=1, le=10_000)
        # temperature of the straight-through probabilities, first epoch ... and last epoch (linear in between, as
        # GDAS anneals its tau)
        st_tau_max: float = setting(10.0, gt=0, le=1e4)
        st_tau_min: float = setting(1.0, gt=0, le=1e4)
        balance_novelty: bool = True  # rescale dN/dz to |dL_val/dz| (false: the spec's raw formula)
        z_lr: float = setting(0.01, gt=0, le=100)  # Adam learning rate of z (official_z_adam: the protocol's arch_lr)
        vae_path: str = setting("", doc="a graph-VAE weights file")  # "" = methods/e2nas/weights/graph_vae.pt
        official: bool = False  # shortcut: all official_* switches on (wins over the individual values)
        official_stochastic_decode: bool = False
        official_softmax_st: bool = False
        official_nograd_complement: bool = False
        official_nograd_novelty: bool = False
        official_reset_prev: bool = False
        official_z_init: bool = False
        official_z_adam: bool = False

        def __post_init__(self) -> None:
            if self.st_tau_min > self.st_tau_max:  # a relation between two keys: beyond a per-key range
                raise ValueError(f"need st_tau_min <= st_tau_max, got {self.st_tau_min}, {self.st_tau_max}")

    def __init__(self, hparams: Any = None, vae: tuple[Any, str] | None = None):
        """``vae``: an autoencoder ``(GraphVAE, sha256)`` to use (a copy) instead of loading ``vae_path``; what the
        tests and the step-timing harnesses hand in."""
        super().__init__(hparams)
        self._given_vae = vae

    @classmethod
    def for_timing(cls, hparams: Any) -> tuple[E2NAS, str]:
        """The committed autoencoder, or an untrained stand-in of the same cost when its weights are absent."""
        from .vae import committed_or_standin

        model, sha, note = committed_or_standin()
        return cls(hparams, vae=(model, sha)), note

    # -- configuration ------------------------------------------------------------------------------------
    @property
    def switches(self) -> dict[str, bool]:
        """The effective official-behaviour switches (``official`` forces all on)."""
        hp = self.hparams
        return {k: bool(hp.official or getattr(hp, k)) for k in OFFICIAL_SWITCHES}

    def variant(self) -> str:
        on = [OFFICIAL_SWITCHES[k] for k, v in self.switches.items() if v]
        if not on:
            return "E2NAS"
        if len(on) == len(OFFICIAL_SWITCHES):
            return "E2NAS (official code)"
        return f"E2NAS ({', '.join(on)})"

    def _load_vae(self):
        if self._given_vae is not None:
            model, sha = self._given_vae
            return copy.deepcopy(model), sha, "<given>"
        from .vae import DEFAULT_WEIGHTS, load_vae, missing_weights_message

        path = Path(self.hparams.vae_path) if self.hparams.vae_path else DEFAULT_WEIGHTS
        if not path.exists():
            raise ConfigError(
                missing_weights_message(path) + ("" if self.hparams.vae_path else " (or set vae_path=...)")
            )
        model, sha = load_vae(path)
        return model, sha, str(path)

    # -- the contract -------------------------------------------------------------------------------------
    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        hp, dev, p = self.hparams, ctx.device, ctx.protocol
        self.sw = self.switches
        self.schedule = parse_gamma(hp.gamma)
        vae, self.vae_sha256, self.vae_path = self._load_vae()
        self.vae = vae.to(dev, torch.get_default_dtype()).eval()  # the run's dtype (float64 in the regression)
        for q in self.vae.parameters():
            q.requires_grad_(False)
        nz = self.vae.config.nz
        if self.sw["official_softmax_st"] and nz != NUM_EDGES * NUM_OPS:
            raise ConfigError(f"official_softmax_st reads z as 6 x 5 probabilities: it needs nz = 30, the VAE has {nz}")
        if self.sw["official_z_init"]:
            z0 = 1e-3 * torch.randn(nz, device=dev)
        else:
            # The encoder mean of a uniformly drawn cell: every seed starts at its own cell, uniformly over the
            # space, and exactly at a point the search space maps to (gate (i): it decodes to that cell). The
            # prior N(0, I) was the other option: it is ~2.6x wider than the cloud of cell encodings (per-dimension
            # std 0.24-0.53), so a prior draw starts far outside it, where the decoder was never trained.
            z0 = self._encode_one(sample_cell(ctx.rng).index).clone()
        self.z = torch.nn.Parameter(z0)
        self.start_cell = self._argmax_cell()
        # No weight decay on z by default: it pulls z towards the origin, which is only the encoding of one
        # arbitrary cell, and at cells it outweighed the validation gradient. The learning rate is z's own: the
        # protocol's 3e-4 is alpha's; in the latent space neighbouring cells are ~0.5 apart (per-dimension spread
        # 0.24-0.53), so at 3e-4 a move to a neighbour cell takes ~300 Adam steps (a quick run has 88 in all), at
        # 1e-2 about 10 - the pace at which DARTS/GDAS flip an edge's argmax (docs/e2nas.md, probe-search).
        # official_z_adam restores the authors' optimiser: the protocol's lr and weight decay.
        official = self.sw["official_z_adam"]
        wd = p.arch_weight_decay if official else 0.0
        lr = p.arch_lr if official else hp.z_lr
        self.a_optimizer = torch.optim.Adam([self.z], lr=lr, betas=tuple(p.arch_betas), weight_decay=wd)
        self.novelty = ArchiveNovelty(self._encode_one, nz, hp.archive_size, self._min_scale(), dev)
        self.a_prev: tuple[int, ...] | None = None
        self.gamma = self.schedule(0, ctx.epochs)
        self.st_tau = hp.st_tau_max

    @torch.no_grad()
    def _encode_one(self, cell_index: int) -> torch.Tensor:
        """Encoder mean (nz,) of one cell. Always a batch of one, so a cell's mean is bit-identical whenever it is
        computed (before or after a resume)."""
        from .graph import cell_to_types

        types = cell_to_types(Cell.from_index(cell_index)).to(self.ctx.device)
        return self.vae.encode(types)[0][0]

    @torch.no_grad()
    def _min_scale(self) -> torch.Tensor:
        """Floor of the fitted scales: MIN_SCALE_FRACTION of each latent dimension's spread over the space, the
        spread estimated on a fixed every-31st-cell subset (504 cells, one batched encode)."""
        from .graph import cell_to_types

        types = cell_to_types(all_ops_array()[::31]).to(self.ctx.device)
        return MIN_SCALE_FRACTION * self.vae.encode(types)[0].std(0).clamp_min(1e-6)

    def begin_epoch(self, epoch: int) -> None:
        h, total = self.hparams, self.ctx.epochs
        self.gamma = self.schedule(epoch, total)
        # linear in the epoch, as GDAS's tau; one epoch: st_tau_max
        frac = epoch / (total - 1) if total > 1 else 0.0
        self.st_tau = h.st_tau_max - (h.st_tau_max - h.st_tau_min) * frac
        if self.sw["official_reset_prev"]:
            self.a_prev = None

    def arch_parameters(self) -> list[torch.Tensor]:
        return [self.z]

    # -- pieces of a step (public so tests and the benchmark can call them) ---------------------------------
    def _argmax_cell(self) -> tuple[int, ...]:
        return tuple(self.vae.decode(self.z.detach()[None])[0].tolist())

    def propose(self) -> tuple[dict[str, tuple[int, ...]], torch.Tensor]:
        """The step's cells by role (:data:`ROLES`) and the straight-through probabilities P (6 x 5, with grad to
        z) along the arch-step cell's path.

        [ours]: one argmax walk of the decoder gives the cell (every role) and, from the same walk, P =
        softmax(logits / st_tau). Under ``official_stochastic_decode`` every role is a fresh, independent draw (one
        batched sampling walk, no gradient), and P is taken along the arch cell's path by a teacher-forced walk.
        ``official_softmax_st``: P = softmax(z) over its 30 entries, unrelated to the decoder.
        """
        if self.sw["official_stochastic_decode"]:
            draws = self._sampled_cells(len(ROLES), None)
            cells = dict(zip(ROLES, draws))
            if self.sw["official_softmax_st"]:
                return cells, self._softmax_z()
            teacher = torch.tensor([cells["arch"]], device=self.z.device)
            logits = self.vae.decode_logits(self.z[None], teacher_ops=teacher)[0]
            return cells, torch.softmax(logits / self.st_tau, -1)
        if self.sw["official_softmax_st"]:
            a_t = self._argmax_cell()
            return dict.fromkeys(ROLES, a_t), self._softmax_z()
        logits = self.vae.decode_logits(self.z[None])[0]
        a_t = tuple(logits.detach().argmax(-1).tolist())  # the argmax walk's choices are its own logits' argmax
        return dict.fromkeys(ROLES, a_t), torch.softmax(logits / self.st_tau, -1)

    def _softmax_z(self) -> torch.Tensor:
        return torch.softmax(self.z, 0).view(NUM_EDGES, NUM_OPS)

    @torch.no_grad()
    def _sampled_cells(self, n: int, generator: torch.Generator | None) -> list[tuple[int, ...]]:
        """``n`` independent sampled decodes of z (one batched walk); each is the mode of ``decode_samples``
        draws (ties: lowest cell index), i.e. a single draw at the default ``decode_samples = 1``.

        Draws are over the 5 ops (the decoder's type head is masked at op vertices); see docs/e2nas.md on why an
        unmasked draw is not reproduced with this autoencoder.
        """
        k = self.hparams.decode_samples
        ops = self.vae.decode(self.z.detach().expand(n * k, -1), stochastic=True, generator=generator)
        if k == 1:
            return [tuple(r) for r in ops.tolist()]
        powers = NUM_OPS ** torch.arange(NUM_EDGES - 1, -1, -1, device=ops.device)
        out = []
        for codes in (ops * powers).sum(1).view(n, k):
            uniq, counts = torch.unique(codes, return_counts=True)
            out.append(Cell.from_index(int(uniq[counts.argmax()])).ops)
        return out

    def weight_loss(self, x, y, a_t, a_prev, a_bar) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(L_w, logits of a_t, number of supernet passes). Only the supernet weights get gradients."""
        net, eps = self.ctx.supernet, self.hparams.eps
        if self.sw["official_nograd_complement"]:
            # The authors' code: cur = (1-eps) base.item() + eps/2 (pre.item() + comp.item()); loss = base + cur -
            # base.detach(). Its value is the three-term formula, its gradient exactly that of CE(a_t) (coefficient
            # 1, not 1 - eps). The values stay tensors here (no host sync); the gradient is the same.
            logits = net.forward_cell(x, Cell(a_t))
            loss_t = F.cross_entropy(logits, y)
            value = loss_t.detach()
            passes = 1
            if eps > 0:
                values = {a_t: value}
                with torch.no_grad():
                    for c in (a_prev, a_bar):
                        if c not in values:
                            values[c] = F.cross_entropy(net.forward_cell(x, Cell(c)), y)
                            passes += 1
                value = (1 - eps) * value + eps / 2 * (values[a_prev] + values[a_bar])
            return loss_t + (value - loss_t.detach()), logits, passes
        terms = weight_terms(a_t, a_prev, a_bar, eps)
        total, logits = None, None
        for cell, coef in terms:
            out = net.forward_cell(x, Cell(cell))
            if cell == a_t:
                logits = out
            term = coef * F.cross_entropy(out, y)
            total = term if total is None else total + term
        return total, logits, len(terms)

    def arch_grad(self, xv, yv, a_arch, P, archive_cell=None) -> dict[str, Any]:
        """Append ``archive_cell`` (default ``a_arch``) to the archive, compute the arch gradient into ``z.grad``
        and return the step's logs (0-dim tensors, still on the device, or floats).

        ``L_val = CE(w; H)``, ``H = onehot(a_arch) - P.detach() + P``. With a full archive and a live novelty,
        ``z.grad = (1 - gamma) dL_val/dz + gamma kappa dN/dz`` where ``kappa = |dL_val/dz| / |dN/dz|`` (a constant
        per step; 1 if either is 0) under ``balance_novelty`` (else 1, the spec's raw formula): the exploration
        term then has the validation term's size and gamma is the share of the step it steers. Logged: the two
        weighted norms (``grad_val``, ``grad_nov``), their ratio (``grad_ratio``; 0 while the novelty is off or
        the validation gradient is 0) and ``kappa``.
        """
        H = self._hard_weights(a_arch, P)
        val_loss, val_acc = ce_and_acc(self.ctx.supernet.forward_hard(xv, H, a_arch), yv)
        g_val = torch.autograd.grad(val_loss, [self.z], allow_unused=True)[0] if val_loss.requires_grad else None
        return self._arch_grad_from(val_loss, val_acc, g_val, a_arch if archive_cell is None else archive_cell)

    @staticmethod
    def _hard_weights(a_arch, P: torch.Tensor) -> torch.Tensor:
        """``H = onehot(a_arch) - P.detach() + P``: the straight-through hard weights of the arch step."""
        onehot = F.one_hot(torch.tensor(a_arch, device=P.device), NUM_OPS).to(P.dtype)
        return onehot - P.detach() + P

    def _arch_grad_from(self, val_loss, val_acc, g_val, archive_cell) -> dict[str, Any]:
        """The rest of :meth:`arch_grad` once the validation loss and its gradient to z (None: none) are known."""
        self.novelty.append(Cell(archive_cell).index)
        g = self.gamma
        z = self.z
        g_val = torch.zeros_like(z) if g_val is None else g_val
        grad = (1 - g) * g_val
        # Everything below stays on the device (no host sync inside the step); the caller turns logs into floats.
        zero = val_loss.new_zeros(())
        n_val = g_val.norm()
        logs: dict[str, Any] = {
            "valid_loss": val_loss.detach(),
            "valid_acc": val_acc,
            "novelty": zero,
            "grad_val": (1 - g) * n_val,
            "grad_nov": zero,
            "grad_ratio": zero,
            "kappa": zero,
        }
        loss = (1 - g) * val_loss.detach()
        if self.novelty.full:
            live = not self.sw["official_nograd_novelty"]
            nov = self.novelty(z, grad=live)
            logs["novelty"] = nov.detach()
            loss = loss + g * nov.detach()
            if live and g > 0:
                (g_nov,) = torch.autograd.grad(nov, [z])
                n_nov = g_nov.norm()
                one = torch.ones_like(n_nov)
                if self.hparams.balance_novelty:  # kappa = |g_val| / |g_nov|, 1 when either is 0
                    ok = (n_val > 0) & (n_nov > 0)
                    kappa = torch.where(ok, n_val / torch.where(ok, n_nov, one), one)
                else:
                    kappa = one
                grad = grad + (g * kappa) * g_nov
                logs.update(grad_nov=g * kappa * n_nov, kappa=kappa)
                gv = logs["grad_val"]  # the ratio is logged as 0 when the validation gradient is 0 (no inf in metrics)
                logs["grad_ratio"] = torch.where(gv > 0, logs["grad_nov"] / torch.where(gv > 0, gv, one), zero)
        logs["arch_loss"] = loss
        z.grad = grad
        return logs

    # -- the step -----------------------------------------------------------------------------------------
    def plan_step(self) -> StepPlan:
        """The step's cells: :meth:`propose`, a_prev and the complement a_bar (from the run's generator)."""
        cells, P = self.propose()
        a_t = cells["weight"]
        # the first step (of the run; of each epoch under official_reset_prev): a_prev is the complement's
        # reference cell, as the authors' `if step == 0: pre_index = cur_index`
        a_prev = self.a_prev if self.a_prev is not None else cells["complement"]
        a_bar = complementary_cell(a_prev, cells["complement"], self.ctx.rng) if self.hparams.eps > 0 else a_t
        return StepPlan(cells, P, a_t, a_prev, a_bar)

    def close_step(self, plan: StepPlan, logs: dict[str, Any], train_loss, train_acc, weight_loss, w_passes):
        """After the arch gradient is in ``z.grad``: the Adam step, a_prev for the next step, the step's logs."""
        self.a_optimizer.step()
        changed = float(self.a_prev is not None and self.a_prev != plan.a_t)
        self.a_prev = plan.cells["next_prev"]
        out = {"train_loss": train_loss, "train_acc": train_acc, "weight_loss": weight_loss, **logs}
        out.update(gamma=self.gamma, st_tau=self.st_tau, w_passes=w_passes, cell_changed=changed)
        return {k: float(v) for k, v in out.items()}

    def search_step(self, train_batch, valid_batch, epoch, step):
        plan = self.plan_step()
        x, y = train_batch
        w_loss, logits, passes = self.weight_loss(x, y, plan.a_t, plan.a_prev, plan.a_bar)
        train_loss, train_acc = ce_and_acc(logits.detach(), y)
        self.ctx.weight_step(w_loss)

        xv, yv = valid_batch
        self.a_optimizer.zero_grad(set_to_none=True)
        logs = self.arch_grad(xv, yv, plan.cells["arch"], plan.P, archive_cell=plan.cells["archive"])
        return self.close_step(
            plan, logs, train_loss=train_loss, train_acc=train_acc, weight_loss=w_loss.detach(), w_passes=passes
        )

    @classmethod
    def group_step(cls, group, train_batch, valid_batch, epoch, step):
        """Every seed's :meth:`search_step` at once: the decoder, complement and novelty per seed (small), the
        supernet passes stacked. A seed whose weight loss has fewer distinct cells than another's takes the extra
        pass inactive (coefficient 0, no BN statistics, no gradient marks), so each seed's loss is its own."""
        members, net, K = group.members, group.net, group.K
        plans = []
        for k, m in enumerate(members):
            with group.rng(k):  # official_stochastic_decode draws from torch's RNG
                plans.append(m.plan_step())
        x, y = train_batch
        w_loss, logits, passes = cls._group_weight_loss(group, x, y, plans)
        train_loss, train_acc = group.ce_and_acc(logits.detach(), y)
        group.weight_step(w_loss)

        xv, yv = valid_batch
        for m in members:
            m.a_optimizer.zero_grad(set_to_none=True)
        arch = [p.cells["arch"] for p in plans]
        H = torch.stack([cls._hard_weights(a, p.P) for a, p in zip(arch, plans)])
        val_loss, val_acc = group.ce_and_acc(net.forward_hard(xv, H, torch.tensor(arch, device=H.device)), yv)
        zs = [m.z for m in members]
        g_vals = torch.autograd.grad(val_loss.sum(), zs, allow_unused=True) if val_loss.requires_grad else [None] * K
        return [
            m.close_step(
                p,
                m._arch_grad_from(val_loss[k], val_acc[k], g_vals[k], p.cells["archive"]),
                train_loss=train_loss[k],
                train_acc=train_acc[k],
                weight_loss=w_loss[k].detach(),
                w_passes=passes[k],
            )
            for k, (m, p) in enumerate(zip(members, plans))
        ]

    @classmethod
    def _group_weight_loss(cls, group, x, y, plans) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """:meth:`weight_loss` of every seed: (L_w (K,), logits of each seed's a_t (K, B, classes), passes)."""
        net, K = group.net, group.K
        hp = group.members[0].hparams
        dev = x.device
        if group.members[0].sw["official_nograd_complement"]:
            # the authors' code: gradient of CE(a_t) only, value of the three-term formula
            logits = net.forward_cells(x, [Cell(p.a_t) for p in plans])
            loss_t, _ = group.ce_and_acc(logits, y)
            value, passes = loss_t.detach(), [1] * K
            if hp.eps > 0:
                values = [{p.a_t: value[k]} for k, p in enumerate(plans)]  # per seed: each distinct cell once
                with torch.no_grad():
                    for role in ("a_prev", "a_bar"):
                        new = [getattr(p, role) not in values[k] for k, p in enumerate(plans)]
                        if not any(new):
                            continue
                        cells = [Cell(getattr(p, role)) for p in plans]
                        ce, _ = group.ce_and_acc(net.forward_cells(x, cells, torch.tensor(new, device=dev)), y)
                        for k, p in enumerate(plans):
                            if new[k]:
                                values[k][getattr(p, role)] = ce[k]
                                passes[k] += 1
                other = torch.stack([values[k][p.a_prev] + values[k][p.a_bar] for k, p in enumerate(plans)])
                value = (1 - hp.eps) * value + hp.eps / 2 * other
            return loss_t + (value - loss_t.detach()), logits, passes
        terms = [weight_terms(p.a_t, p.a_prev, p.a_bar, hp.eps) for p in plans]
        total, logits = None, [None] * K
        for t in range(max(len(ts) for ts in terms)):
            active = torch.tensor([t < len(ts) for ts in terms], device=dev)
            cells = [Cell(ts[t][0] if t < len(ts) else ts[0][0]) for ts in terms]
            coef = torch.tensor([ts[t][1] if t < len(ts) else 0.0 for ts in terms], device=dev, dtype=x.dtype)
            out = net.forward_cells(x, cells, None if bool(active.all()) else active)
            ce, _ = group.ce_and_acc(out, y)
            total = coef * ce if total is None else total + coef * ce
            for k, ts in enumerate(terms):
                if t < len(ts) and ts[t][0] == plans[k].a_t:
                    logits[k] = out[k]
        return total, torch.stack(logits), [len(ts) for ts in terms]

    @torch.no_grad()
    def arch_distribution(self):
        """The decoder's P (softmax of its logits / st_tau along the argmax walk; softmax(z) under
        official_softmax_st), as :meth:`propose` builds it, without any random draw."""
        if self.sw["official_softmax_st"]:
            return self._softmax_z()
        return torch.softmax(self.vae.decode_logits(self.z.detach()[None])[0] / self.st_tau, -1)

    def derive(self, epoch: int) -> Cell:
        """Decode of the current z (argmax; under official_stochastic_decode one more independent sampled decode,
        drawn from a generator seeded by (seed, epoch), so deriving never touches the search's random streams)."""
        if self.sw["official_stochastic_decode"]:
            gen = torch.Generator(device=self.z.device).manual_seed(1_000_003 * self.ctx.seed + epoch)
            return Cell(self._sampled_cells(1, gen)[0])
        return Cell(self._argmax_cell())

    # -- state --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "z": self.z.detach().clone(),
            "a_optimizer": self.a_optimizer.state_dict(),
            "a_prev": None if self.a_prev is None else list(self.a_prev),
            "archive": self.novelty.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.z.copy_(state["z"])
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        self.a_prev = None if state["a_prev"] is None else tuple(int(o) for o in state["a_prev"])
        self.novelty.load_state_dict(state["archive"])

    def run_info(self) -> dict[str, Any]:
        return {
            "vae_sha256": self.vae_sha256,
            "vae_config": dataclasses.asdict(self.vae.config),
            "vae_path": self.vae_path,
            "switches": dict(self.switches),
            # the argmax decode of z0 (under official_z_init z0 = 1e-3 N(0, I), whatever decode the run uses)
            "start_cell": Cell(self.start_cell).arch_str,
            "start": "1e-3 N(0, I)" if self.switches["official_z_init"] else "encoder mean of a uniformly drawn cell",
        }
