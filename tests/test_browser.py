"""The book as readers see it: every page of the rendered book opened in headless Chromium.

The book is built with the project's builder (chapters reused from the cache when up to date),
served from a localhost HTTP server, and opened in Chromium with every host name resolving to
nothing, so a page that needs the network shows it. Chromium is driven over the Chrome DevTools
protocol on ``--remote-debugging-pipe`` (file descriptors 3 and 4), so no driver is downloaded.
Each page must load without errors or outside requests, every image must decode, every internal
link must reach an existing page and anchor, and MathJax must typeset the DvD equation on the
landing page. Screenshots go to ``<build folder>/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import html.parser
import json
import os
import re
import select
import shutil
import subprocess
import threading
import time
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dvdlib.book import build as book
from dvdlib.paths import build_dir

REPO_ROOT = Path(__file__).resolve().parents[1]

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
INSTALL_HINT = ("install Debian's chromium (as root: apt-get install -y --no-install-recommends "
                "chromium; bash scripts/setup does this when it can)")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio",
         # The network is off: every host name fails to resolve. The book is served by IP.
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
PAGE_TIMEOUT = 60  # seconds for one page to load and typeset
SCREEN = (1280, 900)
MAX_SCREENSHOT_HEIGHT = 6000

pytestmark = pytest.mark.slow


def find_browser() -> str | None:
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _above_nine(descriptor: int) -> int:
    moved = fcntl.fcntl(descriptor, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(descriptor)
    return moved


class DevToolsError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium and a blocking DevTools client over its debugging pipe."""

    def __init__(self, executable: str, profile: Path):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # bash (dash reads one-digit descriptors only) moves the pipe ends to descriptors 3
        # and 4, where Chromium expects them; they start above 9 so that neither move
        # overwrites the other end.
        to_browser_read, from_browser_write = (_above_nine(to_browser_read),
                                               _above_nine(from_browser_write))
        script = f'exec 3<&{to_browser_read} 4>&{from_browser_write}; exec "$@"'
        self.process = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", script, "bash", executable, *FLAGS,
             f"--user-data-dir={profile}",
             f"--window-size={SCREEN[0]},{SCREEN[1]}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(to_browser_read, from_browser_write),
            stdout=subprocess.DEVNULL, stderr=open(profile / "chromium.log", "wb"),
        )
        self.log = profile / "chromium.log"
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (DevToolsError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DevToolsError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise DevToolsError("Chromium closed the debugging pipe (did it crash?)")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = PAGE_TIMEOUT) -> dict:
        self._next_id += 1
        request = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(request).encode() + b"\0")
        except BrokenPipeError:
            raise DevToolsError(f"Chromium exited ({self.process.poll()}); its log ends:\n"
                                + self.log.read_text(errors="replace")[-3000:]) from None
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str, session: str, timeout: float = PAGE_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self.events):
                if message["method"] == event and message.get("sessionId") == session:
                    return self.events.pop(index)
            message = self._read_message(deadline)
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str, session: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise DevToolsError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")


# Runs in each page once it has loaded: waits for MathJax and every image, then reports.
PAGE_REPORT = """
(async () => {
  if (window.MathJax && window.MathJax.Hub) {
    await new Promise(done => window.MathJax.Hub.Queue(done));
  }
  await Promise.all(Array.from(document.images).map(img => {
    img.loading = "eager";
    return img.decode().catch(() => null);
  }));
  await document.fonts.ready;
  const displayMath = Array.from(document.querySelectorAll('script[type^="math/tex"]'))
    .filter(s => s.type.includes("mode=display")).map(s => {
      const shown = s.previousElementSibling;
      return {tex: s.textContent,
              rendered: !!shown && /MathJax/.test(shown.className) &&
                        shown.getBoundingClientRect().width > 0};
    });
  return {
    url: location.href,
    title: document.title,
    text: document.body.innerText,
    images: Array.from(document.images).map(img => ({
      src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0,
      inContent: !!img.closest("main, article, .bd-article")})),
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
    displayMath: displayMath,
    mathErrors: document.querySelectorAll(".MathJax_Error, .merror").length +
                (document.body.innerText.includes("Math Processing Error") ? 1 : 0),
    rawDisplayTex: document.body.innerText.includes("\\\\mathrm{DvD}"),
    height: Math.ceil(document.documentElement.scrollHeight),
  };
})()
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test reports what matters
        pass


class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.anchors: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.anchors.add(value)


@functools.lru_cache(maxsize=None)
def anchors_of(page: Path) -> frozenset[str]:
    parser = _Anchors()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.anchors)


def book_pages(html_root: Path) -> list[Path]:
    """Every HTML page of the book (not the theme's files under _static and friends)."""
    return sorted(p for p in html_root.rglob("*.html")
                  if not p.relative_to(html_root).parts[0].startswith("_"))


@pytest.fixture(scope="module")
def rendered_book(tmp_path_factory) -> Path:
    """The book's HTML, built now by the project's builder with each chapter's smoke parameters."""
    if find_browser() is None:
        pytest.skip(f"no Chromium found: {INSTALL_HINT}")
    # A smoke build in its own folder: quick, and never overwrites the reader's book. One chapter
    # at a time: scripts/test runs the smoke chapters under nbval beside this process already.
    return book.build_book(REPO_ROOT, log=lambda line: None, smoke=True, jobs=1,
                           out=tmp_path_factory.mktemp("book") / "_build")


@pytest.fixture(scope="module")
def server(rendered_book):
    handler = functools.partial(_QuietHandler, directory=str(rendered_book))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(find_browser(), tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


def redirect_target(page: Path) -> str | None:
    """Where a redirect-only page (``<meta http-equiv="Refresh" ... url=...>``) sends the reader."""
    text = page.read_text(encoding="utf-8", errors="replace")
    match = re.search(r'http-equiv="Refresh"\s+content="\d+;\s*url=([^"]+)"', text, re.IGNORECASE)
    return match.group(1) if match else None


def open_page(chromium: Chromium, url: str, screenshot: Path, redirects: bool = False) -> dict:
    """Load ``url`` in a fresh tab; returns the page report plus its requests and errors.

    With ``redirects`` the page is expected to send the browser on to another page, and the
    report is about that page.
    """
    target = chromium.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = chromium.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Runtime", "Network"):
            chromium.call(f"{domain}.enable", session=session)
        chromium.call("Emulation.setDeviceMetricsOverride",
                      {"width": SCREEN[0], "height": SCREEN[1], "deviceScaleFactor": 1,
                       "mobile": False}, session)
        navigation = chromium.call("Page.navigate", {"url": url}, session)
        if navigation.get("errorText"):
            raise DevToolsError(f"{url}: {navigation['errorText']}")
        chromium.wait_for("Page.loadEventFired", session)
        if redirects:
            chromium.wait_for("Page.loadEventFired", session)
        report = chromium.evaluate(PAGE_REPORT, session)

        # The whole page (up to a limit) in one picture: make the window as tall as the page.
        height = min(max(report["height"], SCREEN[1]), MAX_SCREENSHOT_HEIGHT)
        chromium.call("Emulation.setDeviceMetricsOverride",
                      {"width": SCREEN[0], "height": height, "deviceScaleFactor": 1,
                       "mobile": False}, session)
        chromium.evaluate("new Promise(done => requestAnimationFrame(() => "
                          "requestAnimationFrame(done)))", session)
        shot = chromium.call("Page.captureScreenshot", {"format": "png"}, session)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))

        mine = [e for e in chromium.events if e.get("sessionId") == session]
        chromium.events[:] = [e for e in chromium.events if e.get("sessionId") != session]
        urls = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in mine
                if e["method"] == "Network.requestWillBeSent"}
        # Made by the browser or by scripts for themselves, not content of the book: the
        # favicon Chromium asks every site for, and about:blank frames (MathJax makes one).
        own = {request for request, url in urls.items()
               if url.startswith("about:") or url.endswith("/favicon.ico")}
        report["requests"] = [url for request, url in urls.items() if request not in own]
        report["failed"] = [(urls.get(e["params"]["requestId"], "?"), e["params"]["errorText"])
                            for e in mine if e["method"] == "Network.loadingFailed"
                            and e["params"]["requestId"] not in own
                            and not e["params"].get("canceled")]
        report["bad_status"] = [(e["params"]["response"]["url"], e["params"]["response"]["status"])
                                for e in mine if e["method"] == "Network.responseReceived"
                                and e["params"]["requestId"] not in own
                                and e["params"]["response"]["status"] >= 400]
        report["exceptions"] = [e["params"]["exceptionDetails"].get("text", "") + " " +
                                str(e["params"]["exceptionDetails"].get("exception", {})
                                    .get("description", ""))
                                for e in mine if e["method"] == "Runtime.exceptionThrown"]
        return report
    finally:
        chromium.call("Target.closeTarget", {"targetId": target})


def check_links(report: dict, base: str, html_root: Path) -> list[str]:
    """Internal links of a page whose file or anchor does not exist."""
    broken = []
    for href in sorted(set(report["links"])):
        if not href.startswith(base):
            continue
        parts = urllib.parse.urlsplit(href)
        relative = urllib.parse.unquote(parts.path)[len(urllib.parse.urlsplit(base).path):]
        target = html_root / relative
        if relative == "" or target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{href} (no file {relative or 'index.html'})")
        elif parts.fragment and target.suffix == ".html" and \
                urllib.parse.unquote(parts.fragment) not in anchors_of(target):
            broken.append(f"{href} (no anchor #{parts.fragment})")
    return broken


def test_every_page_loads_offline_with_figures_links_and_math(rendered_book, server, browser):
    html_root = rendered_book
    screenshots = build_dir(REPO_ROOT) / "screenshots"
    pages = book_pages(html_root)
    assert pages, f"no pages under {html_root}"
    problems: dict[str, list[str]] = {}
    reports = {}
    for page in pages:
        relative = page.relative_to(html_root).as_posix()
        target = redirect_target(page)
        report = open_page(browser, server + relative,
                           screenshots / relative.replace("/", "__").replace(".html", ".png"),
                           redirects=target is not None)
        reports[relative] = report
        found = []
        if target is not None and report["url"] != urllib.parse.urljoin(server + relative, target):
            found.append(f"redirects to {target} but the browser is at {report['url']}")
        outside = [u for u in report["requests"] if not u.startswith((server, "data:", "blob:"))]
        found += [f"needs the network: {u}" for u in outside]
        found += [f"failed to load ({error}): {url}" for url, error in report["failed"]]
        found += [f"HTTP {status}: {url}" for url, status in report["bad_status"]]
        found += [f"script error: {text}" for text in report["exceptions"]]
        found += [f"image did not load: {img['src']}" for img in report["images"] if not img["ok"]]
        found += [f"broken link: {link}" for link in check_links(report, server, html_root)]
        if report["mathErrors"]:
            found.append(f"{report['mathErrors']} MathJax errors")
        if not report["title"]:
            found.append("page has no title")
        if found:
            problems[relative] = found
    assert not problems, "pages with problems:\n" + json.dumps(problems, indent=1)

    intro = reports["book/intro.html"]
    dvd = [m for m in intro["displayMath"] if "\\mathrm{DvD}" in m["tex"]]
    assert dvd and all(m["rendered"] for m in dvd), \
        f"the DvD equation on the landing page was not typeset: {intro['displayMath']}"
    assert not intro["rawDisplayTex"], "raw TeX of the DvD equation is visible on the landing page"
    assert "{{" not in intro["text"], "a headline placeholder was left unfilled on the landing page"

    for notebook in book.chapter_notebooks(REPO_ROOT):
        chapter = reports[notebook.with_suffix(".html").as_posix()]
        assert "Rerun this chapter" in chapter["text"], f"{notebook}: no rerun box"
        figures = [img for img in chapter["images"]
                   if img["inContent"] and "_images/" in img["src"]]
        assert figures, f"{notebook}: no figure image on the page"
    reproduction = reports["book/reproduction.html"]["text"]
    assert "dvdbook:" not in reproduction and "Finished (UTC)" in reproduction
