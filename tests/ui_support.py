"""Fixtures and helpers for the tests that need a live LangFlow server (and headless Chromium).

One LangFlow server per pytest session, started exactly like ``make ui`` does (``scripts/ui.sh``),
on a free port of 127.0.0.1, with a private ``OVERLAY_HOME`` that holds a copy of the FOLDOC subset
built by ``tests/conftest.py::foldoc_home``. Starting takes ~50-100 s on 2 cores, so the server is a
process-wide singleton: every test module that imports the ``langflow_server`` fixture shares it,
and it is stopped (its whole process group) when the session ends.

The server is started with ``LANGFLOW_COMPONENTS_PATH=""``, so the Overlay components reach it
through ``--components-path`` only: every test that sees an Overlay node on this server is also a
test of the CLI flag (the environment variable is tested separately, see
``tests/test_langflow_failures.py``).

In a git worktree without its own ``.venv``, set ``OVERLAY_VENV`` to the environment LangFlow runs from (e.g. the
main checkout's ``.venv``); the server still loads this checkout's components, flows and ``overlay_core`` (its
``PYTHONPATH`` comes first).

Browser: Debian's ``chromium`` + ``chromium-driver`` (``apt-get install -y chromium chromium-driver``),
driven by Selenium with the system chromedriver; nothing is downloaded. Screenshots and the server log
go to ``artifacts/ui/`` (gitignored).

Usage in a test module::

    from ui_support import browser, langflow_server  # noqa: F401  (pytest fixtures)
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
COMPONENTS = ROOT / "components" / "overlay"
ARTIFACTS = ROOT / "artifacts" / "ui"
BIN = Path(sys.executable).parent
CHROMIUM = Path(os.environ.get("OVERLAY_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("OVERLAY_CHROMEDRIVER", "/usr/bin/chromedriver"))

#: Seconds to wait for ``/health`` after starting the server (observed: 50-100 s on 2 busy cores).
SERVER_START_TIMEOUT = float(os.environ.get("OVERLAY_UI_START_TIMEOUT", "300"))
#: Seconds one answer may take (model load on the first run + the answer: 5-40 s observed).
ANSWER_TIMEOUT = 180.0

#: Environment for every LangFlow / lfx process we start: offline, no telemetry.
QUIET_ENV = {"DO_NOT_TRACK": "true", "LANGFLOW_DO_NOT_TRACK": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


# ---------------------------------------------------------------------------------------------------------------
# What the repository says should be there (read from the files, not from LangFlow)
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComponentSpec:
    """The class attributes of one Overlay component file, read with ``ast`` (no import)."""

    file: Path
    class_name: str
    name: str
    display_name: str
    icon: str


def expected_components() -> list[ComponentSpec]:
    """One :class:`ComponentSpec` per ``components/overlay/*.py`` (the first class of each file)."""
    out = []
    for path in sorted(COMPONENTS.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text())
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
        attrs = {}
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        attrs[target.id] = stmt.value.value
        out.append(ComponentSpec(path, cls.name, attrs.get("name", cls.name), attrs["display_name"], attrs["icon"]))
    return out


def flow_files() -> list[Path]:
    """The saved flows LangFlow loads at startup (top-level ``flows/*.json``)."""
    return sorted(FLOWS.glob("*.json"))


def load_flow(path: Path) -> dict:
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def stop_process_group(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM the process group we created for ``proc`` (start_new_session=True), SIGKILL it if it lingers."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # children left behind by a dead leader
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def wait_http_ok(url: str, proc: subprocess.Popen, log: Path, timeout: float, what: str) -> float:
    """Poll ``url`` until HTTP 200; fail with the log tail if ``proc`` exits or ``timeout`` passes. Returns seconds."""
    import httpx

    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with code {proc.returncode} before {url} answered; log {log}:\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code == 200:
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{what}: {url} did not answer within {timeout:.0f} s; log {log}:\n{_tail(log)}")
        time.sleep(1.0)


# ---------------------------------------------------------------------------------------------------------------
# The LangFlow server (scripts/ui.sh)
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class LangflowServer:
    """A running ``scripts/ui.sh`` server. ``run()`` calls ``POST /api/v1/run/<flow>``."""

    url: str
    port: int
    home: Path
    log: Path
    proc: subprocess.Popen
    env: dict[str, str]
    startup_s: float = 0.0
    flows: dict[str, str] = field(default_factory=dict)  # flow file stem -> flow id

    def get(self, path: str, **kw) -> Any:
        import httpx

        return httpx.get(self.url + path, timeout=kw.pop("timeout", 120), **kw)

    def post(self, path: str, **kw) -> Any:
        import httpx

        return httpx.post(self.url + path, timeout=kw.pop("timeout", ANSWER_TIMEOUT), **kw)

    def patch(self, path: str, **kw) -> Any:
        import httpx

        return httpx.patch(self.url + path, timeout=kw.pop("timeout", 60), **kw)

    def delete(self, path: str, **kw) -> Any:
        import httpx

        return httpx.delete(self.url + path, timeout=kw.pop("timeout", 60), **kw)

    def run(self, flow: str, input_value: str, tweaks: dict | None = None, **extra) -> Any:
        """``POST /api/v1/run/<flow id or endpoint name>`` (chat in, chat out); returns the httpx response."""
        body = {"input_value": input_value, "input_type": "chat", "output_type": "chat", **extra}
        if tweaks is not None:
            body["tweaks"] = tweaks
        return self.post(f"/api/v1/run/{flow}", json=body)

    def alive(self) -> bool:
        import httpx

        try:
            return self.proc.poll() is None and self.get("/health", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False


def chat_text(resp_json: dict) -> str:
    """The Chat Output text of a ``/api/v1/run`` response."""
    return resp_json["outputs"][0]["outputs"][0]["results"]["message"]["text"]


_SERVER: LangflowServer | None = None
_SERVER_LOCK = threading.Lock()


def _start_server(foldoc_home: Path, tmp_root: Path) -> LangflowServer:
    home = tmp_root / "overlay-home"
    shutil.copytree(foldoc_home, home)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "langflow-server.log"
    port = free_port()
    env = dict(os.environ, **QUIET_ENV, OVERLAY_HOME=str(home), LANGFLOW_COMPONENTS_PATH="")
    env.pop("LANGFLOW_DATABASE_URL", None)
    with log.open("w") as fh:
        proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "ui.sh"), str(port)], cwd=ROOT, env=env,
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    server = LangflowServer(url=f"http://127.0.0.1:{port}", port=port, home=home, log=log, proc=proc, env=env)
    try:
        server.startup_s = wait_http_ok(server.url + "/health", proc, log, SERVER_START_TIMEOUT, "LangFlow (scripts/ui.sh)")
        # LANGFLOW_LOAD_FLOWS_PATH upserts every flow by id; wait until all of them are listed.
        want = {p.stem: load_flow(p)["id"] for p in flow_files()}
        deadline = time.monotonic() + 120
        while True:
            listed = {f["id"] for f in server.get("/api/v1/flows/", params={"header_flows": "true"}).json()}
            if set(want.values()) <= listed:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"flows not loaded from {FLOWS}: missing {set(want.values()) - listed}; log:\n{_tail(log)}")
            time.sleep(2)
        server.flows = want
        server.startup_s = round(server.startup_s, 1)
        print(f"\n[ui_support] LangFlow ready at {server.url} in {server.startup_s} s (log {log})", file=sys.stderr)
    except BaseException:
        stop_process_group(proc)
        raise
    return server


def _stop_server() -> None:
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is not None:
            stop_process_group(_SERVER.proc)
            _SERVER = None


atexit.register(_stop_server)  # also when the session ends without fixture teardown (e.g. a second Ctrl-C)


@pytest.fixture(scope="session")
def langflow_server(foldoc_home, tmp_path_factory) -> LangflowServer:
    """The session's LangFlow server (started once, shared by every module that imports this fixture)."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None or _SERVER.proc.poll() is not None:
            _SERVER = _start_server(foldoc_home, tmp_path_factory.mktemp("langflow-ui"))
        server = _SERVER
    yield server
    _stop_server()


# ---------------------------------------------------------------------------------------------------------------
# lfx serve
# ---------------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def lfx_serve(flow: Path, home: Path, api_key: str, log: Path):
    """Run ``lfx serve <flow>`` with ``LANGFLOW_API_KEY`` on a free port; yields the base URL."""
    port = free_port()
    env = dict(os.environ, **QUIET_ENV, OVERLAY_HOME=str(home), LANGFLOW_API_KEY=api_key)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        proc = subprocess.Popen([str(BIN / "lfx"), "serve", str(flow), "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(url + "/health", proc, log, 240, "lfx serve")
        yield url
    finally:
        stop_process_group(proc)


# ---------------------------------------------------------------------------------------------------------------
# Headless Chromium
# ---------------------------------------------------------------------------------------------------------------

CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
               "--window-size=1600,1000", "--force-device-scale-factor=1"]


def chromium_missing() -> str | None:
    """None when Debian's chromium and chromedriver are installed, else one line saying what to install."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    return (f"{', '.join(missing)} missing: install Debian's browser with "
            "`apt-get install -y chromium chromium-driver`") if missing else None


def new_browser(profile: Path):
    """A headless Chromium (Selenium + the system chromedriver) with the fresh profile folder ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for a in CHROME_ARGS:
        opts.add_argument(a)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER), log_output=str(ARTIFACTS / "chromedriver.log")),
                              options=opts)
    driver.set_page_load_timeout(120)
    return driver


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A headless Chromium (Selenium + the system chromedriver) with a fresh profile, for the whole session."""
    missing = chromium_missing()
    if missing:
        pytest.fail(f"{missing} (or deselect these tests: -m 'not browser')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):  # the screenshots left must all come from this session
        old.unlink()
    driver = new_browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            (ARTIFACTS / "browser-console.log").write_text(
                "\n".join(f"{e.get('level')} {e.get('message')}" for e in driver.get_log("browser")))
        driver.quit()


def screenshot(driver, name: str) -> Path:
    """Save ``artifacts/ui/<name>.png`` (the evidence of one check) and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def settle(probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float, poll: float = 0.5) -> Any:
    """Call ``probe`` until ``done(value)`` or ``timeout``; return the last value either way (assert on it after).

    For things the UI draws lazily (icons, edges): the caller's assertions then name what is missing."""
    from selenium.common.exceptions import WebDriverException

    t0 = time.monotonic()
    value = None
    while True:
        try:
            value = probe()
            if done(value):
                return value
        except WebDriverException:
            pass
        if time.monotonic() - t0 > timeout:
            return value
        time.sleep(poll)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, driver=None, shot: str | None = None,
             poll: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned); on timeout save a screenshot and fail."""
    from selenium.common.exceptions import WebDriverException

    t0 = time.monotonic()
    last_exc = None
    while time.monotonic() - t0 < timeout:
        try:
            value = predicate()
            if value:
                return value
        except WebDriverException as exc:  # stale elements while React re-renders
            last_exc = exc
        time.sleep(poll)
    where = ""
    if driver is not None:
        where = f"; screenshot {screenshot(driver, (shot or 'timeout') + '-timeout')}"
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{where}"
                + (f"; last error: {str(last_exc).splitlines()[0]}" if last_exc else ""))


# ---------------------------------------------------------------------------------------------------------------
# The Playground (shared by tests/test_ui.py and bench/playground.py)
# ---------------------------------------------------------------------------------------------------------------

#: the test ids of the chat's AI messages (LangFlow writes the message text into the id)
AI_MESSAGES_JS = """return Array.from(document.querySelectorAll('[data-testid^="chat-message-AI-"]'))
                     .map(e => e.getAttribute('data-testid').slice('chat-message-AI-'.length));"""
#: the reply's end (overlay_core.trace.to_compact and to_markdown both end their trace part with it)
ANSWER_DONE = "**Stopped:**"


def open_flow(driver, server, flow_id: str, n_nodes: int, shot: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{server.url}/flow/{flow_id}")
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".react-flow__node")) >= n_nodes, 90,
             f"{n_nodes} nodes drawn on /flow/{flow_id}", driver, shot)


def playground_input(driver, shot: str):
    """The Playground's chat input (the Playground is opened when it is closed)."""
    from selenium.webdriver.common.by import By

    css = '[data-testid="input-chat-playground"]'
    if not [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]:
        driver.find_element(By.CSS_SELECTOR, '[data-testid="playground-btn-flow-io"]').click()
    return wait_for(lambda: [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()], 30,
                    "the Playground input", driver, shot)[0]


def send_in_playground(driver, text: str, marker: str, shot: str, timeout: float = 240) -> str:
    """Send ``text`` in the open flow's Playground; return the first new AI message that contains ``marker``."""
    from selenium.webdriver.common.keys import Keys

    box = playground_input(driver, shot)
    before = len(driver.execute_script(AI_MESSAGES_JS))
    box.click()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    # The AI message appears empty first and is filled when the flow finishes.
    done = wait_for(lambda: [m for m in driver.execute_script(AI_MESSAGES_JS)[before:] if marker in m],
                    timeout, f"the Playground reply to {text!r} (with {marker!r})", driver, shot)
    return done[-1]


def ask_in_playground(driver, question: str, shot: str) -> str:
    """Open the Playground, send ``question``, wait for the new AI message to be complete; return its text."""
    return send_in_playground(driver, question, ANSWER_DONE, shot)


def close_playground(driver) -> None:
    from selenium.webdriver.common.by import By

    for b in driver.find_elements(By.CSS_SELECTOR, '[data-testid="playground-close-button"]'):
        if b.is_displayed():
            b.click()
            return
