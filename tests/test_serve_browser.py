"""The explorer page in headless Chromium (Debian's /usr/bin/chromium through Playwright) against a
real `convscope serve` process on 127.0.0.1: upload, predictions, Grad-CAM, feature maps, filters,
the arithmetic of one conv value, the calculator; screenshots under the test's tmp folder."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from serve_helpers import start_server

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from serve_helpers import digit_images, train_tiny

    tmp = tmp_path_factory.mktemp("browser")
    run = train_tiny(tmp / "run")
    image = tmp / "digit.png"
    image.write_bytes(digit_images(1)[0][0])
    proc, url = start_server(run, tmp)
    try:
        yield url, image
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        pg = context.new_page()
        outside, problems = [], []

        def guard(route):
            host = route.request.url.split("/")[2] if "://" in route.request.url else ""
            if host.startswith("127.0.0.1"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        pg.route("**/*", guard)
        pg.on("pageerror", lambda e: problems.append(str(e)))
        pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        pg.outside, pg.problems = outside, problems
        yield pg
        browser.close()


def canvas_colours(page, selector: str) -> int:
    """How many distinct RGB colours the canvas holds (1: blank)."""
    return page.evaluate(
        """(sel) => { const c = document.querySelector(sel), d = c.getContext('2d')
              .getImageData(0, 0, c.width, c.height).data, s = new Set();
           for (let i = 0; i < d.length; i += 4) s.add(d[i] + ',' + d[i+1] + ',' + d[i+2]);
           return s.size; }""",
        selector,
    )


def test_explorer_end_to_end(served, page, tmp_path):
    url, image = served
    model = json.load(urllib.request.urlopen(url + "/v1/model"))
    page.goto(url + "/")
    page.wait_for_selector("#arch tbody tr")
    arch = page.inner_text("#arch")
    for layer in model["layers"]:
        assert layer["name"] in arch
    assert page.locator("#arch tbody tr").count() == len(model["layers"])
    page.screenshot(path=str(tmp_path / "1-model.png"))

    page.set_input_files("#file", str(image))
    page.wait_for_selector("#bars .bar")
    probs = [
        float(v) for v in page.eval_on_selector_all("#bars .bar", "bs => bs.map(b => b.dataset.probability)")
    ]
    assert len(probs) == len(model["classes"])
    assert sum(probs) == pytest.approx(1.0, abs=1e-3)
    assert probs == sorted(probs, reverse=True)

    page.select_option("#cam-class", "3")
    page.click("#cam-go")
    page.wait_for_function("document.querySelector('#cam-info').textContent.length > 0")
    assert "class 3" in page.inner_text("#cam-info")
    assert canvas_colours(page, "#cam") > 20  # image plus heatmap, not a blank canvas

    conv = model["conv_layers"][-1]
    channels = next(layer["output_shape"][0] for layer in model["layers"] if layer["name"] == conv)
    page.select_option("#fm-layer", conv)
    page.click("#fm-go")
    page.wait_for_selector("#fm-grid .tile")
    assert page.locator("#fm-grid .tile").count() == channels
    page.screenshot(path=str(tmp_path / "2-features.png"), full_page=True)

    page.locator("#fm-grid .tile").nth(2).click()
    page.locator("#zoom canvas").click(position={"x": 100, "y": 100})
    page.wait_for_selector("#conv-trace .sum")
    trace = page.inner_text("#conv-trace")
    assert "bias" in trace and "the layer computed" in trace and "channel 0: window" in trace

    page.click("#flt-go")
    page.wait_for_selector("#fm-grid .tile.filter")
    assert page.locator("#fm-grid .tile.filter").count() == channels

    page.click("#calc button")
    page.wait_for_function("document.querySelector('#calc-out').textContent.length > 0")
    assert "warning" in page.inner_text("#calc-out")  # 28 - 5 with stride 2 does not fit
    page.screenshot(path=str(tmp_path / "3-explorer.png"), full_page=True)

    assert page.locator("#error").is_hidden()
    assert page.outside == [] and page.problems == []


def test_explorer_shows_errors_and_draws(served, page, tmp_path):
    url, _ = served
    page.goto(url + "/")
    page.wait_for_selector("#arch tbody tr")
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"definitely not a PNG")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:not([hidden])")
    assert "not a readable image" in page.inner_text("#error")

    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + 110, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 112, box["y"] + 190, steps=8)
    page.mouse.up()
    page.wait_for_selector("#bars .bar")
    assert page.locator("#error").is_hidden()
    # the canvas is drawn with the model's polarity: light ink on a dark background for digits
    corner = page.evaluate(
        "Array.from(document.querySelector('#draw').getContext('2d').getImageData(2, 2, 1, 1).data)"
    )
    assert corner[:3] == [0, 0, 0]
    page.screenshot(path=str(tmp_path / "drawn.png"))
    assert page.outside == []


def test_explorer_asks_for_the_api_key(tmp_path_factory, page):
    from serve_helpers import train_tiny

    tmp = tmp_path_factory.mktemp("key")
    run = train_tiny(tmp / "run")
    proc, url = start_server(run, tmp, env=dict(os.environ, CONVSCOPE_API_KEY="k3y"))
    try:
        page.goto(url + "/")
        page.wait_for_selector("#key-form:not([hidden])")
        assert "API key" in page.inner_text("#error")
        page.fill("#key", "k3y")
        page.click("#key-form button")
        page.wait_for_selector("#arch tbody tr")
        assert page.locator("#key-form").is_hidden()
    finally:
        proc.terminate()
        proc.wait(20)
