"""Shared by the SDK suites (conformance: cadenya 0.2.0; strict: cadenya 1.0.0). Starts a real
`cadenza serve` (the binary named by CADENZA_BIN) on a free loopback port with a fresh data
directory, and hands tests a client of whichever SDK the suite's venv installed."""

import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ADMIN_TOKEN = "cdz_sk_conformance-admin-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("CADENZA_BIN", "target/debug/cadenza")
    data = tempfile.mkdtemp(prefix="cadenza-sdk-test-")
    port = _free_port()
    env = dict(os.environ)
    env.update(
        CADENZA_LISTEN=f"127.0.0.1:{port}",
        CADENZA_DATA_DIR=data,
        CADENZA_BOOTSTRAP_API_KEY=ADMIN_TOKEN,
        CADENZA_LOG_LEVEL="warn",
    )
    env.pop("CADENZA_DATABASE_URL", None)
    config = os.path.join(data, "cadenza.toml")
    with open(config, "w") as f:
        # A provider whose key variable is unset: its model is listed, marked unusable.
        f.write(
            '[[providers]]\nid = "openai"\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
            'api_key_env = "CADENZA_TEST_UNSET_KEY"\nmodels = [{ id = "gpt-test", family = "gpt", max_input_tokens = 1000 }]\n'
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
