"""The judge of r1's code reward: runs a model-written program against its tests inside the sandbox.

Two processes, so that nothing the program does can make a test pass:
- the judge (this file, run as `python3 -I judge.py` with the payload on stdin) holds the tests
  and a per-run random token. It reads both from stdin before anything untrusted starts, makes
  itself non-dumpable (another process of the same user cannot read its memory or open its file
  descriptors through /proc), and runs the tests itself;
- the program runs in a second interpreter (`judge.py --program FILE REQ_FD RESP_FD`), started
  fresh with exec (no copy of the judge's memory), holding neither the tests nor the token nor the
  proof channel. The tests' calls of its functions cross a pipe as JSON: arguments go in, plain
  data (numbers, strings, lists, tuples, dicts, sets, None) comes back and is compared by the
  judge, so an object that says it equals everything, a patched builtin or an early exit of the
  program cannot change a verdict.
After each test the judge writes "TOKEN INDEX VERDICT" to file descriptor 3, which only it has;
the reward counts a test as passed only on that line.
"""
import builtins
import json
import os
import subprocess
import sys
import traceback

MAX_MESSAGE = 64 << 20  # bytes of one reply from the program


# ---- values across the pipe: JSON, with tags for what JSON lacks ----

def encode(value, depth=0):
    """Plain data as JSON. Subclasses of the plain types are reduced to their base value (with the
    base type's own methods, so an overridden __eq__ or __iter__ plays no part); numpy scalars and
    arrays through item()/tolist()."""
    if depth > 200:
        raise ValueError("value nested too deeply")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int or t is float:
        return value
    if isinstance(value, bool):
        return bool.__bool__(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, complex):
        return {"complex": [complex.__complex__(value).real, complex.__complex__(value).imag]}
    if isinstance(value, list):
        return [encode(v, depth + 1) for v in list.__iter__(value)]
    if isinstance(value, tuple):
        return {"tuple": [encode(v, depth + 1) for v in tuple.__iter__(value)]}
    if isinstance(value, dict):
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]}
    if isinstance(value, frozenset):
        return {"frozenset": [encode(v, depth + 1) for v in frozenset.__iter__(value)]}
    if isinstance(value, set):
        return {"set": [encode(v, depth + 1) for v in set.__iter__(value)]}
    module = getattr(t, "__module__", "") or ""
    if module.startswith("numpy") and hasattr(value, "tolist"):
        return encode(value.tolist(), depth + 1)
    raise TypeError(f"a {t.__module__}.{t.__qualname__} is not plain data (numbers, strings, lists, tuples, dicts, "
                    "sets, None) the tests can compare")


def decode(value):
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        (tag, body), = value.items()
        if tag == "tuple":
            return tuple(decode(v) for v in body)
        if tag == "dict":
            return {decode(k): decode(v) for k, v in body}
        if tag == "set":
            return {decode(v) for v in body}
        if tag == "frozenset":
            return frozenset(decode(v) for v in body)
        if tag == "bytes":
            return bytes.fromhex(body)
        if tag == "complex":
            return complex(body[0], body[1])
        raise ValueError(f"unknown tag {tag!r}")
    if value is None or type(value) in (bool, int, float, str):
        return value
    raise ValueError(f"not a value: {type(value).__name__}")


# ---- the program's side (untrusted) ----

def run_program(path, request_fd, reply_fd):
    requests = os.fdopen(request_fd, "rb")
    replies = os.fdopen(reply_fd, "wb")

    def reply(message):
        replies.write(json.dumps(message).encode() + b"\n")
        replies.flush()

    namespace = {"__name__": "__program__", "__builtins__": builtins}
    try:
        with open(path, encoding="utf-8") as f:
            code = compile(f.read(), "program.py", "exec")
        exec(code, namespace)
    except BaseException:  # SystemExit too: the program ended before its functions could be tested
        reply({"loaded": False, "error": traceback.format_exc(limit=5)[-2000:]})
        return
    reply({"loaded": True, "names": [n for n, v in list(namespace.items()) if callable(v) and not n.startswith("__")]})
    for line in requests:
        try:
            call = json.loads(line)
            function = namespace[call["name"]]
            result = function(*decode(call["args"]), **{k: decode(v) for k, v in call["kwargs"].items()})
            message = {"value": encode(result)}
        except BaseException as e:
            message = {"raised": type(e).__name__, "message": str(e)[:1000]}
        reply(message)


# ---- the judge's side (trusted) ----

class ProgramError(Exception):
    """The program raised something the tests cannot meet as itself, or stopped answering."""


def exception_from(name, message):
    # The tests may expect a builtin exception (say ValueError) from the program; anything else,
    # and everything that is not an Exception (SystemExit, KeyboardInterrupt), is a ProgramError.
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and kind.__module__ == "builtins":
        return kind(message)
    return ProgramError(f"{name}: {message}")


class Program:
    """The untrusted program in its own interpreter; calls of its functions go through a pipe."""

    def __init__(self, path):
        req_read, self._req_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-B", os.path.abspath(__file__), "--program", path, str(req_read), str(reply_write)],
            stdin=subprocess.DEVNULL, pass_fds=(req_read, reply_write), close_fds=True)
        os.close(req_read)
        os.close(reply_write)
        self._requests = os.fdopen(self._req_write, "wb")
        self._replies = os.fdopen(self._reply_read, "rb")
        hello = self._read()
        if not hello.get("loaded"):
            raise ProgramError("the program failed before its functions could be called:\n" + str(hello.get("error")))
        self.names = [n for n in hello.get("names", []) if isinstance(n, str)]

    def _read(self):
        line = self._replies.readline(MAX_MESSAGE + 1)
        if not line.endswith(b"\n"):
            raise ProgramError("the program stopped answering (it exited, or its reply was too long)")
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ProgramError("the program's reply is not a message")
        return message

    def call(self, name, args, kwargs):
        try:
            self._requests.write(json.dumps({"name": name, "args": encode(list(args)),
                                             "kwargs": {k: encode(v) for k, v in kwargs.items()}}).encode() + b"\n")
            self._requests.flush()
        except BrokenPipeError:
            raise ProgramError("the program exited") from None
        reply = self._read()
        if "value" in reply:
            return decode(reply["value"])
        raise exception_from(str(reply.get("raised")), str(reply.get("message")))

    def function(self, name):
        def call(*args, **kwargs):
            return self.call(name, args, kwargs)
        call.__name__ = name
        return call

    def stop(self):
        self._process.kill()
        self._process.wait()


def make_undumpable():
    # PR_SET_DUMPABLE 0: /proc/<judge>/mem and /proc/<judge>/fd/* become root's, so the program
    # (same user) can neither read the token nor write to the proof channel through them.
    import ctypes
    if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def verdict_of(error):
    return "failed" if isinstance(error, AssertionError) else "error"


def judge():
    payload = json.loads(sys.stdin.buffer.read())
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    make_undumpable()
    os.set_inheritable(3, False)
    proof = os.fdopen(3, "w")
    token = payload["token"]

    def prove(index, verdict):
        proof.write(f"{token} {index} {verdict}\n")
        proof.flush()

    program = Program(payload["program_file"])
    tests = {"__name__": "__tests__", "__builtins__": builtins}
    if payload["mode"] == "humaneval":
        # The problem's own prompt (helpers such as encode_cyclic) and test, then check(candidate).
        # The prompt's stub of the entry point is the program's function too (some tests call it by name).
        exec(compile(payload.get("prompt", ""), "prompt.py", "exec"), tests)
        candidate = program.function(payload["entry_point"])
        tests[payload["entry_point"]] = candidate
        exec(compile(payload["test"], "test.py", "exec"), tests)
        try:
            tests["check"](candidate)
            prove(0, "passed")
        except Exception as e:
            traceback.print_exc()
            prove(0, verdict_of(e))
    else:
        # A list of assert statements (MBPP style): each is one test; the program's functions are
        # called by name, except names the setup defines and builtins (a program cannot replace abs).
        exec(compile(payload.get("setup", ""), "setup.py", "exec"), tests)
        for name in program.names:
            if name not in tests and not hasattr(builtins, name):
                tests[name] = program.function(name)
        for index, statement in enumerate(payload["tests"]):
            try:
                exec(compile(statement, f"test_{index}.py", "exec"), tests)
                prove(index, "passed")
            except Exception as e:
                print(f"test {index}: {statement[:200]}", file=sys.stderr)
                traceback.print_exc()
                prove(index, verdict_of(e))
    program.stop()


if __name__ == "__main__":
    sys.set_int_max_str_digits(0)
    if len(sys.argv) == 5 and sys.argv[1] == "--program":
        run_program(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        judge()
