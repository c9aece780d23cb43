"""The web page of ``avatar serve`` in a real browser (headless Debian Chromium + Selenium).

The server runs in this process on a free local port. The page must open a session on an
uploaded photo, draw the streamed frames in step with their sound, move the mouth while
it speaks (and not the image's corners), stream a microphone, send controls, download
the last utterance and say in words what went wrong with a bad upload.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path("/work/tmp/web_page.png")  # saved only if /work/tmp exists (for a human look)
WAIT = 30.0  # seconds: generous, the test machine is shared and busy
POLL = 0.1
TEXT = "Bob bought a big blue boat. Maybe we bob by the bay."
AV_TOLERANCE_MS = 40.0  # picture vs. sound
MOUTH_CHANGE = 40  # grey levels: the lips move while speaking
CORNER_CHANGE = 3  # grey levels: the background does not (JPEG of unchanged blocks is exact)

pytestmark = pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                reason="needs Debian's chromium and chromium-driver "
                                       "(apt-get install chromium chromium-driver)")


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    from avatar.server.app import create_app
    from avatar.server.background import background_server

    with background_server(create_app()) as url:
        yield url


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
                 # a fake microphone (a beep) that needs no permission prompt
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console, checked after each test
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.set_script_timeout(WAIT)
        set_viewport(driver, 1280, 800)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser, server):
    """The page, freshly loaded (the last test's session closes as it unloads)."""
    open_page(browser, server)
    yield browser
    set_viewport(browser, 1280, 800)
    errors = script_errors(browser)
    assert not errors, f"the page's scripts failed: {errors}"


@pytest.fixture(scope="module")
def mouth_box(face_obs) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around the mouth of the bundled portrait: the lower part of its face."""
    x0, y0, x1, y1 = face_obs.box
    w, h = x1 - x0, y1 - y0
    return int(x0 + 0.15 * w), int(y0 + 0.55 * h), int(x1 - 0.15 * w), int(y1 + 0.1 * h)


# -- helpers --------------------------------------------------------------------------------
def script_errors(driver) -> list[str]:
    """Uncaught errors of the page's scripts since the last call (4xx replies are expected, not these)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and e.get("source") == "javascript"]


def set_viewport(driver, width: int, height: int) -> None:
    # the window size includes a window frame even headless; the viewport is what a user sees
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def wait_for(driver, condition, what: str, timeout: float = WAIT):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=POLL).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; the page shows: "
                             f"{page_words(driver)}") from None


def page_words(driver) -> str:
    """What the page says (status, error, event log): the story of a timeout."""
    return " | ".join(" ".join(text_of(driver, name).split()) for name in ("status", "error", "log"))


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_for(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1",
             "the page to load /api/info")


def by_id(driver, element_id: str):
    return driver.find_element("id", element_id)


def text_of(driver, element_id: str) -> str:
    # textContent, not .text: the error box may be hidden, and .text is "" then
    return by_id(driver, element_id).get_attribute("textContent") or ""


def status(driver, name: str) -> str:
    return by_id(driver, "status").get_attribute(f"data-{name}") or ""


def frames_drawn(driver) -> int:
    return int(by_id(driver, "video").get_attribute("data-frames") or 0)


def error_with_status(driver, code: int) -> str:
    wait_for(driver, lambda d: by_id(d, "error").get_attribute("data-status") == str(code),
             f"an error with status {code} on the page")
    box = by_id(driver, "error")
    assert box.is_displayed()
    return text_of(driver, "error")


def log_has(driver, words: str) -> bool:
    return words in text_of(driver, "log")


def canvas_image(driver) -> np.ndarray:
    """The canvas as an (H, W, 3) uint8 array, read losslessly (PNG)."""
    url = driver.execute_script("return document.getElementById('video').toDataURL('image/png');")
    data = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def choose_file(driver, path: Path) -> None:
    by_id(driver, "photo").send_keys(str(path))


def portrait_png(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def start_session(driver, photo: Path) -> None:
    choose_file(driver, photo)
    by_id(driver, "start").click()
    wait_for(driver, lambda d: status(d, "state") == "idle" and frames_drawn(d) > 10, "the first frames")
    assert not by_id(driver, "error").is_displayed(), text_of(driver, "error")


def speaking_frames(driver, count: int = 6, gap: float = 0.15) -> list[np.ndarray]:
    """Canvas images taken while the face speaks (stops early when it stops speaking)."""
    wait_for(driver, lambda d: status(d, "state") == "speaking", "the face to start speaking")
    images: list[np.ndarray] = []
    while len(images) < count and status(driver, "state") == "speaking":
        images.append(canvas_image(driver))
        if len(images) == 2:
            save_screenshot(driver)
        time.sleep(gap)  # spacing between samples, not a wait for a condition
    return images


def save_screenshot(driver) -> None:
    if SCREENSHOT.parent.is_dir():
        driver.save_screenshot(str(SCREENSHOT))


def change(images: list[np.ndarray]) -> np.ndarray:
    """(H, W): the largest difference of any image from the first, per pixel."""
    stack = np.stack(images).astype(np.int16)
    return np.abs(stack - stack[0]).max(axis=0).max(axis=2)


def downloaded(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*.mp4") if p.stat().st_size > 0]


# -- tests ----------------------------------------------------------------------------------
def test_page_says_in_words_what_is_wrong_with_an_upload(page, tmp_path):
    from avatar.config import LIVE

    fake = tmp_path / "not-a-photo.jpg"
    fake.write_text("this is text, not a JPEG\n")
    choose_file(page, fake)
    by_id(page, "start").click()
    message = error_with_status(page, 422)  # the server's answer
    assert "cannot read the image" in message.lower()
    wait_for(page, lambda d: status(d, "state") == "off", "no session to be open")

    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as f:
        f.truncate(LIVE.max_upload_bytes + 1)  # sparse: no 10 MB written
    choose_file(page, huge)
    message = error_with_status(page, 413)  # refused before uploading
    assert "too large" in message.lower() and "10.0 MB" in message


def test_page_streams_a_face_that_speaks_in_sync(page, tmp_path, portrait_image, mouth_box, downloads):
    start_session(page, portrait_png(tmp_path / "portrait.png", portrait_image))
    assert status(page, "clock") == "audio"  # the sound plays (autoplay allowed) and leads the pictures

    by_id(page, "download").click()  # nothing said yet: a 404 in words
    assert "nothing has been said" in error_with_status(page, 404)

    before = frames_drawn(page)
    text = by_id(page, "text")
    text.clear()
    text.send_keys(TEXT)
    by_id(page, "speak").click()
    images = speaking_frames(page)
    assert len(images) >= 2, "the face spoke for less than two samples"
    assert frames_drawn(page) > before + 10

    moved = change(images)
    x0, y0, x1, y1 = mouth_box
    assert moved[y0:y1, x0:x1].max() > MOUTH_CHANGE, "the mouth does not move while speaking"
    for corner in (moved[:12, :12], moved[:12, -12:], moved[-12:, :12], moved[-12:, -12:]):
        assert corner.max() <= CORNER_CHANGE, "the image's corners move"
    # the mean over the last second: a single picture painted late by a busy machine (or by
    # this test's screenshot, which stalls the page ~0.2 s) is jitter, not a drift of sync
    assert abs(float(status(page, "av-mean"))) <= AV_TOLERANCE_MS

    wait_for(page, lambda d: log_has(d, "Utterance 1 finished"), "the utterance to finish")
    wait_for(page, lambda d: status(d, "state") == "idle", "the face to idle again")
    by_id(page, "download").click()
    wait_for(page, lambda d: downloaded(downloads), "the mp4 download")
    assert downloaded(downloads)[0].read_bytes()[4:8] == b"ftyp"


def test_page_streams_the_microphone_sends_controls_and_stops(page):
    by_id(page, "mic").click()  # opens the bundled portrait's session, then the (fake) microphone
    wait_for(page, lambda d: log_has(d, "queued (audio)"), "the microphone's segment to be accepted")
    assert by_id(page, "mic").get_attribute("aria-pressed") == "true"
    start = frames_drawn(page)
    wait_for(page, lambda d: frames_drawn(d) > start + 15, "frames while the microphone streams")
    by_id(page, "mic").click()  # audio_end
    wait_for(page, lambda d: log_has(d, "finished"), "the microphone's segment to play to its end")

    from selenium.webdriver.support.ui import Select

    Select(by_id(page, "emotion")).select_by_value("happy")
    wait_for(page, lambda d: log_has(d, "Controls: emotion happy"), "the server to confirm the controls")

    text = by_id(page, "text")
    text.clear()
    text.send_keys("This sentence is long enough to be cut off in the middle, before it ends.")
    by_id(page, "speak").click()
    # the text's own playback (utterance 2), not the microphone's last frames still in the jitter buffer
    wait_for(page, lambda d: log_has(d, "Utterance 2 started"), "the text to start playing")
    wait_for(page, lambda d: status(d, "state") == "speaking", "the face to speak")
    by_id(page, "stop").click()
    wait_for(page, lambda d: log_has(d, "was interrupted"), "the interruption")
    wait_for(page, lambda d: status(d, "state") == "idle", "the face to idle after Stop", timeout=5)
    assert not by_id(page, "error").is_displayed(), text_of(page, "error")


def test_page_fits_a_phone_screen(page):
    set_viewport(page, 390, 844)
    scroll_width, view_width = page.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth];")
    assert scroll_width <= view_width, "the page scrolls sideways on a phone"
    canvas = page.execute_script("const r = document.getElementById('video').getBoundingClientRect();"
                                 "return [r.left, r.right];")
    assert canvas[0] >= 0 and canvas[1] <= 390


def test_page_says_why_the_server_closed_the_session(browser):
    """An idle session is closed by the server: the page says so in words."""
    import dataclasses

    from avatar.config import LIVE
    from avatar.server.app import create_app
    from avatar.server.background import background_server

    quick = dataclasses.replace(LIVE, idle_timeout_seconds=1.0)  # the sweep runs every 2 s
    with background_server(create_app(quick, warm_up=False)) as url:
        open_page(browser, url)
        by_id(browser, "start").click()
        wait_for(browser, lambda d: frames_drawn(d) > 0, "the first frames")
        wait_for(browser, lambda d: "server closed the session" in text_of(d, "error"), "the idle session to be closed")
        assert by_id(browser, "error").is_displayed()
        wait_for(browser, lambda d: status(d, "state") == "off", "the page to show no session")
        browser.get("about:blank")  # leave before this server stops
