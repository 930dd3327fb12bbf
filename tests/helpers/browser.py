"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium, for tests/system/test_browser.py.

Nothing is downloaded: the browser is ``/usr/bin/chromium`` and the driver ``/usr/bin/chromedriver``, both from
Debian (``scripts/ensure-chromium.sh`` installs them). The driver path is given to Selenium explicitly, so
Selenium Manager (which would try to fetch a driver from the internet) never runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

T = TypeVar("T")

#: The flags every Chromium of the project's tests runs with (a fresh --user-data-dir is added per browser).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--password-store=basic",
    "--lang=en-US",
)
WINDOW = (1440, 1000)


def chromium_binary() -> str | None:
    """Debian's Chromium, or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def chromedriver_binary() -> str | None:
    """Debian's ChromeDriver (package ``chromium-driver``), or None."""
    return shutil.which("chromedriver")


def missing_browser_parts() -> list[str]:
    """What is missing to drive a browser: Debian packages and the Python package, by name."""
    missing = []
    if chromium_binary() is None:
        missing.append("chromium (apt-get install chromium)")
    if chromedriver_binary() is None:
        missing.append("chromedriver (apt-get install chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install selenium; pinned in constraints/)")
    return missing


class Browser:
    """One headless Chromium with a fresh profile; :meth:`quit` ends it and removes the profile."""

    def __init__(self, *, log_path: Path, page_load_timeout: float = 60.0) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = Path(tempfile.mkdtemp(prefix="apc-chromium-profile-"))
        options = webdriver.ChromeOptions()
        options.binary_location = chromium_binary() or "chromium"
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=chromedriver_binary() or "chromedriver", log_output=str(log_path))
        try:
            self.driver: WebDriver = webdriver.Chrome(service=service, options=options)
        except Exception:
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        self.driver.set_page_load_timeout(page_load_timeout)
        self.driver.set_script_timeout(page_load_timeout)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def wait(self, condition: Callable[[WebDriver], T], timeout: float, message: str) -> T:
        """``WebDriverWait(timeout).until(condition)``, failing with ``message`` and the page's text."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.25).until(condition)
        except TimeoutException:
            errors = "\n".join(self.console_errors()[-10:]) or "none"
            raise AssertionError(
                f"{message} (waited {timeout:.0f} s) at {self.driver.current_url}; the page "
                f"shows:\n{self.visible_text()[:3000]}\nbrowser console errors:\n{errors}"
            ) from None

    def visible_text(self) -> str:
        try:
            return str(self.driver.execute_script("return document.body ? document.body.innerText : ''"))
        except Exception as exc:  # the page is gone or navigating
            return f"<no text: {type(exc).__name__}>"

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole viewport, in ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), f"Chromium could not save a screenshot to {path}"
        return path

    def console_errors(self) -> list[str]:
        try:
            entries: list[dict[str, Any]] = self.driver.get_log("browser")
        except Exception:
            return []
        return [str(e.get("message")) for e in entries if e.get("level") == "SEVERE"]


def element_attributes(element: WebElement) -> dict[str, Any]:
    """The attributes a form check needs, read in one round trip."""
    script = (
        "const e = arguments[0];"
        "return {id: e.id, name: e.getAttribute('name'), type: e.type,"
        " placeholder: e.getAttribute('placeholder'), value: e.value, tag: e.tagName.toLowerCase()};"
    )
    return dict(element.parent.execute_script(script, element))


def artifacts_dir() -> Path:
    """``tests/artifacts/`` (git-ignored), or ``$CONFLUENCE_TEST_ARTIFACTS`` when set."""
    path = Path(os.environ.get("CONFLUENCE_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
