"""r1 serve over real HTTP: the OpenAI endpoints (JSON and server-sent-event streams), the same
tokens as r1 generate, request validation with 4xx error objects while the server stays up,
concurrent streaming clients, a disconnecting client freeing its slot, the concurrency limit, the
API key and the official `openai` client naming any model; all of it again on a DeepSeek-V3 model
decoding speculatively with its MTP module."""
import http.client
import json
import os
import socket
import subprocess
import threading
import time
import unittest

from r1test import make_question_model, R1, TempDirCase, r1


class Serve(TempDirCase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.case = TempDirCase()
        cls.case.setUp()
        tmp = cls.case.tmp
        cls.model = make_question_model(tmp, 300, 320, "<|eos|>,<|im_start|>,<|im_end|>", 4096, 3)
        cls.proc, cls.port = cls.start_server(["--max-body-bytes", "4000", "--max-concurrent", "12"])

    @classmethod
    def start_server(cls, extra):
        proc = subprocess.Popen([R1, "serve", "--model", cls.model, "--chat-template", "chatml", "--port", "0",
                                 "--threads", "1", "--max-batch", "8", "--max-tokens", "4000", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if "http://" not in line:
            raise AssertionError("server did not start: " + line + proc.stderr.read())
        port = int(line.split("http://")[1].split("/")[0].split(":")[1])
        return proc, port

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=30)
        cls.case.tearDown()

    def request(self, method, path, body=None, port=None, headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=120)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        res = conn.getresponse()
        text = res.read().decode()
        conn.close()
        return res.status, text

    def post(self, path, body, **kw):
        status, text = self.request("POST", path, body, **kw)
        return status, json.loads(text) if text else None

    def stream(self, path, body):
        """Yields the parsed data events of an SSE response."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("POST", path, body=json.dumps({**body, "stream": True}),
                     headers={"Content-Type": "application/json"})
        res = conn.getresponse()
        self.assertEqual(res.status, 200)
        self.assertTrue(res.getheader("Content-Type").startswith("text/event-stream"))
        events = []
        for raw in res.read().decode().split("\n\n"):
            if raw.strip():
                self.assertTrue(raw.startswith("data: "), raw)
                events.append(raw[6:])
        conn.close()
        self.assertEqual(events[-1], "[DONE]")
        return [json.loads(e) for e in events[:-1]]

    def test_health_and_models(self):
        status, text = self.request("GET", "/health")
        self.assertEqual((status, json.loads(text)["status"]), (200, "ok"))
        status, text = self.request("GET", "/v1/models")
        model = json.loads(text)["data"][0]
        self.assertEqual(model["id"], os.path.basename(self.model))  # named after the model directory
        self.assertTrue(model["meta"]["accepts_any_model_name"])

    def test_official_openai_client_with_any_model_name(self):
        """The `openai` package, naming the model it thinks it talks to, as clients do."""
        from openai import OpenAI
        client = OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key="unused", max_retries=0)
        self.assertEqual([m.id for m in client.models.list()], [os.path.basename(self.model)])
        chat = client.chat.completions.create(model="SmolLM2-135M-Instruct", temperature=0, max_tokens=8,
                                              messages=[{"role": "user", "content": "what is 3 plus 4?"}])
        self.assertEqual(chat.model, os.path.basename(self.model))
        self.assertEqual(chat.choices[0].message.role, "assistant")
        self.assertLessEqual(chat.usage.completion_tokens, 8)
        text = client.completions.create(model="gpt-4", prompt="question 4: what", max_tokens=12, temperature=0)
        cli = json.loads(r1("generate", "--model", self.model, "--prompt", "question 4: what", "--max-new-tokens", 12,
                            "--temperature", 0, "--threads", 1).stdout)
        self.assertEqual(text.choices[0].text, cli["text"])
        streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="x", temperature=0, max_tokens=8, stream=True, messages=[{"role": "user", "content": "hi"}]))
        self.assertEqual(streamed, client.chat.completions.create(
            model="x", temperature=0, max_tokens=8, messages=[{"role": "user", "content": "hi"}]).choices[0].message.content)

    def test_completion_equals_r1_generate(self):
        status, out = self.post("/v1/completions", {"prompt": "question 4: what", "max_tokens": 12, "temperature": 0,
                                                    "logprobs": 1})
        self.assertEqual(status, 200, out)
        cli = json.loads(r1("generate", "--model", self.model, "--prompt", "question 4: what", "--max-new-tokens", 12,
                            "--temperature", 0, "--threads", 1).stdout)
        choice = out["choices"][0]
        self.assertEqual(choice["text"], cli["text"])
        for a, b in zip(choice["logprobs"]["token_logprobs"], cli["logprobs"]):
            self.assertAlmostEqual(a, b, delta=1e-4)
        self.assertEqual(out["usage"]["completion_tokens"], len(cli["ids"]))
        self.assertEqual(out["object"], "text_completion")

    def test_chat_n_seed_and_stream_agree(self):
        body = {"messages": [{"role": "user", "content": "what is 3 plus 4?"}], "max_tokens": 20, "n": 3, "seed": 9,
                "temperature": 0.8}
        status, out = self.post("/v1/chat/completions", body)
        self.assertEqual(status, 200, out)
        self.assertEqual([c["index"] for c in out["choices"]], [0, 1, 2])
        texts = [c["message"]["content"] for c in out["choices"]]
        self.assertTrue(all(c["message"]["role"] == "assistant" for c in out["choices"]))
        self.assertEqual(self.post("/v1/chat/completions", body)[1]["choices"][0]["message"]["content"], texts[0])
        events = self.stream("/v1/chat/completions", body)
        streamed = ["", "", ""]
        finished = [None, None, None]
        for e in events:
            self.assertEqual(e["object"], "chat.completion.chunk")
            for c in e["choices"]:
                streamed[c["index"]] += c["delta"].get("content", "")
                finished[c["index"]] = c["finish_reason"] or finished[c["index"]]
        self.assertEqual(streamed, texts)  # same seed, same samples, streamed or not
        self.assertTrue(all(f in ("stop", "length") for f in finished))

    def test_completion_stream_with_stop_and_usage(self):
        status, whole = self.post("/v1/completions", {"prompt": "question 1:", "max_tokens": 30, "temperature": 0})
        text = whole["choices"][0]["text"]
        stop = text[5:8]
        body = {"prompt": "question 1:", "max_tokens": 30, "temperature": 0, "stop": [stop],
                "stream_options": {"include_usage": True}}
        events = self.stream("/v1/completions", body)
        streamed = "".join(c["text"] for e in events for c in e["choices"])
        self.assertEqual(streamed, text[:text.find(stop)])
        self.assertIn("usage", events[-1])

    def test_bad_requests_get_4xx_error_objects_and_the_server_stays_up(self):
        cases = [
            (None, "{not json", 400, None),
            ({"prompt": 5}, None, 400, "prompt"),
            ({"prompt": "x", "max_tokens": -1}, None, 400, "max_tokens"),
            ({"prompt": "x", "max_tokens": "ten"}, None, 400, "max_tokens"),
            ({"prompt": "x", "temperature": "hot"}, None, 400, "temperature"),
            ({"prompt": "x", "n": 0}, None, 400, "n"),
            ({"prompt": "x", "stop": [1]}, None, 400, "stop"),
            ({"prompt": "x", "logit_bias": {"99999": 1}}, None, 400, "logit_bias"),
            ({"prompt": "x", "model": 4}, None, 400, "model"),
            ({"prompt": "x" * 5000}, None, 413, None),
        ]
        for body, raw, want, param in cases:
            status, text = self.request("POST", "/v1/completions", body, raw=raw)
            self.assertEqual(status, want, (body, raw, text))
            err = json.loads(text)["error"]
            self.assertTrue(err["message"])
            if param:
                self.assertEqual(err["param"], param)
        status, out = self.post("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]})
        self.assertEqual((status, out["error"]["param"]), (400, "messages"))
        self.assertEqual(self.request("GET", "/health")[0], 200)

    def test_concurrent_streams_all_complete(self):
        results = [None] * 8

        def client(i):
            events = self.stream("/v1/completions", {"prompt": f"question {i}:", "max_tokens": 24, "temperature": 0.7,
                                                     "seed": i})
            results[i] = "".join(c["text"] for e in events for c in e["choices"])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        self.assertTrue(all(r is not None for r in results), results)
        # Each equals the same request made alone (batching does not change a seeded sample).
        status, alone = self.post("/v1/completions", {"prompt": "question 3:", "max_tokens": 24, "temperature": 0.7,
                                                      "seed": 3})
        self.assertEqual(results[3], alone["choices"][0]["text"])

    def read_until_data(self, sock):
        got = b""
        sock.settimeout(60)
        while b"data: " not in got:
            chunk = sock.recv(4096)
            self.assertTrue(chunk, "the server closed the stream")
            got += chunk

    def wait_idle(self, port=None):
        deadline = time.time() + 30
        while time.time() < deadline:
            health = json.loads(self.request("GET", "/health", port=port)[1])
            if health["active"] == 0 and health["waiting"] == 0 and health["in_flight"] == 0:
                return health
            time.sleep(0.1)
        self.fail(f"the server did not free its slots: {health}")

    def test_disconnecting_client_frees_its_slot(self):
        sock = socket.create_connection(("127.0.0.1", self.port))
        body = json.dumps({"prompt": "question", "max_tokens": 3900, "ignore_eos": True, "stream": True})
        sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        self.read_until_data(sock)
        health = json.loads(self.request("GET", "/health")[1])
        self.assertEqual(health["active"], 1)
        sock.close()
        self.wait_idle()

    def test_concurrency_limit_and_api_key(self):
        proc, port = self.start_server(["--max-concurrent", "1", "--api-key", "sekrit"])
        try:
            status, out = self.post("/v1/completions", {"prompt": "x", "max_tokens": 2}, port=port)
            self.assertEqual((status, out["error"]["type"]), (401, "authentication_error"))
            auth = {"Authorization": "Bearer sekrit"}
            sock = socket.create_connection(("127.0.0.1", port))
            body = json.dumps({"prompt": "question", "max_tokens": 3900, "ignore_eos": True, "stream": True})
            sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
            self.read_until_data(sock)
            status, out = self.post("/v1/completions", {"prompt": "x", "max_tokens": 2}, port=port, headers=auth)
            self.assertEqual(status, 429, out)
            sock.close()
            self.wait_idle(port)
            status, out = self.post("/v1/completions", {"prompt": "x", "max_tokens": 2}, port=port, headers=auth)
            self.assertEqual(status, 200, out)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


class ServeDeepseek(Serve):
    """The same server on R1's architecture (latent cache, experts) decoding speculatively with its
    MTP module: the output is plain decoding's."""
    @classmethod
    def setUpClass(cls):
        cls.case = TempDirCase()
        cls.case.setUp()
        cls.model = make_question_model(cls.case.tmp, 300, 320, "<|eos|>,<|im_start|>,<|im_end|>", 4096, 3,
                                        deepseek=True)
        cls.proc, cls.port = cls.start_server(["--max-body-bytes", "4000", "--max-concurrent", "12", "--speculative"])


if __name__ == "__main__":
    unittest.main()

