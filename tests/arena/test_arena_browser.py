"""The report opens in headless Chromium and its figures render (Debian chromium + chromium-driver)."""

import shutil

import pytest

from sampo_verl.arena.report import build_report

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="no headless browser: apt-get install -y chromium chromium-driver"
)

# the closed network refuses Chromium's background connections: keep them off
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1300,1000",
)


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_figures_render_in_chromium(arena_dir, tmp_path, browser):
    index = build_report(arena_dir, tmp_path / "report")
    shutil.move(index, tmp_path / "alone.html")
    shutil.rmtree(index.parent)  # self-contained: the page needs none of the PNG files beside it
    browser.get((tmp_path / "alone.html").as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
    )
    # 2 environments x (success, success by method, stability); natural sizes are the PNGs' pixel sizes
    assert [(alt, done, w, h) for alt, done, w, h in images] == [
        ("frozenlake: validation success rate per method", True, 500, 435),
        ("frozenlake: validation success rate, one panel per method with every seed", True, 1400, 552),
        ("frozenlake: stability panel per method", True, 1500, 385),
        ("sokoban: training success rate per method", True, 500, 410),
        ("sokoban: training success rate, one panel per method with every seed", True, 1050, 296),
        ("sokoban: stability panel per method", True, 1500, 705),
    ]
    assert browser.title == f"Arena report: {arena_dir.name}"
    rows = browser.execute_script("return document.querySelectorAll('table.ranking tr[data-method]').length")
    assert rows == 5 + 3
