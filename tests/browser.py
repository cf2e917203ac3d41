"""Headless Chromium for the browser tests: Debian's ``chromium`` and ``chromium-driver``, via Selenium.

A plain module, imported as ``from tests.browser import headless_chromium``. Nothing is downloaded at run
time: Selenium is handed Debian's chromedriver, so Selenium Manager (which would look up a driver on
googlechromelabs.github.io and send usage statistics to plausible.io) never runs, and ``SE_OFFLINE=true``
keeps it offline should anything start it anyway. Chromium runs with its background services off and
every host name but ``localhost`` unresolvable: a page can reach this machine and nothing else.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.helpers import require

INSTALL = "apt-get install chromium chromium-driver"
# The browser itself: /usr/bin/chromium is Debian's launcher script, which sources /etc/chromium.d (Google
# API keys, --enable-remote-extensions, which turns off its own --disable-background-networking) and execs
# this. Started directly, Chromium gets the switches below and nothing else.
DEBIAN_CHROMIUM = "/usr/lib/chromium/chromium"
PAGE_LOAD_TIMEOUT = 30  # seconds

# Read by Selenium Manager, the binary Selenium runs to find (and download) a driver when it is not
# given one: offline, it neither downloads nor sends statistics. Unset SE_CHROMEDRIVER, which would
# override the driver path given to Service.
SELENIUM_OFFLINE = {"SE_OFFLINE": "true", "SE_AVOID_STATS": "true"}

# Chromium's switches (chrome/common/chrome_switches.cc and friends): headless, root in a container, and
# no network but the pages a test opens.
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",  # the tests run as root, which the sandbox refuses
    "--disable-dev-shm-usage",  # /dev/shm is small in containers: shared memory in /tmp instead
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-component-extensions-with-background-pages",
    "--disable-default-apps",
    # Phoning home: variations seed, component and Safe Browsing updates, sync, metrics uploads,
    # domain reliability reports, hyperlink auditing pings, translate and optimisation hints.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--metrics-recording-only",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--disable-field-trial-config",
    "--no-pings",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    # And should anything still try: no proxy, and no host name resolves but localhost (IP addresses,
    # 127.0.0.1 included, need no resolving).
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--password-store=basic",
)


def chromium_paths() -> tuple[str, str] | None:
    """Debian's Chromium and its chromedriver, or ``None`` if either is missing."""
    browser = DEBIAN_CHROMIUM if os.access(DEBIAN_CHROMIUM, os.X_OK) else shutil.which("chromium")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chromium_available() -> str | None:
    """``None`` if Chromium and chromedriver are installed, else what to install."""
    if chromium_paths() is not None:
        return None
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    return f"{' and '.join(missing) or 'chromium'} not installed ({INSTALL})"


def require_chromium() -> None:
    """Skip the test without Chromium and chromedriver, or fail it when ``CI`` is ``"true"``."""
    reason = chromium_available()
    require(reason is None, reason or "")


@contextmanager
def headless_chromium(*, window_size: tuple[int, int] = (1280, 1600)) -> Iterator[WebDriver]:
    """A headless Chromium driven by Debian's chromedriver, quit on the way out.

    Skips the test (fails it under ``CI=true``) when they are not installed. Each browser gets a fresh
    profile in a temporary directory, removed afterwards; pages time out after ``PAGE_LOAD_TIMEOUT``.
    """
    require_chromium()
    browser, driver_path = chromium_paths()
    width, height = window_size
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for argument in (
            *CHROMIUM_ARGUMENTS,
            f"--window-size={width},{height}",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(argument)
        with mock.patch.dict(os.environ, SELENIUM_OFFLINE):
            os.environ.pop("SE_CHROMEDRIVER", None)
            # With a driver path, Selenium's DriverFinder skips Selenium Manager altogether.
            service = Service(executable_path=driver_path)
            driver = webdriver.Chrome(service=service, options=options)
        try:
            driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
            yield driver
        finally:
            driver.quit()
