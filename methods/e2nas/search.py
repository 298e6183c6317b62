"""E2NAS (Zhang et al., NeurIPS 2020) on NB201: gradient search on one latent vector z of a frozen graph VAE.

Per step (spec ``e2nas.md``; docs/e2nas.md for the full story):

1. decode z -> cell a_t (deterministic argmax walk of the decoder) and the decoder's op probabilities P (6 x 5)
   along a_t's path, one decoder walk with autograd to z;
2. weight step with architecture complementation: a_prev (the previous step's cell), a_bar (see
   :mod:`.complement`), ``L_w = (1-eps) CE(a_t) + eps/2 (CE(a_prev) + CE(a_bar))``, every term with gradient,
   each distinct cell computed once (equal cells are merged: same gradient, fewer passes);
3. arch step: ``L_val = CE(w; H)`` on a valid batch with straight-through hard weights
   ``H = onehot(a_t) - P.detach() + P`` (only the chosen op per edge is computed, dL/dz flows through P into the
   decoder), ``N(z)`` = archive log-likelihood (:mod:`.novelty`), ``L_arch = (1-gamma_k) L_val + gamma_k N(z)``,
   Adam on z.

The ``official_*`` switches reproduce what the authors' code does instead (each independently; ``official=true``
turns all of them on).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nasbench_suite.errors import ConfigError
from nasbench_suite.config import setting
from nasbench_suite.method import OneShotMethod, SearchContext, ce_and_acc, register
from nasbench_suite.space import NUM_EDGES, NUM_OPS, Cell, all_ops_array

from .complement import complementary_cell, weight_terms
from .novelty import ArchiveNovelty
from .schedules import parse_gamma

#: The official-behaviour switches, in the order of the variant label, with their short names.
OFFICIAL_SWITCHES: dict[str, str] = {
    "official_stochastic_decode": "sampled decode",
    "official_softmax_st": "softmax(z) ST",
    "official_nograd_complement": "no-grad complement",
    "official_nograd_novelty": "no-grad novelty",
    "official_reset_prev": "prev reset per epoch",
}

_GAMMA_GRID = ["static:0", "static:0.1", "static:0.5", "static:0.9", "sig:1", "sig:5", "sig:10", "sig:20"]
_EPS_GRID = ["0", "0.25", "0.5", "0.75"]
#: floor of the novelty fit's scales, as a fraction of each latent dimension's spread over all cells
MIN_SCALE_FRACTION = 0.1
#: ctx.extra key through which a caller (tests, the benchmark) may hand in ``(GraphVAE, sha256)``.
VAE_EXTRA_KEY = "e2nas_vae"


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
        archive_size: int = setting(50, ge=2, le=15_625)  # FIFO of visited cells for the novelty fit
        decode_samples: int = setting(10, ge=1, le=10_000)  # decodes per step under official_stochastic_decode
        vae_path: str = setting("", doc="a graph-VAE weights file")  # "" = methods/e2nas/weights/graph_vae.pt
        official: bool = False  # shortcut: all official_* switches on (wins over the individual values)
        official_stochastic_decode: bool = False
        official_softmax_st: bool = False
        official_nograd_complement: bool = False
        official_nograd_novelty: bool = False
        official_reset_prev: bool = False

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

    def _load_vae(self, ctx: SearchContext):
        given = ctx.extra.get(VAE_EXTRA_KEY)
        if given is not None:
            model, sha = given
            return copy.deepcopy(model), sha, "<given>"
        from .vae import DEFAULT_WEIGHTS, load_vae

        path = Path(self.hparams.vae_path) if self.hparams.vae_path else DEFAULT_WEIGHTS
        if not path.exists():
            raise ConfigError(
                f"E2NAS autoencoder weights {path} not found: train them with `nas-suite e2nas train-vae`"
                + ("" if self.hparams.vae_path else " (or set vae_path=...)")
            )
        model, sha = load_vae(path)
        return model, sha, str(path)

    # -- the contract -------------------------------------------------------------------------------------
    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        hp, dev = self.hparams, ctx.device
        self.sw = self.switches
        self.schedule = parse_gamma(hp.gamma)
        vae, self.vae_sha256, self.vae_path = self._load_vae(ctx)
        self.vae = vae.to(dev, torch.get_default_dtype()).eval()  # the run's dtype (float64 in the regression)
        for p in self.vae.parameters():
            p.requires_grad_(False)
        nz = self.vae.config.nz
        if self.sw["official_softmax_st"] and nz != NUM_EDGES * NUM_OPS:
            raise ConfigError(f"official_softmax_st reads z as 6 x 5 probabilities: it needs nz = 30, the VAE has {nz}")
        self.z = torch.nn.Parameter(1e-3 * torch.randn(nz, device=dev))
        self.a_optimizer = ctx.arch_adam([self.z])
        self.novelty = ArchiveNovelty(self._encode_one, nz, hp.archive_size, self._min_scale(), dev)
        self.a_prev: tuple[int, ...] | None = None
        self.gamma = self.schedule(0, ctx.epochs)

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
        self.gamma = self.schedule(epoch, self.ctx.epochs)
        if self.sw["official_reset_prev"]:
            self.a_prev = None

    def arch_parameters(self) -> list[torch.Tensor]:
        return [self.z]

    # -- pieces of a step (public so tests and the benchmark can call them) ---------------------------------
    def propose(self) -> tuple[tuple[int, ...], torch.Tensor]:
        """The cell a_t for the current z and the straight-through probabilities P (6 x 5, with grad to z)."""
        teacher = None
        if self.sw["official_stochastic_decode"]:
            with torch.no_grad():
                a_t = self._sampled_mode(None)
            teacher = torch.tensor([a_t], device=self.z.device)
        if self.sw["official_softmax_st"]:
            if teacher is None:
                a_t = tuple(self.vae.decode(self.z.detach()[None])[0].tolist())
            return a_t, torch.softmax(self.z, 0).view(NUM_EDGES, NUM_OPS)
        logits = self.vae.decode_logits(self.z[None], teacher_ops=teacher)[0]
        if teacher is None:  # the argmax walk: its choices are the argmax of its own logits
            a_t = tuple(logits.detach().argmax(-1).tolist())
        return a_t, torch.softmax(logits, -1)

    @torch.no_grad()
    def _sampled_mode(self, generator: torch.Generator | None) -> tuple[int, ...]:
        """Most frequent cell among ``decode_samples`` sampled decodes of z (ties: lowest cell index)."""
        n = self.hparams.decode_samples
        ops = self.vae.decode(self.z.detach().expand(n, -1), stochastic=True, generator=generator)
        powers = NUM_OPS ** torch.arange(NUM_EDGES - 1, -1, -1, device=ops.device)
        uniq, counts = torch.unique((ops * powers).sum(1), return_counts=True)
        return Cell.from_index(int(uniq[counts.argmax()])).ops

    def weight_loss(self, x, y, a_t, a_prev, a_bar) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(L_w, logits of a_t, number of supernet passes). Only the supernet weights get gradients."""
        net, eps = self.ctx.supernet, self.hparams.eps
        if self.sw["official_nograd_complement"]:
            logits = net.forward_cell(x, Cell(a_t))
            loss_t = F.cross_entropy(logits, y)
            loss = (1 - eps) * loss_t
            passes = 1
            if eps > 0:  # the official `.item()`: values only, no gradient
                values = {a_t: loss_t.item()}
                with torch.no_grad():
                    for c in (a_prev, a_bar):
                        if c not in values:
                            values[c] = F.cross_entropy(net.forward_cell(x, Cell(c)), y).item()
                            passes += 1
                loss = loss + eps / 2 * (values[a_prev] + values[a_bar])
            return loss, logits, passes
        terms = weight_terms(a_t, a_prev, a_bar, eps)
        total, logits = None, None
        for cell, coef in terms:
            out = net.forward_cell(x, Cell(cell))
            if cell == a_t:
                logits = out
            term = coef * F.cross_entropy(out, y)
            total = term if total is None else total + term
        return total, logits, len(terms)

    def arch_loss(self, xv, yv, a_t, P) -> tuple[torch.Tensor, dict[str, float]]:
        """L_arch = (1 - gamma) L_val + gamma N(z), after appending a_t to the archive."""
        onehot = F.one_hot(torch.tensor(a_t, device=P.device), NUM_OPS).to(P.dtype)
        H = onehot - P.detach() + P
        val_loss, val_acc = ce_and_acc(self.ctx.supernet.forward_hard(xv, H, a_t), yv)
        self.novelty.append(Cell(a_t).index)
        g = self.gamma
        if self.novelty.full:
            nov = self.novelty(self.z, grad=not self.sw["official_nograd_novelty"])
            loss = (1 - g) * val_loss + g * nov
        else:
            nov, loss = None, (1 - g) * val_loss
        logs = {"valid_loss": val_loss.item(), "valid_acc": val_acc, "novelty": 0.0 if nov is None else nov.item()}
        return loss, logs

    # -- the step -----------------------------------------------------------------------------------------
    def search_step(self, train_batch, valid_batch, epoch, step):
        ctx, eps = self.ctx, self.hparams.eps
        a_t, P = self.propose()
        a_prev = self.a_prev if self.a_prev is not None else a_t
        a_bar = complementary_cell(a_prev, a_t, ctx.rng) if eps > 0 else a_t
        x, y = train_batch
        w_loss, logits, passes = self.weight_loss(x, y, a_t, a_prev, a_bar)
        train_loss, train_acc = ce_and_acc(logits.detach(), y)
        ctx.weight_step(w_loss)

        xv, yv = valid_batch
        loss, logs = self.arch_loss(xv, yv, a_t, P)
        self.a_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.a_optimizer.step()
        changed = float(self.a_prev is not None and self.a_prev != a_t)
        self.a_prev = a_t
        return {
            "train_loss": train_loss.item(),
            "train_acc": train_acc,
            "weight_loss": w_loss.item(),
            **logs,
            "arch_loss": loss.item(),
            "gamma": self.gamma,
            "w_passes": float(passes),
            "cell_changed": changed,
        }

    def derive(self, epoch: int) -> Cell:
        """Decode of the current z (argmax; under official_stochastic_decode the mode of sampled decodes drawn
        from a generator seeded by (seed, epoch), so deriving never touches the search's random streams)."""
        if self.sw["official_stochastic_decode"]:
            gen = torch.Generator(device=self.z.device).manual_seed(1_000_003 * self.ctx.seed + epoch)
            return Cell(self._sampled_mode(gen))
        return Cell(tuple(self.vae.decode(self.z.detach()[None])[0].tolist()))

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
        }
