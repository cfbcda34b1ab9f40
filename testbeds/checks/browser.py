"""A real browser for the checks of the web pages people use: Debian's chromium, headless,
driven by selenium through Debian's chromedriver.

The browser sits where a user's would: on the testbed's network, as seen from the entry
node. It reaches it through a SOCKS proxy that `ssh -D` opens on loopback over the
instance's own ssh_config (every target writes one), so host names resolve as on the
nodes and nothing is exposed. It trusts the testbed's CA alone (an NSS database of its
own), so every page is checked over verified TLS. Each step can keep a screenshot, which
`testbed verify` leaves beside its report."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CERTUTIL = "/usr/bin/certutil"
PAGE_TIMEOUT_S = 60
# A page's script may draw an element again between finding it and reading it: the wait then
# looks again instead of failing.
REDRAWN = (NoSuchElementException, StaleElementReferenceException)


def shown(driver: Any, by: str, what: str) -> list[Any]:
    """The elements found that are displayed (a page keeps hidden copies of some)."""
    return [element for element in driver.find_elements(by, what) if element.is_displayed()]


def first_shown(driver: Any, by: str, what: str) -> Any:
    """The first displayed element found, or None (a condition for `Browser.wait`)."""
    return next(iter(shown(driver, by, what)), None)


def browser_missing() -> str:
    """What is missing to run the browser here ('' when nothing is)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER, CERTUTIL) if not Path(path).exists()]
    if missing:
        return (
            f"{', '.join(missing)} missing: apt-get install chromium chromium-driver libnss3-tools"
        )
    return ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def socks_proxy(ssh_config: Path, through: str) -> Iterator[int]:
    """A SOCKS proxy on a loopback port into the testbed's network, through `through`."""
    port = free_port()
    tunnel = subprocess.Popen(
        ["ssh", "-F", str(ssh_config), "-N", "-o", "ExitOnForwardFailure=yes",
         "-o", "ControlPath=none", "-D", f"127.0.0.1:{port}", through],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if tunnel.poll() is not None or time.monotonic() > deadline:
                said = tunnel.stderr.read().decode(errors="replace") if tunnel.stderr else ""
                raise RuntimeError(f"no SOCKS proxy through {through}: {said.strip()[-300:]}")
            time.sleep(0.2)
        yield port
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=10)


class Browser:
    """One headless chromium session; `shot(name)` keeps a screenshot of the page."""

    def __init__(self, driver: webdriver.Chrome, shots: Path) -> None:
        self.driver = driver
        self.shots = shots

    def open(self, url: str) -> None:
        self.driver.get(url)

    def shot(self, name: str) -> Path:
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{len(list(self.shots.glob('*.png'))) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def wait(self, condition: Callable[[Any], Any], timeout: float = PAGE_TIMEOUT_S) -> Any:
        """What `condition(driver)` returns once it is truthy; a timeout names the page."""
        try:
            return WebDriverWait(self.driver, timeout, ignored_exceptions=REDRAWN).until(condition)
        except Exception as error:
            self.shot("timed-out")
            raise AssertionError(
                f"{type(error).__name__} after {timeout} s on {self.driver.current_url}: "
                f"{self.driver.find_element('tag name', 'body').text[:500]!r}"
            ) from None


@contextlib.contextmanager
def browser(ca_file: Path, ssh_config: Path, through: str, shots: Path) -> Iterator[Browser]:
    """A browser on the testbed's network (seen from node `through`) trusting `ca_file`."""
    home = Path(tempfile.mkdtemp(prefix="wp5-browser-"))
    try:
        nssdb = home / ".pki" / "nssdb"
        nssdb.mkdir(parents=True)
        subprocess.run([CERTUTIL, "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
        subprocess.run(
            [CERTUTIL, "-A", "-d", f"sql:{nssdb}", "-t", "C,,", "-n", "testbed-ca", "-i",
             str(ca_file)],
            check=True,
        )  # fmt: skip
        with socks_proxy(ssh_config, through) as port:
            options = webdriver.ChromeOptions()
            options.binary_location = CHROMIUM
            for argument in (
                "--headless=new",
                "--no-sandbox",  # the checks run as root
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                f"--user-data-dir={home / 'profile'}",
                # Every request through the tunnel, names resolved on the testbed's side.
                f"--proxy-server=socks5://127.0.0.1:{port}",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            ):
                options.add_argument(argument)
            service = Service(CHROMEDRIVER, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
            driver = webdriver.Chrome(service=service, options=options)
            try:
                driver.set_page_load_timeout(PAGE_TIMEOUT_S)
                yield Browser(driver, shots)
            finally:
                driver.quit()
    finally:
        shutil.rmtree(home, ignore_errors=True)
