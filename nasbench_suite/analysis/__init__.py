"""Analysis of stored runs: tables (Markdown, CSV, LaTeX), figures, HTML/JSON reports, and the regression check.

Entry points used by the CLI: :func:`render_report` (``nas-suite report``) and :func:`regress`
(``nas-suite regress``). Everything here reads the results store only.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, StoreError
from ..store import atomic_write_bytes
from .report import (
    FORMATS,
    build_report,
    render_csv,
    render_found_csv,
    render_html,
    render_json,
    render_latex,
    render_markdown,
)

__all__ = ["FORMATS", "RegressReport", "build_report", "regress", "render_report"]


def __getattr__(name: str):
    # The regression check imports torch (it reruns searches); `nas-suite report` must not pay for that.
    if name in ("regress", "RegressReport"):
        import importlib

        _module = importlib.import_module(f"{__name__}.regress")  # binds the submodule to `regress` first ...

        globals().update(regress=_module.regress, RegressReport=_module.RegressReport)  # ... then the function
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def render_report(
    results: Path, fmt: str = "md", out: Path | None = None, benchmark=None, published: bool = True
) -> str:
    """Render the report of the runs stored under ``results``; return its text and, with ``out``, write files.

    ``fmt``: ``md`` | ``csv`` | ``latex`` | ``html`` | ``json``. ``benchmark``: a Benchmark or a benchmark path
    for the optimum row (omitted when None, or when it is not the benchmark the runs were looked up in).
    ``published``: add the package's published rows, labelled by source. With ``out``: ``md`` writes
    ``report.md``; ``csv`` writes ``tables.csv`` and ``found_cells.csv``; ``latex`` writes ``tables.tex``;
    ``json`` writes ``report.json``; ``html`` writes a self-contained ``report.html`` (figures embedded) and the
    figures as PNG and PDF beside it. Raises StoreError when ``results`` holds no finished run.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    rep = build_report(Path(results), benchmark=benchmark, published=published)
    out = Path(out) if out is not None else None
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot write the report into {out} ({e.strerror or e})") from None
    if fmt == "md":
        text = render_markdown(rep)
        files = {"report.md": text}
    elif fmt == "csv":
        text = render_csv(rep)
        files = {"tables.csv": text, "found_cells.csv": render_found_csv(rep)}
    elif fmt == "latex":
        text = render_latex(rep)
        files = {"tables.tex": text}
    elif fmt == "json":
        text = render_json(rep)
        files = {"report.json": text}
    else:
        text = _html(rep, out)
        files = {"report.html": text}
    if out is not None:
        for name, content in files.items():  # atomically: a failed write (a full disk) keeps the old report
            atomic_write_bytes(out / name, content.encode())
    return text


def _html(rep, out: Path | None) -> str:
    from .figures import group_figures, png_base64, save_figure

    embedded: dict[str, dict[str, str]] = {}
    for g, t in zip(rep.groups, rep.tables):
        opt = next((r for r in t.rows if r.kind == "optimum"), None)  # regret needs the runs' own benchmark
        optima = {c[: -len("_test")]: v[0] for c, v in opt.values.items() if c.endswith("_test")} if opt else None
        figs = group_figures(g, rep.records, optima)
        embedded[g.key.slug] = {name: png_base64(fig) for name, fig in figs.items()}
        if out is not None:
            for name, fig in figs.items():
                save_figure(fig, out, f"{g.key.slug}-{name}")
    return render_html(rep, embedded)
