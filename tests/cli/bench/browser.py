"""Open a page in a real headless Chromium (Debian's) and report what a person would see.

Chromium is driven over the DevTools protocol (a websocket, with aiohttp): the page is
loaded from disk, then the test reads its title, its tables, whether every image
decoded, every console error or uncaught exception, and every URL the page requested.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium reaches for Google's services, which this network refuses.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0")  # fmt: skip
PAGE_FACTS = """JSON.stringify({
  title: document.title,
  headings: [...document.querySelectorAll("h1, h2")].map(h => h.textContent),
  tables: document.querySelectorAll("table").length,
  images: [...document.images].map(i => ({alt: i.alt, complete: i.complete,
                                          width: i.naturalWidth, height: i.naturalHeight})),
  text: document.body.innerText.length,
})"""


@dataclass
class PageReport:
    title: str
    headings: list[str]
    tables: int
    images: list[dict]
    text: int
    errors: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)


def open_page(path: Path, timeout_s: float = 60.0) -> PageReport:
    profile = Path(tempfile.mkdtemp(prefix="bench-chromium-"))
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not port_file.exists() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit code {process.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        return asyncio.run(asyncio.wait_for(_inspect(port, path.resolve().as_uri()), timeout_s))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def _inspect(port: int, url: str) -> PageReport:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
            targets = await reply.json()
        page = next(target for target in targets if target["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as socket:
            ids = itertools.count(1)
            errors: list[str] = []
            requested: list[str] = []
            replies: dict[int, dict] = {}
            loaded = asyncio.Event()

            async def listen() -> None:
                async for message in socket:
                    event = json.loads(message.data)
                    method, params = event.get("method"), event.get("params", {})
                    if "id" in event:
                        replies[event["id"]] = event
                    elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
                        errors.append(" ".join(str(a.get("value")) for a in params["args"]))
                    elif method == "Runtime.exceptionThrown":
                        errors.append(params["exceptionDetails"].get("text", "exception"))
                    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                        errors.append(params["entry"]["text"])
                    elif method == "Network.requestWillBeSent":
                        requested.append(params["request"]["url"][:60])
                    elif method == "Page.loadEventFired":
                        loaded.set()

            async def call(method: str, **params: object) -> dict:
                number = next(ids)
                await socket.send_json({"id": number, "method": method, "params": params})
                while number not in replies:
                    await asyncio.sleep(0.01)
                return replies.pop(number)

            listener = asyncio.create_task(listen())
            for domain in ("Runtime", "Log", "Network", "Page"):
                await call(f"{domain}.enable")
            await call("Page.navigate", url=url)
            await loaded.wait()
            await asyncio.sleep(0.5)  # images decode and late errors arrive after load
            facts = await call("Runtime.evaluate", expression=PAGE_FACTS, returnByValue=True)
            listener.cancel()
    return PageReport(**json.loads(facts["result"]["result"]["value"]), errors=errors,
                      requested=requested)  # fmt: skip
