"""The web UI of r1 serve in a real headless Chromium (Debian's chromium and chromium-driver,
driven by selenium; nothing is downloaded): the page loads, a message sent from it streams an
answer that equals the API's answer for the same settings, and the run view plots a run's
metrics.jsonl."""
import json
import os
import shutil
import subprocess
import unittest
import urllib.request

from r1test import make_question_model, R1, TempDirCase

os.environ["SE_OFFLINE"] = "true"  # selenium must never fetch a driver or a browser
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


class WebUi(TempDirCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        model = make_question_model(self.tmp, 200, 300, "<|eos|>,<|im_start|>,<|im_end|>", 512, 4)
        run = os.path.join(self.tmp, "run")
        os.makedirs(run)
        with open(os.path.join(run, "metrics.jsonl"), "w") as f:
            for step in range(1, 21):
                f.write(json.dumps({"step": step, "loss": 5.0 / step, "lr": 1e-3}) + "\n")
        self.server = subprocess.Popen([R1, "serve", "--model", model, "--chat-template", "chatml", "--port", "0",
                                        "--threads", "1", "--run", run], stdout=subprocess.PIPE, text=True)
        line = self.server.stdout.readline()
        self.url = line.split(" ")[2]
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
            options.add_argument(arg)
        self.browser = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                                        options=options)

    def tearDown(self):
        self.browser.quit()
        self.server.terminate()
        self.server.wait(timeout=30)
        super().tearDown()

    def test_chat_streams_an_answer_and_run_view_plots_metrics(self):
        b = self.browser
        b.get(self.url)
        self.assertEqual(b.title, "r1.cpp")
        for field, value in (("temperature", "0"), ("max_tokens", "24")):
            box = b.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
        b.find_element(By.ID, "input").send_keys("what is 2 plus 3?\n")
        wait = WebDriverWait(b, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.assistant .answer")
                   and d.find_element(By.ID, "send").text == "Send"
                   and d.find_element(By.CSS_SELECTOR, ".msg.assistant .answer").text)
        shown = b.find_element(By.CSS_SELECTOR, ".msg.assistant .answer").get_attribute("textContent")
        body = json.dumps({"messages": [{"role": "user", "content": "what is 2 plus 3?"}], "temperature": 0,
                           "top_p": 0.95, "max_tokens": 24}).encode()
        req = urllib.request.Request(self.url + "v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        want = json.loads(urllib.request.urlopen(req, timeout=60).read())["choices"][0]["message"]["content"]
        self.assertEqual(shown, want)
        b.find_element(By.ID, "tab-run").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#charts svg polyline"))
        titles = [h.text for h in b.find_elements(By.CSS_SELECTOR, "#charts .chart h3")]
        self.assertIn("loss", titles)
        points = b.find_element(By.CSS_SELECTOR, "#charts svg polyline").get_attribute("points").split()
        self.assertEqual(len(points), 20)


if __name__ == "__main__":
    unittest.main()
