"""The HTML reports of a real compare and a real hunt, opened in a real headless Chromium.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: no port,
no websocket package): the test sees every console message, every exception and every network
request the page makes. Screenshots land in docs/images/ for the README.
Skipped, with the reason, when Debian's chromium is not installed (``.ci/run`` installs it).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memprobe.render import render
from memprobe.results import read as check_data
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parent.parent
#: Where the screenshots go: a temporary folder, unless docs/make_images.sh asks for the
#: README's pictures (a test run never overwrites tracked files).
IMAGES = Path(os.environ["MEMPROBE_IMAGES_DIR"]) if os.environ.get("MEMPROBE_IMAGES_DIR") else None
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INJECTED = "/<script>document.title='pwned';window.pwned=1</script>"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; "
                                                ".ci/run does it)"),
]


class Browser:
    """Headless Chromium on a DevTools pipe; one page; records console, errors and requests."""

    FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe")

    def __init__(self, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire() -> None:  # in the child: the pipe is fd 3 (commands) and fd 4 (answers)
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [str(CHROMIUM), *self.FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, pass_fds=(3, 4), start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next = 0
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self.session = ""

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    self._answers.setdefault(msg["id"], queue.Queue()).put(msg)
                else:
                    with self._lock:
                        self.events.append(msg)

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send a command (to the page once attached) and wait for its answer."""
        self._next += 1
        ident = self._next
        self._answers.setdefault(ident, queue.Queue())
        msg: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        answer = self._answers[ident].get(timeout=timeout)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def open(self, url: str, width: int = 1280, timeout: float = 30.0) -> None:
        """A fresh page with everything recorded, then ``url`` loaded."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1,
                  mobile=False)
        with self._lock:
            self.events.clear()
        self.call("Page.navigate", url=url)
        wait_until(lambda: self.seen("Page.loadEventFired"), timeout, f"{url} loads")
        # Console messages and requests may come after the load event: wait until the page is quiet.
        wait_until(self._quiet, timeout, f"{url} goes quiet after loading")

    def _quiet(self, for_s: float = 0.3) -> bool:
        """True once no event has arrived for ``for_s`` seconds."""
        with self._lock:
            count = len(self.events)
        time.sleep(for_s)
        with self._lock:
            return len(self.events) == count

    def seen(self, method: str) -> list[dict[str, Any]]:
        """Events of ``method`` on the page so far."""
        with self._lock:
            return [e["params"] for e in self.events if e.get("method") == method]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (the test's, not the report's)."""
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, and error log entries (CSP
        violations, failed loads)."""
        out = [f"console.{e['type']}: {[a.get('value', a.get('description')) for a in e['args']]}"
               for e in self.seen("Runtime.consoleAPICalled") if e["type"] in ("error", "warning", "assert")]
        out += [f"exception: {e['exceptionDetails'].get('text')}" for e in self.seen("Runtime.exceptionThrown")]
        out += [f"log {e['entry']['level']}: {e['entry']['text']}" for e in self.seen("Log.entryAdded")
                if e["entry"]["level"] in ("error", "warning")]
        return out

    def requests(self) -> list[str]:
        """Every URL the page asked for."""
        return [e["request"]["url"] for e in self.seen("Network.requestWillBeSent")]

    def screenshot(self, path: Path, max_height: int = 2200) -> None:
        """A PNG of the page's top ``max_height`` pixels (the whole page when shorter)."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"]
        import base64

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Stop Chromium (its whole process group) and close the pipe."""
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """A headless Chromium with a fresh profile, stopped after the test whatever happens."""
    b = Browser(tmp_path / "profile")
    try:
        yield b
    finally:
        b.close()


def memprobe(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run the memprobe CLI as a user would."""
    return subprocess.run([sys.executable, "-m", "memprobe", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Path]]:
    """A real compare (200 requests, flask and tornado) and a real hunt of the leaky example
    (a leaking route and a clean one), as JSON and as HTML."""
    with tempfile.TemporaryDirectory(prefix="memprobe-html-") as tmp:
        out = Path(tmp)
        done = memprobe("compare", "200", "0.5", "--frameworks", "flask,tornado", "--no-save",
                        "--json", str(out / "compare.json"), "--html", str(out / "compare.html"))
        assert done.returncode == 0, done.stderr
        done = memprobe("hunt", "examples/leaky_flask/app.py:app", "--route", "/history", "--route", "/",
                        "--requests", "300", "--rounds", "3", "--warmup", "100", "--json", str(out / "hunt.json"),
                        "--html", str(out / "hunt.html"))
        assert done.returncode == 1, done.stdout + done.stderr  # /history leaks
        yield {"compare": out / "compare.json", "compare.html": out / "compare.html",
               "hunt": out / "hunt.json", "hunt.html": out / "hunt.html", "dir": out}


def _assert_clean_page(browser: Browser, url: str) -> None:
    assert browser.problems() == []
    assert [u for u in browser.requests() if u != url] == [], "the page fetched something"


def test_compare_report_loads_offline_with_its_plots(browser: Browser, runs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    url = runs["compare.html"].as_uri()
    browser.open(url)
    _assert_clean_page(browser, url)
    assert browser.evaluate("document.title") == "memprobe compare"
    assert browser.evaluate("document.querySelectorAll('svg.plot').length") == 2  # bars, lines
    assert browser.evaluate("Math.min(...[...document.querySelectorAll('svg.plot')]"
                            ".map(s => s.getBoundingClientRect().height))") > 100
    rows = browser.evaluate("[...document.querySelectorAll('tbody tr td:first-child b')].map(b => b.textContent)")
    assert rows == ["flask", "tornado"]
    browser.screenshot((IMAGES or tmp_path) / "report-compare.png")


def test_hunt_report_shows_verdict_series_and_sites(browser: Browser, runs: dict[str, Path],
                                                     tmp_path: Path) -> None:
    url = runs["hunt.html"].as_uri()
    browser.open(url)
    _assert_clean_page(browser, url)
    text = browser.evaluate("document.body.innerText")
    assert "LEAK" in text and "/history" in text
    assert "_history.append(" in text  # the allocating source line is shown
    assert "global _history" in text  # and what holds it
    # bytes/request for all routes, then one series per route
    assert browser.evaluate("document.querySelectorAll('svg.plot').length") == 3
    browser.screenshot((IMAGES or tmp_path) / "report-hunt.png")


def test_a_script_in_a_route_name_does_not_run(browser: Browser, runs: dict[str, Path]) -> None:
    data = json.loads(runs["hunt"].read_text())
    data["routes"][0]["route"] = INJECTED
    data["routes"][0]["sites"][0]["code"] = "<img src=x onerror=\"document.title='pwned';window.pwned=1\">"
    data["target"] = "app.py:--><script>document.title='pwned'</script>"
    page = runs["dir"] / "injected.html"
    page.write_text(render(check_data(data, "injected"), "html"), encoding="utf-8")
    url = page.as_uri()
    browser.open(url)
    # the scripts would have set the title to "pwned"; it is the report's, with them as text
    assert browser.evaluate("document.title") == f"memprobe hunt {data['target']}"
    assert browser.evaluate("window.pwned === undefined")
    assert browser.evaluate("document.scripts.length") == 0
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    assert INJECTED in browser.evaluate("document.body.innerText")  # shown as text
    assert [u for u in browser.requests() if u != url] == []


def test_two_runs_side_by_side_render_in_the_browser(browser: Browser, runs: dict[str, Path]) -> None:
    out = runs["dir"] / "diff.html"
    done = memprobe("report", str(runs["compare"]), str(runs["compare"]), "-o", str(out))
    assert done.returncode == 0, done.stderr
    url = out.as_uri()
    browser.open(url)
    _assert_clean_page(browser, url)
    assert browser.evaluate("document.querySelectorAll('svg.plot').length") == 1
    assert "Nothing changed beyond noise" in browser.evaluate("document.body.innerText")


@pytest.mark.parametrize("kind", ["compare", "hunt"])
def test_report_re_renders_a_saved_run_to_the_same_html(kind: str, runs: dict[str, Path]) -> None:
    out = runs["dir"] / f"again-{kind}.html"
    done = memprobe("report", str(runs[kind]), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == runs[f"{kind}.html"].read_text(encoding="utf-8")


def test_a_server_hunted_worker_by_worker_shows_its_workers_side_by_side(browser: Browser, tmp_path: Path) -> None:
    """The saved JSON of a real gunicorn -w 2 hunt (tests/fixtures/results/hunt_workers.json)."""
    out = tmp_path / "workers.html"
    done = memprobe("report", str(REPO / "tests" / "fixtures" / "results" / "hunt_workers.json"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    url = out.as_uri()
    browser.open(url)
    _assert_clean_page(browser, url)
    # bytes/request, then per route the server's series and its processes' side by side
    assert browser.evaluate("document.querySelectorAll('svg.plot').length") == 5
    assert browser.evaluate("Math.min(...[...document.querySelectorAll('svg.plot')]"
                            ".map(s => s.getBoundingClientRect().height))") > 100
    rows = browser.evaluate("[...document.querySelectorAll('table.workers')[0].querySelectorAll('tbody tr')]"
                            ".map(tr => [...tr.children].map(td => td.innerText.trim()))")
    assert [r[1] for r in rows] == ["master", "worker", "worker"]
    assert all(r[3] == "leak" and "wsgi_leaky.py:11" in r[6] and "your code" in r[6] and "_seen" in r[7]
               for r in rows[1:])
    # every cell on one line where it must: no role or pid broken in two
    assert browser.evaluate("[...document.querySelectorAll('table.workers td:nth-child(2) span')]"
                            ".every(s => s.getClientRects().length === 1)")
    browser.screenshot((IMAGES or tmp_path) / "report-hunt-workers.png")


@pytest.mark.parametrize("name, sentences", [
    ("native", ["allocator retention, not a leak: USS +", "Allocators: the memory is in use, not only resident"]),
    ("bounds", ["grows until 20,000 entries (lru_cache maxsize)", "capped at 1,000 entries (deque maxlen)",
                "stopped at its cap of 1,000 entries"]),
    ("timers", ["timers due in 3,", "released when they fire"]),
    ("holders", ["no Python object holds it: the thread's interpreter state holds its contextvars context",
                 "no Python object holds them: dicts made at explain_holders.py:",
                 "class cherrypy.lib.sessions.RamSession.cache (dict, "]),
])
def test_the_explanations_read_in_the_browser(name: str, sentences: list[str], browser: Browser,
                                              tmp_path: Path) -> None:
    """The saved JSON of real hunts of tests/servers/explain_*.py (tests/test_hunt_explain_render.py)."""
    out = tmp_path / f"{name}.html"
    done = memprobe("report", str(REPO / "tests" / "fixtures" / "results" / f"hunt_explain_{name}.json"),
                    "-o", str(out))
    assert done.returncode == 0, done.stderr
    url = out.as_uri()
    browser.open(url)
    _assert_clean_page(browser, url)
    text = browser.evaluate("document.body.innerText")
    for sentence in sentences:
        assert sentence in text, sentence
