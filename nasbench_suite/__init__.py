"""nas-suite: fair, fast comparison of one-shot NAS methods on NAS-Bench-201."""

__version__ = "0.1.0"
