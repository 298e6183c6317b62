"""D-VAE-style variational autoencoder for the fixed NB201 cell DAG (spec ``e2nas.md`` section 2).

Encoder: asynchronous message passing in topological order, one ``GRUCell`` per direction. A vertex's GRU input is
the one-hot of its type; its incoming hidden state is the gated sum over its predecessors (successors, in the
backward pass) of ``sigmoid(G [h, id]) * (M [h, id])``, where ``id`` is the neighbour's vertex-id one-hot (as in
D-VAE with vertex ids). The graph state joins the END vertex's forward state with the START vertex's backward
state; linear heads give ``mu`` and ``logvar``.

Decoder: ``tanh(Linear(z))`` is the incoming state of START; the decoder walks the fixed topology and, at each op
vertex, predicts the type from the state of the previously added vertex (D-VAE's "current graph state") with an
MLP whose 8 type logits are masked to the 5 ops; the chosen (or teacher) type is then fed back.

Because the topology is fixed, every step is batched over cells: tensors are ``(B, ...)`` and the only Python loop
runs over the 12 vertices.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nasbench_suite.space import NUM_OPS

from .graph import (
    FIXED_TYPES,
    NUM_TYPES,
    NUM_VERTICES,
    OP_VERTICES,
    PREDECESSORS,
    REVERSE_ORDER,
    SUCCESSORS,
    TOPO_ORDER,
)

DEFAULT_WEIGHTS: Path = Path(__file__).resolve().parent / "weights" / "graph_vae.pt"
_FORMAT = "e2nas-graph-vae/1"
MESSAGE_GAIN = 2.0


@dataclass(frozen=True)
class VAEConfig:
    """Sizes and loss weights; saved with the weights so a file fully describes its model.

    ``eps_scale`` scales the reparameterisation noise, ``z = mu + eps_scale * sigma * N(0, I)``, in training and in
    gate (iii). 0.01 is D-VAE's value (its ``reparameterize(eps_scale=0.01)``). With 1.0 (a plain VAE) hidden 64
    plateaued at NLL ~0.9 per cell after 16 epochs on 2 CPU cores, far from the >= 99% gate.
    """

    hidden: int = 64
    nz: int = 30
    beta: float = 0.005
    eps_scale: float = 0.01


class _GatedMessage(nn.Module):
    """Gated sum of neighbour states with the neighbour's vertex id appended (D-VAE's ``gate * mapper``)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        width = hidden + NUM_VERTICES
        self.gate = nn.Linear(width, hidden)
        # No bias, as in D-VAE: a vertex without neighbours must receive an exact zero message.
        self.mapper = nn.Linear(width, hidden, bias=False)
        # Norm-preserving start: the default init shrinks a state by ~0.3 per hop (gate ~0.5 x mapper gain ~0.6),
        # so z (and each op's identity) fades along the 5-6 hops of the DAG and training crawls. Orthogonal x2
        # compensates the ~0.5 gate, so messages start about as large as the states they carry.
        with torch.no_grad():
            nn.init.orthogonal_(self.mapper.weight[:, :hidden], gain=MESSAGE_GAIN)

    def forward(self, states: list[torch.Tensor], ids: tuple[int, ...]) -> torch.Tensor:
        """``states``: one ``(B, hidden)`` tensor per neighbour in ``ids``; returns the ``(B, hidden)`` message.

        Equal to applying the layers to ``[h, one_hot(id)]``, but the one-hot product is a column lookup, which
        saves building and multiplying the concatenation at every vertex (this loop is the training hot path).
        """
        h = states[0].unsqueeze(1) if len(states) == 1 else torch.stack(states, dim=1)  # (B, k, hidden)
        hs = h.shape[-1]
        cols = list(ids)
        g = F.linear(h, self.gate.weight[:, :hs], self.gate.bias) + self.gate.weight[:, hs:][:, cols].T
        m = F.linear(h, self.mapper.weight[:, :hs]) + self.mapper.weight[:, hs:][:, cols].T
        return (torch.sigmoid(g) * m).sum(dim=1)


class GraphVAE(nn.Module):
    """D-VAE-style graph VAE over the 12-vertex NB201 cell DAG, batched over cells."""

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        self.config = config or VAEConfig()
        hs, nz = self.config.hidden, self.config.nz
        # encoder
        self.gru_fwd = nn.GRUCell(NUM_TYPES, hs)
        self.gru_bwd = nn.GRUCell(NUM_TYPES, hs)
        self.msg_fwd = _GatedMessage(hs)
        self.msg_bwd = _GatedMessage(hs)
        self.unify = nn.Linear(2 * hs, hs)
        self.fc_mu = nn.Linear(hs, nz)
        self.fc_logvar = nn.Linear(hs, nz)
        # decoder (its own GRU and gates: the decoder is used alone, frozen, during search)
        self.fc_z = nn.Linear(nz, hs)
        # The decoder's GRU also reads the vertex position. Without it, vertices 4 and 7 (edges 2<-0 and 3<-0) have
        # the same predecessor and, whenever they hold the same op, the same state - yet the next types predicted
        # from those states (edges 2<-1 and 3<-1) differ: ~16% of cells could never be reconstructed.
        self.gru_dec = nn.GRUCell(NUM_TYPES + NUM_VERTICES, hs)
        self.msg_dec = _GatedMessage(hs)
        self.type_head = nn.Sequential(nn.Linear(hs, 2 * hs), nn.ReLU(), nn.Linear(2 * hs, NUM_TYPES))
        # Additive mask: op vertices may only take op types (0..4); -inf on START/ADD/END.
        mask = torch.zeros(NUM_TYPES)
        mask[NUM_OPS:] = float("-inf")
        self.register_buffer("type_mask", mask, persistent=False)
        self.register_buffer("type_eye", torch.eye(NUM_TYPES), persistent=False)
        self.register_buffer("pos_eye", torch.eye(NUM_VERTICES), persistent=False)

    # -- encoder ------------------------------------------------------------------------------------------
    def _one_hot(self, types: torch.Tensor) -> torch.Tensor:
        # Row lookup in an identity matrix: cheaper than F.one_hot + cast inside the per-vertex loop.
        return self.type_eye[types]

    def encode(self, types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Vertex types ``(B, 12)`` -> ``(mu, logvar)``, each ``(B, nz)``."""
        x = self._one_hot(types)
        b, hs = types.shape[0], self.config.hidden
        zero = x.new_zeros(b, hs)
        fwd: list[torch.Tensor | None] = [None] * NUM_VERTICES
        for v in TOPO_ORDER:
            preds = PREDECESSORS[v]
            m = self.msg_fwd([fwd[p] for p in preds], preds) if preds else zero
            fwd[v] = self.gru_fwd(x[:, v], m)
        bwd: list[torch.Tensor | None] = [None] * NUM_VERTICES
        for v in REVERSE_ORDER:
            succ = SUCCESSORS[v]
            m = self.msg_bwd([bwd[s] for s in succ], succ) if succ else zero
            bwd[v] = self.gru_bwd(x[:, v], m)
        hg = self.unify(torch.cat([fwd[TOPO_ORDER[-1]], bwd[REVERSE_ORDER[-1]]], dim=1))
        return self.fc_mu(hg), self.fc_logvar(hg)

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``mu + eps_scale * sigma * N(0, I)``, drawn from ``generator`` (so training is reproducible)."""
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + self.config.eps_scale * eps * torch.exp(0.5 * logvar)

    # -- decoder ------------------------------------------------------------------------------------------
    def _walk(
        self,
        z: torch.Tensor,
        teacher_ops: torch.Tensor | None,
        masked: bool,
        sample: bool,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Walk the fixed topology; returns type logits ``(B, 6, 8)`` and chosen op ids ``(B, 6)``."""
        b = z.shape[0]
        h0 = torch.tanh(self.fc_z(z))
        states: list[torch.Tensor | None] = [None] * NUM_VERTICES
        logits, chosen = [], []
        for v in TOPO_ORDER:
            fixed = FIXED_TYPES[v]
            if fixed is None:
                # Predict from the previously added vertex's state, as D-VAE does.
                e = len(chosen)
                lg = self.type_head(states[v - 1])
                if masked:
                    lg = lg + self.type_mask
                logits.append(lg)
                if teacher_ops is not None:
                    t = teacher_ops[:, e]
                elif sample:
                    probs = torch.softmax(lg.detach(), dim=1)
                    t = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                else:
                    t = lg.detach().argmax(dim=1)
                chosen.append(t)
            preds = PREDECESSORS[v]
            m = self.msg_dec([states[p] for p in preds], preds) if preds else h0
            x = self._one_hot(t) if fixed is None else self.type_eye[fixed].expand(b, -1)
            states[v] = self.gru_dec(torch.cat([x, self.pos_eye[v].expand(b, -1)], 1), m)
        return torch.stack(logits, dim=1), torch.stack(chosen, dim=1)

    def type_logits(
        self, z: torch.Tensor, teacher_ops: torch.Tensor | None = None, masked: bool = True
    ) -> torch.Tensor:
        """All 8 type logits ``(B, 6, 8)`` at the op vertices; ``masked=False`` leaves START/ADD/END open."""
        return self._walk(z, teacher_ops, masked=masked, sample=False, generator=None)[0]

    def decode_logits(self, z: torch.Tensor, teacher_ops: torch.Tensor | None = None) -> torch.Tensor:
        """Masked op logits ``(B, 6, 5)`` along the path of ``teacher_ops`` (or of the argmax decode if None).

        Differentiable w.r.t. ``z`` (only the fed-back discrete choices carry no gradient).
        """
        return self.type_logits(z, teacher_ops, masked=True)[..., :NUM_OPS]

    @torch.no_grad()
    def decode(
        self, z: torch.Tensor, stochastic: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Op ids ``(B, 6)``: argmax per op vertex, or sampled from the masked softmax if ``stochastic``."""
        return self._walk(z, None, masked=True, sample=stochastic, generator=generator)[1]

    # -- training -----------------------------------------------------------------------------------------
    def loss(
        self, types: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(total, nll, kl)``, each averaged over the batch; ``total = nll + beta * kl``.

        ``nll`` sums the negative log-likelihood of the 6 op types of a cell (teacher forcing); ``kl`` sums the KL
        to N(0, I) over latent dimensions. Both are per cell, so ``beta`` weighs them as in D-VAE's summed loss.
        """
        mu, logvar = self.encode(types)
        z = self.reparameterize(mu, logvar, generator)
        ops = types[:, list(OP_VERTICES)]
        logits = self.decode_logits(z, teacher_ops=ops)
        nll = F.cross_entropy(logits.reshape(-1, NUM_OPS), ops.reshape(-1), reduction="sum") / types.shape[0]
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / types.shape[0]
        return nll + self.config.beta * kl, nll, kl


# -- persistence --------------------------------------------------------------------------------------------
def vae_bytes(model: GraphVAE, half: bool = True) -> bytes:
    """Serialise ``model`` (fp16 state dict if ``half``, plus its config) to bytes.

    Saved through an in-memory buffer so the bytes (and hence the sha256) do not depend on the file name.
    """
    state = {k: (v.half() if half and v.is_floating_point() else v).clone() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"format": _FORMAT, "config": asdict(model.config), "state_dict": state}, buf)
    return buf.getvalue()


def save_vae(model: GraphVAE, path: str | Path, half: bool = True) -> str:
    """Write ``model`` to ``path``; return the file's sha256 hex digest."""
    data = vae_bytes(model, half=half)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_vae(path: str | Path) -> tuple[GraphVAE, str]:
    """Load a saved autoencoder (as fp32, in eval mode) and return it with the file's sha256 hex digest."""
    data = Path(path).read_bytes()
    blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if blob.get("format") != _FORMAT:
        raise ValueError(f"{path} is not an E2NAS graph-VAE file (format {blob.get('format')!r})")
    model = GraphVAE(VAEConfig(**blob["config"]))
    model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    model.eval()
    return model, hashlib.sha256(data).hexdigest()


def missing_weights_message(path: str | Path) -> str:
    """The one message for absent autoencoder weights, naming the command that writes them at ``path`` (the
    committed file needs ``--force``: ``train-vae`` never replaces it by default)."""
    force = " --force" if Path(path).resolve() == DEFAULT_WEIGHTS.resolve() else ""
    return (
        f"E2NAS autoencoder weights {path} not found: train them with "
        f"`nas-suite e2nas train-vae --seed 0 --out {path}{force}`"
    )


def load_default_vae() -> tuple[GraphVAE, str]:
    """The committed autoencoder (``weights/graph_vae.pt``) and its sha256, which runs record."""
    if not DEFAULT_WEIGHTS.exists():
        raise FileNotFoundError(missing_weights_message(DEFAULT_WEIGHTS))
    return load_vae(DEFAULT_WEIGHTS)


def committed_or_standin() -> tuple[GraphVAE, str, str]:
    """For step timing: the committed autoencoder, or (weights absent) an untrained one of the default size, which
    costs the same. Returns ``(model, sha256 or "untrained", note)``; the note is empty for the committed one.
    The stand-in is drawn from its own seed without touching the caller's torch RNG."""
    if DEFAULT_WEIGHTS.exists():
        model, sha = load_vae(DEFAULT_WEIGHTS)
        return model, sha, ""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GraphVAE(VAEConfig()).eval()
    return model, "untrained", "untrained autoencoder stand-in (same cost): committed weights absent"


__all__ = [
    "VAEConfig",
    "GraphVAE",
    "save_vae",
    "load_vae",
    "load_default_vae",
    "vae_bytes",
    "committed_or_standin",
    "missing_weights_message",
    "DEFAULT_WEIGHTS",
]
