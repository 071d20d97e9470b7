"""make bench (rewards part): math checks per second and latency on MATH-500 answer pairs and
their mutations, r1 (r1_bench_rewards) beside math-verify on the same pairs in the same run; and
HumanEval canonical solutions per second in the sandbox; and the math checker's bounds under
random and adversarial LaTeX (max and p99 time, kills at the time limit, worker failures, peak
memory). Usage: run_rewards.py BUILD_DIR [DATA_DIR (default BUILD_DIR/data)]"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from machine import describe  # noqa: E402
from math_pairs import pairs  # noqa: E402


def bench_json(build, *args):
    """One r1_bench_rewards measurement: its JSON line."""
    return json.loads(subprocess.run([os.path.join(build, "bench", "r1_bench_rewards"), *args],
                                     capture_output=True, text=True, check=True).stdout)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    data = sys.argv[2] if len(sys.argv) > 2 else os.path.join(build, "data")
    from math_verify import parse, verify
    items = [(a, ref) for a, ref, _, _ in pairs(data)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pairs.jsonl")
        with open(path, "w") as f:
            for a, ref in items:
                f.write(json.dumps({"answer": a, "reference": ref}) + "\n")
        ours = bench_json(build, "math", "--pairs", path)
    latencies = []
    t0 = time.perf_counter()
    for a, ref in items:
        s = time.perf_counter()
        try:
            verify(parse("$" + ref + "$"), parse("$" + a + "$"))
        except Exception:  # noqa: BLE001
            pass
        latencies.append(time.perf_counter() - s)
    theirs = len(items) / (time.perf_counter() - t0)
    latencies.sort()
    print(f"Machine: {describe()}")
    print(f"\n## Math checks ({len(items)} MATH-500 pairs and mutations, one thread)\n")
    print("| checker | checks/s | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    print(f"| r1 (math_equal) | {ours['checks_per_s']:.0f} | {ours['p50_ms']:.3f} | {ours['p99_ms']:.3f} | {ours['max_ms']:.1f} |")
    print(f"| math-verify 0.9.0 | {theirs:.0f} | {1000 * latencies[len(latencies) // 2]:.3f} | "
          f"{1000 * latencies[len(latencies) * 99 // 100]:.3f} | {1000 * latencies[-1]:.1f} |")
    print(f"\nr1 / math-verify: {ours['checks_per_s'] / theirs:.1f}x")
    fuzz = bench_json(build, "math-fuzz", "--math500", os.path.join(data, "math500", "test.jsonl"))
    print(f"\n## Math checker under hostile input ({fuzz['checks']} checks, seed 1, {fuzz['threads']} threads, "
          f"limits {fuzz['time_limit_ms']:.0f} ms and {fuzz['memory_limit_mb']:.0f} MiB per check)\n")
    print("| input class | checks | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, c in sorted(fuzz["classes"].items()):
        print(f"| {name} | {c['checks']} | {c['p50_ms']:.2f} | {c['p99_ms']:.1f} | {c['max_ms']:.1f} |")
    print(f"| all | {fuzz['checks']} | {fuzz['p50_ms']:.2f} | {fuzz['p99_ms']:.1f} | {fuzz['max_ms']:.1f} |")
    print(f"\nkilled at the time limit: {fuzz['killed_at_time_limit']}; worker failures (out of memory, crash): "
          f"{fuzz['worker_failures']}; over the limit by more than 100 ms (hangs): {fuzz['hangs']}; "
          f"peak worker RSS {fuzz['peak_worker_rss_mb']:.0f} MiB")
    box = bench_json(build, "sandbox", "--humaneval", os.path.join(data, "humaneval", "HumanEval.jsonl.gz"))
    print(f"\n## Sandbox: HumanEval canonical solutions ({box['programs']} programs, "
          f"{'bubblewrap' if box['isolated'] else 'rlimits only'})\n")
    print("| programs/s | passed |")
    print("|---|---|")
    print(f"| {box['programs_per_s']:.1f} | {box['passed']}/{box['programs']} |")


if __name__ == "__main__":
    main()
