"""Screenshots of the dashboard in headless Chromium, for docs/ and for looking at changes.

    .venv/bin/python scripts/screenshots.py http://127.0.0.1:8050 docs/
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def chrome(width: int, height: int) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", f"--window-size={width},{height}", f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_for_grid(driver, timeout: float = 60) -> None:
    WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#head-grid .heatmaplayer")))
    time.sleep(1.0)


def click_tab(driver, label: str) -> None:
    driver.find_element(By.XPATH, f"//a[contains(@class,'nav-link') and normalize-space()='{label}']").click()
    time.sleep(2.0)


def main(url: str, out: Path, tabs: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for width, height in ((1366, 768), (1920, 1080), (1366, 1250)):
        driver = chrome(width, height)
        try:
            driver.get(url)
            wait_for_grid(driver)
            if height == 1250:  # taller pages for the tabs
                for label in tabs:
                    click_tab(driver, label)
                    name = label.lower().replace(" ", "-")
                    driver.save_screenshot(str(out / f"tab-{name}.png"))
            else:
                driver.save_screenshot(str(out / f"dashboard-{width}x{height}.png"))
        finally:
            driver.quit()


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8050"
    folder = Path(sys.argv[2] if len(sys.argv) > 2 else "docs")
    default_tabs = ["Head grid", "Head heatmap", "Arcs", "Model overview", "Head atlas", "Token focus"]
    main(target, folder, sys.argv[3].split(",") if len(sys.argv) > 3 else default_tabs)
