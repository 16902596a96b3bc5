"""The operator console in a real headless Chromium (selenium + Debian's chromium-driver), on a real call.

An operator logs in; a citizen who called the 市公安局 line before calls again and presses 2 then 0;
seat-1's SIPp phone answers, and the console's screen pop shows the menu path, the keys, the masked
number and the earlier call. The operator presses "consult 市公安局", the department's phone gets
the INVITE, and "Complete" leaves the citizen with the department. The page is kept as
docs/console.png (README "The operator console").
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ivr.console.accounts import AccountStore
from lab.citizen import place_call
from tests.integration.conftest import DEPARTMENTS_PORT, REPO, SEAT_PORTS, Controller, Phone, until

pytestmark = pytest.mark.integration

CALLER = "13912345678"
SCREENSHOT = REPO / "docs" / "console.png"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture
def browser() -> Iterator[object]:
    driver_path = shutil.which("chromedriver")
    assert driver_path, "chromedriver is missing: ./hotlinectl setup installs chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver: object, element_id: str) -> str:
    """The element's text, "" while the page shown has no such element (a navigation or a refresh under way)."""
    try:
        return str(driver.find_element(By.ID, element_id).text)  # type: ignore[attr-defined]
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def test_an_operator_sees_the_screen_pop_of_a_real_call_and_consults_the_police(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], browser: object, tmp_path: Path
) -> None:
    accounts = tmp_path / "console-accounts.json"
    AccountStore(accounts, rounds=4).add("li", "operator", "li's password", seat="seat-1")
    department = phones(DEPARTMENTS_PORT, talk_ms=12000)
    seat = phones(SEAT_PORTS[0], talk_ms=60000)
    phones(SEAT_PORTS[1], talk_ms=60000)
    controller = start_controller(env={"HOTLINE_CONSOLE_ACCOUNTS": str(accounts)})
    address = controller.env.get("HOTLINE_METRICS_ADDR", "127.0.0.1:9345")

    # The same citizen called the 市公安局 line before (key 1).
    earlier = place_call("12345", "1", caller=CALLER, talk_ms=12000, local_port=5071)
    assert earlier.succeeded, earlier.stderr
    (before,) = controller.finished_calls(1, timeout=30)
    assert before["menu_path"] and len(department.invites()) == 1

    driver = browser
    driver.get(f"http://{address}/console/login")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "name").send_keys("li")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "password").send_keys("li's password")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "login").click()  # type: ignore[attr-defined]
    # Until the login's redirect has landed, the page is still the login form, which has no #state.
    until(lambda: text_of(driver, "state") == "ready", timeout=10, what="the seat shown ready")

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(place_call, "12345", "20", caller=CALLER, talk_ms=40000, local_port=5072, timeout_s=90)
        until(lambda: len(seat.invites()) == 1, timeout=30, what="seat-1's phone to ring")

        def shown(element: str) -> str:
            return text_of(driver, element)

        until(lambda: shown("call-status") == "answered", timeout=20, what="the screen pop of the answered call")
        assert shown("menu-path") == "main/social"
        assert shown("keys") == "20"
        assert shown("caller") == "139****5678"
        assert shown("entry") == "12345"
        earlier_rows = driver.find_elements(By.CSS_SELECTOR, "#earlier tbody tr")  # type: ignore[attr-defined]
        assert len(earlier_rows) == 1 and "市公安局" in earlier_rows[0].text
        open_tickets = driver.find_elements(By.CSS_SELECTOR, "#tickets tbody tr")  # type: ignore[attr-defined]
        assert [row.text.split()[0] for row in open_tickets] == [before["ticket_id"]]  # the earlier call's
        assert CALLER not in driver.page_source  # type: ignore[attr-defined]
        SCREENSHOT.parent.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))  # type: ignore[attr-defined]

        button = driver.find_element(  # type: ignore[attr-defined]
            By.CSS_SELECTOR, "button[data-kind='consult'][data-target='gongan']"
        )
        assert button.text == "consult 市公安局"
        button.click()
        until(lambda: len(department.invites()) == 2, timeout=20, what="the department's phone to get the INVITE")
        assert "3372000" in department.invites()[1]
        until(lambda: shown("doing") == "consulting", timeout=10, what="the console to show the consult")
        driver.find_element(By.ID, "complete").click()  # type: ignore[attr-defined]
        # The ask waits for the department to answer (then "accepted: completed"; "queued" if it takes > 3 s).
        until(lambda: shown("message") in ("accepted: completed", "queued"), timeout=10, what="complete taken")
        assert call.result().succeeded, call.result().stderr

    (_, now) = controller.finished_calls(2, timeout=60)
    transfer = [s["detail"] for s in controller.calllog.steps(now["call_id"]) if s["name"] == "transfer"]
    assert transfer, controller.calllog.steps(now["call_id"])
    assert (transfer[0]["kind"], transfer[0]["unit"], transfer[0]["by"]) == ("consult", "市公安局", "console")
    assert (transfer[0]["outcome"], transfer[0]["handed_over"]) == ("completed", True)
    assert controller.saw("console_action", action="login", account="li", result="ok")
