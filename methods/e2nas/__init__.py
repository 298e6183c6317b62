"""E2NAS (Zhang et al., NeurIPS 2020): the graph autoencoder that maps NB201 cells to a continuous latent space.

``graph`` encodes a cell as the fixed 12-vertex DAG, ``vae`` holds the D-VAE-style model, ``train_vae`` trains it
and checks the three gates; ``weights/graph_vae.pt`` is the committed artefact (see :func:`load_default_vae`).
"""

from .graph import cell_to_types, types_to_ops
from .vae import GraphVAE, VAEConfig, load_default_vae, load_vae, save_vae

__all__ = ["GraphVAE", "VAEConfig", "cell_to_types", "types_to_ops", "load_default_vae", "load_vae", "save_vae"]
