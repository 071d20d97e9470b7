"""Helpers shared by the integration tests: run the r1 binary, make temporary directories."""
import json
import os
import subprocess
import tempfile

R1 = os.environ.get("R1_BIN", "")


def r1(*args, check=True):
    """Runs r1 and returns the CompletedProcess; with check, a failure shows r1's stderr."""
    if not R1 or not os.path.exists(R1):
        raise RuntimeError("R1_BIN must point at the built r1 binary (ctest sets it)")
    proc = subprocess.run([R1, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"r1 {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


class TempDirCase:
    """Mixin: self.tmp is a fresh directory per test."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="r1test_")
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()
