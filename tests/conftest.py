"""Shared by the SDK suites (conformance: cadenya 0.2.0; strict: cadenya 1.0.0). Starts the
test kit's fake model server (the binary named by CADENZA_FAKE_MODEL_BIN) and a real
`cadenza serve` (the binary named by CADENZA_BIN) on free loopback ports with a fresh data
directory, and hands tests a client of whichever SDK the suite's venv installed.

The fake answers as a tool-using model: it calls the tool named FAKE_TOOL until the
conversation holds one tool result, then says "done" (`fake-model --tool-rounds 1 --tool`)."""

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

ADMIN_TOKEN = "cdz_sk_conformance-admin-token-0123456789abcdef"
# The usable model: provider FAKE_PROVIDER (the fake model server) serving FAKE_MODEL.
FAKE_PROVIDER = "fake"
FAKE_MODEL = "fake/gpt-fake"
# The tool (its llmToolName) the fake calls once per objective.
FAKE_TOOL = "lookup"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def fake_model():
    """The `fake-model` binary on a free port; yields its OpenAI base URL."""
    binary = os.environ.get("CADENZA_FAKE_MODEL_BIN", "target/debug/fake-model")
    port = _free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{port}", "--tool-rounds", "1", "--tool", FAKE_TOOL],
        stdout=log,
        stderr=log,
    )
    for _ in range(200):
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"fake-model exited with {proc.returncode}: {log.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("fake-model did not start listening")
    yield f"http://127.0.0.1:{port}/v1"
    proc.send_signal(signal.SIGINT)  # its clean stop
    assert proc.wait(timeout=10) == 0, "fake-model must stop cleanly"
    log.close()


@contextlib.contextmanager
def _serving(handler):
    """`handler` served on a free loopback port in a background thread; yields the base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def tool_endpoint():
    """A tiny HTTP service for HTTP tools to call: every GET answers {"path", "answer": 42}.
    Yields (base URL, the list of paths requested)."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = json.dumps({"path": self.path, "answer": 42}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with _serving(Handler) as base:
        yield base, hits


@pytest.fixture()
def webhook_receiver():
    """A webhook receiver on loopback that answers 200 and keeps every delivery as
    (raw body bytes, headers dict). Yields (URL, the list)."""
    got = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.append((body, {k: v for k, v in self.headers.items()}))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    with _serving(Handler) as base:
        yield f"{base}/hooks", got


def wait_for(predicate, what, timeout=30.0):
    """Polls `predicate` until it holds; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.1)


@pytest.fixture(scope="session")
def server(fake_model):
    binary = os.environ.get("CADENZA_BIN", "target/debug/cadenza")
    data = tempfile.mkdtemp(prefix="cadenza-sdk-test-")
    port = _free_port()
    env = dict(os.environ)
    env.update(
        CADENZA_LISTEN=f"127.0.0.1:{port}",
        CADENZA_DATA_DIR=data,
        CADENZA_BOOTSTRAP_API_KEY=ADMIN_TOKEN,
        CADENZA_LOG_LEVEL="warn",
        CADENZA_TEST_FAKE_KEY="fake-key",
    )
    env.pop("CADENZA_DATABASE_URL", None)
    config = os.path.join(data, "cadenza.toml")
    with open(config, "w") as f:
        # A provider whose key variable is unset: its model is listed, marked unusable.
        f.write(
            '[[providers]]\nid = "openai"\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
            'api_key_env = "CADENZA_TEST_UNSET_KEY"\nmodels = [{ id = "gpt-test", family = "gpt", max_input_tokens = 1000 }]\n'
        )
        # The fake model server: its model is usable, objectives run against it.
        f.write(
            f'\n[[providers]]\nid = "{FAKE_PROVIDER}"\nkind = "openai"\nbase_url = "{fake_model}"\n'
            f'api_key_env = "CADENZA_TEST_FAKE_KEY"\nmodels = [{{ id = "{FAKE_MODEL.split("/", 1)[1]}", family = "gpt", max_input_tokens = 100000 }}]\n'
        )
    env.pop("CADENZA_TEST_UNSET_KEY", None)
    log = open(os.path.join(data, "server.log"), "wb")
    proc = subprocess.Popen([binary, "--config", config, "serve"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("cadenza did not become ready")
    yield {"base": base, "data": data}
    proc.terminate()
    assert proc.wait(timeout=20) == 0, "graceful shutdown must exit 0"


@pytest.fixture()
def admin(server):
    import cadenya

    return cadenya.Cadenya(api_key=ADMIN_TOKEN, base_url=server["base"])
