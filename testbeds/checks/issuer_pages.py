"""What a person does on the token issuer's pages (glewlwyd's web app) in a browser: log in
with the directory password, grant a client the scopes it asks for, continue, and enter a
device's code. Every step waits for the page's own script to show what it shows, so a
page that never loads (its scripts missing) fails here, naming where it stopped."""

from __future__ import annotations

from typing import Any

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from testbeds.checks.browser import REDRAWN, Browser, first_shown, shown


def button(browser: Browser, label: str) -> WebElement:
    """The visible button labelled `label`, once the page shows it."""
    found: WebElement = browser.wait(
        lambda driver: next(
            (
                element
                for element in driver.find_elements(By.TAG_NAME, "button")
                if element.text.strip() == label and element.is_displayed()
            ),
            None,
        )
    )
    return found


def press(browser: Browser, label: str) -> None:
    """Click the visible button labelled `label`: found and clicked in one look, again if the
    page drew it anew in between."""

    def clicked(driver: Any) -> bool:
        for element in driver.find_elements(By.TAG_NAME, "button"):
            if element.text.strip() == label and element.is_displayed():
                element.click()
                return True
        return False

    browser.wait(clicked)


# How often the login form is filled in again: the page's script may render it anew while it
# loads (what was typed is then gone, and OK submits nothing).
LOGIN_ATTEMPTS = 3
LOGIN_ANSWER_S = 20


def login_form_shown(driver: Any) -> bool:
    return bool(shown(driver, By.ID, "username"))


def log_in(browser: Browser, user: str, password: str) -> None:
    """The issuer's login form: the directory account and its password, until the page
    moves on from the form."""
    for _ in range(LOGIN_ATTEMPTS):
        browser.wait(login_form_shown)
        try:
            for field_id, value in (("username", user), ("password", password)):
                field = browser.driver.find_element(By.ID, field_id)
                field.clear()
                field.send_keys(value)
            browser.shot("issuer-login")
            if browser.driver.find_element(By.ID, "username").get_attribute("value") != user:
                continue  # the form was drawn again while it was filled in
            browser.driver.find_element(By.ID, "loginbut").click()
        except REDRAWN:
            continue  # drawn again between finding a field and typing into it
        try:
            WebDriverWait(browser.driver, LOGIN_ANSWER_S, ignored_exceptions=REDRAWN).until(
                lambda driver: not login_form_shown(driver)
            )
            return
        except TimeoutException:
            continue
    browser.shot("issuer-login-refused")
    raise AssertionError(
        f"the issuer's login form stayed after {LOGIN_ATTEMPTS} tries as {user}: "
        f"{browser.driver.find_element(By.TAG_NAME, 'body').text[:300]!r}"
    )


def grant_and_continue(browser: Browser) -> None:
    """After the login: grant the client what it asks for if the issuer asks (the first
    time), then continue to where the client sent the browser from."""

    def next_step(driver: object) -> str:
        for element in browser.driver.find_elements(By.TAG_NAME, "button"):
            if element.is_displayed() and element.text.strip() in ("Grant access", "Continue"):
                return element.text.strip()
        return ""

    if browser.wait(next_step) == "Grant access":
        for box in browser.driver.find_elements(By.CSS_SELECTOR, "input[id^='grant-']"):
            if not box.is_selected():
                box.click()
        browser.shot("issuer-grant")
        press(browser, "Grant access")
    button(browser, "Continue")
    browser.shot("issuer-continue")
    press(browser, "Continue")


def enter_device_code(browser: Browser, code: str) -> None:
    """The issuer's device page: the code the terminal showed."""
    field = browser.wait(lambda driver: first_shown(driver, By.CSS_SELECTOR, "input[type='text']"))
    field.send_keys(code)
    browser.shot("issuer-device-code")
    press(browser, "OK")
