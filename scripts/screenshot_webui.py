"""Makes docs/img/webui.png: r1 serve on a model directory, one question asked in headless
Chromium. Usage: screenshot_webui.py R1_BINARY MODEL_DIR RUN_DIR OUT.png"""
import os
import shutil
import subprocess
import sys
import time

os.environ["SE_OFFLINE"] = "true"
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

r1, model, run, out = sys.argv[1:5]
server = subprocess.Popen([r1, "serve", "--model", model, "--chat-template", "deepseek-r1", "--port", "0", "--run", run],
                          stdout=subprocess.PIPE, text=True)
url = server.stdout.readline().split(" ")[2]
options = webdriver.ChromeOptions()
options.binary_location = shutil.which("chromium")
for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,700"):
    options.add_argument(arg)
browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
try:
    browser.get(url)
    box = browser.find_element(By.ID, "max_tokens")
    box.clear()
    box.send_keys("40")
    browser.find_element(By.ID, "input").send_keys("What does the KV cache hold?\n")
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "send").text == "Send"
                                     and d.find_elements(By.CSS_SELECTOR, ".msg.assistant .answer"))
    time.sleep(0.5)
    browser.save_screenshot(out)
    browser.find_element(By.ID, "tab-run").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#charts svg polyline"))
    browser.save_screenshot(out.replace(".png", "-run.png"))
finally:
    browser.quit()
    server.terminate()
