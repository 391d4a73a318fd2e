"""`alexnet explore` in a real browser: Debian's headless Chromium, driven by Selenium, opens the
page the command serves, picks an image, waits for the panels, checks the top-5 against
`alexnet predict`, enlarges a channel of the second tower, computes an occlusion map and cancels another, uploads a
hostile file (a message; the server goes on) and saves a screenshot.

Skipped only where Chromium is not installed (`apt-get install chromium chromium-driver`);
.ci/run installs it and sets ALEXNET_REQUIRE_BROWSER=1, which turns that skip into a failure.
ALEXNET_EXPLORE_SCREENSHOT=path.png keeps the screenshot (docs/img/ has one made so)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from explore_helpers import image_folder, predict_cli

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# a fresh profile, and nothing that reaches for the network (the machine may have none)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,2600",
]


def _browser_or_skip():
    pytest.importorskip(
        "starlette", reason="the explore extra is not installed (pip install 'alexnet[explore]')"
    )
    if not (CHROMIUM.exists() and DRIVER.exists()):
        why = f"{CHROMIUM} or {DRIVER} is absent (apt-get install -y chromium chromium-driver)"
        if os.environ.get("ALEXNET_REQUIRE_BROWSER"):
            pytest.fail(f"ALEXNET_REQUIRE_BROWSER is set, but {why}")
        pytest.skip(why)
    return pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (it is in the dev extra)"
    )


def _photos(root: Path) -> Path:
    """Six ImageNet photos (in a folder and a subfolder) where the real data is, else random images."""
    sample = Path(
        os.environ.get("ALEXNET_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    files = sorted((sample / "imagenet-sample").glob("*.jpg"))[::150][:6]
    if len(files) < 6:
        return image_folder(root)
    for i, f in enumerate(files):
        (root / ("sub" if i % 2 else "")).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / ("sub" if i % 2 else "") / f.name)
    return root


def _serve(weights, folder):
    """`alexnet explore` as a user starts it; returns (process, URL it printed)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alexnet",
            "explore",
            "--weights",
            str(weights),
            "--images",
            str(folder),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if line.startswith("http://127.0.0.1:"):
            return proc, line.strip()
        if time.monotonic() > deadline:
            break
    proc.kill()
    pytest.fail(f"alexnet explore printed no URL (exit status {proc.wait()})")


def test_the_page_in_chromium(tmp_path, paper_net_file):
    webdriver = _browser_or_skip()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    weights = paper_net_file
    folder = _photos(tmp_path / "images")
    proc, url = _serve(weights, folder)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium: never look for a driver online
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(DRIVER)))
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(url)
        body = driver.find_element(By.TAG_NAME, "body")
        first = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#images li button"))[2]
        name = first.get_attribute("data-path")
        first.click()
        ready = wait.until(lambda d: body.get_attribute("data-ready"))
        shown = [
            (n.text, p.text)
            for n, p in zip(
                driver.find_elements(By.CSS_SELECTOR, "#top5 .name"),
                driver.find_elements(By.CSS_SELECTOR, "#top5 .p"),
            )
        ]
        assert shown == predict_cli(folder / name, weights)
        grids = driver.find_elements(By.CSS_SELECTOR, "#stages img")
        assert [g.get_attribute("data-stage") for g in grids] == [
            "conv1",
            "norm1",
            "pool1",
            "conv2",
            "norm2",
            "pool2",
            "conv3",
            "conv4",
            "conv5",
            "pool5",
        ]
        assert all(driver.execute_script("return arguments[0].naturalWidth", g) > 0 for g in grids)
        # conv1's channel 50, the second tower's third: click the middle of its tile
        layout = driver.execute_script("return current.stages[0].layout")
        j = 50 - layout["per"]
        x = (
            layout["cols"] * (layout["w"] + 1)
            + layout["gap"]
            + (j % layout["cols"]) * (layout["w"] + 1)
            + layout["w"] // 2
        )
        y = (j // layout["cols"]) * (layout["h"] + 1) + layout["h"] // 2
        k = grids[0].size["width"] / driver.execute_script("return arguments[0].naturalWidth", grids[0])
        ActionChains(driver).move_to_element_with_offset(
            grids[0],
            round((x + 0.5) * k - grids[0].size["width"] / 2),
            round((y + 0.5) * k - grids[0].size["height"] / 2),
        ).click().perform()
        wait.until(lambda d: d.find_element(By.ID, "channel-title").text == "conv1, channel 50")
        wait.until(lambda d: body.get_attribute("data-lrn") == ready)
        assert "the network's own output" in driver.find_element(By.ID, "lrn-numbers").text
        Select(driver.find_element(By.ID, "occ-size")).select_by_index(2)
        Select(driver.find_element(By.ID, "occ-stride")).select_by_index(2)
        driver.find_element(By.ID, "occ-start").click()
        wait.until(lambda d: d.find_element(By.ID, "occ-status").text == "done")
        assert driver.find_element(By.ID, "occ-caption").text.startswith(f"P({shown[0][0]}) = {shown[0][1]}")
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(tmp_path / "explore.png"))
        if os.environ.get("ALEXNET_EXPLORE_SCREENSHOT"):
            shutil.copy(tmp_path / "explore.png", os.environ["ALEXNET_EXPLORE_SCREENSHOT"])
        # a long one, cancelled: the page says so and the server stops it (tested in test_explore.py)
        Select(driver.find_element(By.ID, "occ-size")).select_by_index(0)
        Select(driver.find_element(By.ID, "occ-stride")).select_by_index(0)
        driver.find_element(By.ID, "occ-start").click()
        wait.until(lambda d: "positions" in d.find_element(By.ID, "occ-status").text)
        driver.find_element(By.ID, "occ-cancel").click()
        assert driver.find_element(By.ID, "occ-status").text == "cancelled"
        assert driver.find_element(By.ID, "occ-start").is_enabled()
        # a hostile upload: a message in the page, and the server goes on serving
        bad = tmp_path / "evil.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
        driver.find_element(By.ID, "file").send_keys(str(bad))
        status = driver.find_element(By.ID, "status")
        wait.until(lambda d: "error" in status.get_attribute("class"))
        assert "evil.jpg: not a readable image" in status.text
        driver.find_elements(By.CSS_SELECTOR, "#images li button")[0].click()
        wait.until(lambda d: body.get_attribute("data-ready") not in ("", ready))
        assert proc.poll() is None
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(20)
