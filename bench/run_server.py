"""make bench (server part): r1 serve under load from a bounded client on loopback (Python
threads, streaming /v1/completions): 1, 8 and 32 concurrent clients, each sending requests back
to back. Reports requests/s, time to first token p50/p99, generated tokens/s and errors.
Usage: run_server.py BUILD_DIR"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import describe  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_request(port, prompt, max_tokens):
    """Streams one completion; returns (seconds to the first token, tokens, error or None)."""
    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "stream": True, "ignore_eos": True,
                "stream_options": {"include_usage": True}}
        conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        res = conn.getresponse()
        if res.status != 200:
            return None, 0, f"HTTP {res.status}"
        first, tokens, buffer = None, 0, b""
        while True:
            chunk = res.read1(65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                data = event[6:]
                if data == b"[DONE]":
                    continue
                j = json.loads(data)
                if j.get("usage"):
                    tokens = j["usage"]["completion_tokens"]
                elif first is None and any(c.get("text") for c in j["choices"]):
                    first = time.perf_counter() - t0
        conn.close()
        return first, tokens, None
    except Exception as e:  # noqa: BLE001 - every failure counts as an error
        return None, 0, str(e)


def load(port, clients, per_client, max_tokens):
    results = []
    lock = threading.Lock()

    def client(i):
        for k in range(per_client):
            r = one_request(port, f"question {i * per_client + k}: what is", max_tokens)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    ttft = sorted(r[0] for r in results if r[0] is not None)
    q = lambda p: ttft[min(len(ttft) - 1, int(p * len(ttft)))] if ttft else float("nan")  # noqa: E731
    return {"requests_per_s": len(results) / elapsed, "ttft_p50": q(0.5), "ttft_p99": q(0.99),
            "tokens_per_s": sum(r[1] for r in results) / elapsed, "errors": sum(r[2] is not None for r in results),
            "requests": len(results)}


def main():
    print(f"Machine: {describe()}")
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    r1 = os.path.join(build, "r1")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "tiny")
        subprocess.run([r1, "tokenizer", "train", "--input", os.path.join(ROOT, "README.md"),
                        *[os.path.join(ROOT, "docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")],
                        "--vocab-size", "4096", "--pad-to-multiple", "4096", "--out", os.path.join(tmp, "tok.json")],
                       check=True, capture_output=True)
        subprocess.run([r1, "model", "init", "--preset", "tiny", "--out", model], check=True, capture_output=True)
        os.replace(os.path.join(tmp, "tok.json"), os.path.join(model, "tokenizer.json"))
        server = subprocess.Popen([r1, "serve", "--model", model, "--port", "0", "--max-batch", "32",
                                   "--max-concurrent", "64", "--threads", "1"], stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline().split("http://")[1].split("/")[0].split(":")[1])
        try:
            print("\n## Server under load (tiny, streaming /v1/completions, 64 new tokens each, server on 1 thread)\n")
            print("| clients | requests | requests/s | TTFT p50 ms | TTFT p99 ms | tokens/s | errors |")
            print("|---|---|---|---|---|---|---|")
            for clients in (1, 8, 32):
                r = load(port, clients, max(2, 64 // clients), 64)
                print(f"| {clients} | {r['requests']} | {r['requests_per_s']:.1f} | {1000 * r['ttft_p50']:.0f} | "
                      f"{1000 * r['ttft_p99']:.0f} | {r['tokens_per_s']:.0f} | {r['errors']} |", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
