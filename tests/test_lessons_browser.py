"""The lesson site in a real browser: headless Chromium opens every page from disk.

For each page: every ``<math>`` element is laid out with a non-zero size, every image
loaded, the site's MATH font loaded, and the browser logged no error; a screenshot of
the whole page is saved in the test's temporary folder.  The language switch is
clicked once.  Needs Debian's ``chromium`` and ``chromium-driver`` and the PyPI
package ``selenium``; without them the test is skipped, saying how to install them.
"""

import base64
import importlib.util
import shutil
from pathlib import Path

import pytest

INSTALL = ("needs headless Chromium, its driver and selenium: `apt-get install chromium chromium-driver` "
           "and `pip install selenium`")
CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).is_file()), None)
DRIVER = next((p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if p and Path(p).is_file()), None)
MISSING = [name for name, found in (("chromium", CHROMIUM), ("chromedriver", DRIVER),
                                     ("selenium", importlib.util.find_spec("selenium"))) if not found]

# slow: about 15 s of browser time on 2 cores (13 pages, the largest with ~90 equations)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not found: {INSTALL}")]

PAGES = ["index.html"] + [f"week-{n:02d}.html" for n in range(1, 13)]

#: what the page reports about itself once loaded and its fonts are ready
PROBE = """
const done = arguments[arguments.length - 1];
document.fonts.ready.then(() => {
  const size = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  done({
    maths: [...document.querySelectorAll("math")].map(size),
    images: [...document.querySelectorAll("img")].map(e => [e.getAttribute("src"), e.complete, e.naturalWidth]),
    fonts: [...document.fonts].filter(f => f.family.includes("TFD Math")).map(f => f.status),
  });
});
"""


@pytest.fixture(scope="module")
def site(weekly_runs, tmp_path_factory):
    """The site of the weekly tests' tiny runs (with at least one experiment's figures)."""
    from experiments.lessons import build_site
    from experiments.weekly import comparison

    if not (weekly_runs / "comparison" / "results.json").is_file():
        comparison.run(weekly_runs / "comparison", tiny=True, progress=False)
    return build_site(weekly_runs, tmp_path_factory.mktemp("browser-site"), progress=False).parent


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                "--window-size=1200,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: selenium-manager never looks for one on the network
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def test_every_page_renders_its_math_and_images_without_console_errors(site, browser, tmp_path):
    has_font = (site / "fonts").is_dir()
    images = 0
    for name in PAGES:
        browser.get((site / name).as_uri())
        seen = browser.execute_async_script(PROBE)
        errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        (tmp_path / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
        assert not errors, (name, errors)
        assert all(w > 0 and h > 0 for w, h in seen["maths"]), (name, [m for m in seen["maths"] if not all(m)])
        assert all(ok and width > 0 for _, ok, width in seen["images"]), (name, seen["images"])
        images += len(seen["images"])
        if has_font and seen["maths"]:
            assert seen["fonts"] and all(s == "loaded" for s in seen["fonts"]), (name, seen["fonts"])
    assert len(list(tmp_path.glob("*.png"))) == len(PAGES)
    assert images > 0  # the comparison experiment's figure at least


def test_the_language_switch_shows_one_language_at_a_time(site, browser):
    from selenium.webdriver.common.by import By

    browser.get((site / "week-07.html").as_uri())

    def shown(lang):
        return browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.getClientRects().length > 0)",
            f"main .{lang}[lang={lang}]")

    start = "ko" if all(shown("ko")) else "en"
    other = "en" if start == "ko" else "ko"
    assert all(shown(start)) and not any(shown(other))
    browser.find_element(By.CSS_SELECTOR, f'label[for="lang-{other}"]').click()
    assert all(shown(other)) and not any(shown(start))
    assert browser.execute_script("return document.documentElement.lang") == other
    assert not [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
