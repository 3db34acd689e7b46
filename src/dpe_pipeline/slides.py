"""Export the lecture notebooks (``notebooks/``) to offline reveal.js decks in ``slides/``.

reveal.js, require.js and jQuery come from the npm registry (pinned in
``slides/package-lock.json``), installed once into the cache and copied beside the decks, so
the HTML opens with no network: no CDN is referenced.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from dpe_pipeline.settings import project_dir

logger = logging.getLogger(__name__)

VENDOR_FILES = {
    # source inside node_modules → destination inside slides/vendor
    "reveal.js/dist": "reveal.js/dist",
    "reveal.js/plugin": "reveal.js/plugin",
    "requirejs/require.js": "requirejs/require.js",
    "jquery/dist/jquery.min.js": "jquery/jquery.min.js",
}


def cache_dir() -> Path:
    return Path(os.environ.get("DPE_CACHE", Path.home() / ".cache" / "dpe-course"))


def install_front_end(slides_dir: Path) -> Path:
    """``npm ci`` of the pinned front-end packages into the cache (once per lock); returns node_modules."""
    lock = (slides_dir / "package-lock.json").read_bytes()
    target = cache_dir() / "slides-npm" / hashlib.sha256(lock).hexdigest()[:12]
    node_modules = target / "node_modules"
    if (target / ".complete").exists():
        return node_modules
    if shutil.which("npm") is None:
        raise RuntimeError(
            "npm est introuvable : installez Node.js (apt-get install nodejs npm) pour exporter les diapositives."
        )
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(slides_dir / name, target / name)
    logger.info("installing reveal.js into %s", target)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=target, check=True)
    (target / ".complete").touch()
    return node_modules


def copy_vendor(node_modules: Path, output_dir: Path) -> None:
    vendor = output_dir / "vendor"
    for source, destination in VENDOR_FILES.items():
        src, dst = node_modules / source, vendor / destination
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy(src, dst)


def export_deck(notebook: Path, output_dir: Path) -> Path:
    """One lecture notebook → ``<output_dir>/<name>.slides.html`` referring only to ``vendor/``."""
    import nbformat
    from nbconvert import SlidesExporter

    exporter = SlidesExporter(
        reveal_url_prefix="vendor/reveal.js",
        require_js_url="vendor/requirejs/require.js",
        jquery_url="vendor/jquery/jquery.min.js",
        mathjax_url="",
        font_awesome_url="",
        mermaid_js_url="",
        reveal_theme="white",
        reveal_transition="slide",
    )
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    target = output_dir / f"{notebook.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target


def export_all(output_dir: Path | None = None, notebooks: list[Path] | None = None) -> list[Path]:
    """Export every lecture notebook; returns the written decks."""
    root = project_dir()
    output_dir = output_dir or root / "slides"
    output_dir.mkdir(parents=True, exist_ok=True)
    copy_vendor(install_front_end(root / "slides"), output_dir)
    notebooks = notebooks or sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    decks = [export_deck(notebook, output_dir) for notebook in notebooks]
    for deck in decks:
        print(f"Diapositives : {deck.relative_to(output_dir.parent) if output_dir.parent in deck.parents else deck}")
    return decks


def main(argv: list[str] | None = None) -> int:
    export_all()
    return 0
