"""Every lecture deck exports to offline HTML and renders as a real slide in headless Chromium."""

import re
import shutil
import subprocess

import pytest
from PIL import Image, ImageStat

from dpe_pipeline import slides
from dpe_pipeline.settings import project_dir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LECTURES = sorted((project_dir() / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    output = tmp_path_factory.mktemp("slides")
    return output, slides.export_all(output)


def test_every_lecture_has_a_deck(decks):
    _, written = decks
    assert LECTURES, "aucun notebook de cours dans notebooks/"
    assert [deck.name for deck in written] == [f"{lecture.stem}.slides.html" for lecture in LECTURES]


def test_decks_reference_no_remote_asset(decks):
    _, written = decks
    for deck in written:
        html = deck.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', html)
        remote += re.findall(r'import\s+[^;]*?from\s+"(https?://[^"]+)"', html)
        assert remote == [], f"{deck.name} charge encore depuis Internet : {remote}"
        for local in re.findall(r'<(?:script|link)[^>]+(?:src|href)="(vendor/[^"]+)"', html):
            assert (deck.parent / local).is_file(), f"{deck.name}: {local} manquant"


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium absent (scripts/install-system-deps.sh l'installe)")
@pytest.mark.parametrize("lecture", LECTURES, ids=lambda path: path.stem)
def test_deck_renders_in_headless_chromium(decks, lecture, tmp_path):
    output, _ = decks
    deck = output / f"{lecture.stem}.slides.html"
    screenshot = tmp_path / "deck.png"
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,720", "--virtual-time-budget=5000"]
    shot = [*browser, f"--screenshot={screenshot}", deck.as_uri()]
    subprocess.run(shot, check=True, capture_output=True, timeout=120)
    dom = subprocess.run([*browser, "--dump-dom", deck.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    # reveal.js marks its root "ready" once it has laid out the slides
    assert re.search(r'<div class="reveal [^"]*\bready\b', dom), f"{deck.name}: reveal.js ne s'est pas initialisé"
    image = Image.open(screenshot).convert("L")
    stats = ImageStat.Stat(image)
    dark_pixels = sum(image.histogram()[:128])
    # A blank page is uniform; a rendered slide has a title (dark text) and reveal's controls.
    assert stats.stddev[0] > 5, f"{deck.name} s'affiche vide"
    assert dark_pixels > 500, f"{deck.name} n'affiche pas de texte"
