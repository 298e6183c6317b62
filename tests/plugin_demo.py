"""A tiny third-party method package, installed for a test as a dist-info on a temporary ``sys.path`` entry.

``installed_plugin()`` writes ``nas_suite_demo_plugin.py`` and ``nas_suite_demo_plugin-0.1.dist-info`` (METADATA +
``entry_points.txt`` in group ``nas_suite.methods``) into a fresh folder, puts it on ``sys.path`` and lets the
registry load plugins again; on exit it takes everything away (registry, ``sys.path``, ``sys.modules``).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nasbench_suite import method as method_mod

NAME = "demo-plugin"
DIST = "nas_suite_demo_plugin"

MODULE = '''
"""A method from another package: uniformly random cells for the weights, the best of a few for the answer."""
import numpy as np

from nasbench_suite.method import OneShotMethod, ce_and_acc
from nasbench_suite.space import Cell, sample_cell


class DemoPlugin(OneShotMethod):
    display_name = "Demo plugin"

    def search_step(self, train_batch, valid_batch, epoch, step):
        x, y = train_batch
        loss, acc = ce_and_acc(self.ctx.supernet.forward_cell(x, sample_cell(self.ctx.rng)), y)
        self.ctx.weight_step(loss)
        return {"train_loss": loss.item(), "train_acc": acc}

    def derive(self, epoch):
        rng = np.random.default_rng([self.ctx.seed, epoch])
        cells = [sample_cell(rng) for _ in range(self.ctx.protocol.select_candidates)]
        return self.best_of(cells, epoch)
'''


@contextlib.contextmanager
def installed_plugin(entry_points: str = f"{NAME} = {DIST}:DemoPlugin\n", module: str = MODULE) -> Iterator[Path]:
    """Install the demo plugin distribution (or one with other ``entry_points``/``module`` text) for the block."""
    root = Path(tempfile.mkdtemp(prefix="nas-suite-plugin-"))
    (root / f"{DIST}.py").write_text(module)
    info = root / f"{DIST}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{method_mod.PLUGIN_GROUP}]\n{entry_points}")
    method_mod.method_names()  # the built-ins first, as in a real process (and in the snapshot restored on exit)
    saved = dict(method_mod._REGISTRY), dict(method_mod._ALIASES), dict(method_mod._PLUGINS)
    method_mod._PLUGINS.update(loaded=False, error=None)
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(DIST, None)
        for d, s in zip((method_mod._REGISTRY, method_mod._ALIASES, method_mod._PLUGINS), saved, strict=True):
            d.clear()
            d.update(s)
