"""Headless Chromium for the page tests, driven over the DevTools protocol (a tiny stdlib
WebSocket client), so a test sees what a reader would: console errors, failed loads, the
visible text, overflow on a phone-width screen, and the print layout.

Chromium is found on PATH or at ``$ARIO_MLFLOW_CHROMIUM``; missing, it fails the test with
how to install it (never a skip).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

INSTALL_HINT = (
    "headless Chromium is required for the HTML report tests. Install it with "
    "`apt-get update && apt-get install -y chromium fonts-dejavu-core` (Debian/Ubuntu), or "
    "point ARIO_MLFLOW_CHROMIUM at a Chromium/Chrome binary."
)


def find_chromium() -> str:
    """The Chromium binary, or a test failure (never a skip) that says how to install it."""
    configured = os.environ.get("ARIO_MLFLOW_CHROMIUM")
    if configured:
        if Path(configured).is_file() and os.access(configured, os.X_OK):
            return configured
        pytest.fail(f"ARIO_MLFLOW_CHROMIUM={configured} is not an executable; {INSTALL_HINT}")
    for name in ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(INSTALL_HINT)


class WebSocket:
    """Just enough RFC 6455 client for the DevTools protocol on 127.0.0.1."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        assert parts.hostname in ("127.0.0.1", "localhost"), url
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        self.buf = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n", 1)[0], head
        self.buf = bytearray(rest)

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("DevTools socket closed")
        self.buf += chunk

    def pending(self, seconds: float) -> bool:
        """Whether a message starts within ``seconds`` (never splits a frame on timeout)."""
        if self.buf:
            return True
        with selectors.DefaultSelector() as waiting:  # any fd number, unlike select()
            waiting.register(self.sock, selectors.EVENT_READ)
            return bool(waiting.select(seconds))

    def _frame(self, opcode: int, data: bytes) -> None:
        header = bytearray([0x80 | opcode])
        size = len(data)
        if size < 126:
            header.append(0x80 | size)
        elif size < 1 << 16:
            header += bytes([0x80 | 126]) + size.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(bytes(header) + mask + masked)

    def send(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def _exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._fill()
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def recv(self) -> str:
        parts: list[bytes] = []
        while True:
            first, second = self._exact(2)
            opcode, size = first & 0x0F, second & 0x7F
            if size == 126:
                size = int.from_bytes(self._exact(2), "big")
            elif size == 127:
                size = int.from_bytes(self._exact(8), "big")
            mask = self._exact(4) if second & 0x80 else b""
            data = self._exact(size)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x8:
                raise ConnectionError("DevTools socket closed")
            if opcode == 0x9:
                self._frame(0xA, data)
                continue
            if opcode == 0xA:
                continue
            parts.append(data)
            if first & 0x80:
                return b"".join(parts).decode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._frame(0x8, b"")
        self.sock.close()


class Page:
    """One browser tab: navigate, collect console problems, evaluate, screenshot."""

    def __init__(self, ws_url: str) -> None:
        self.ws = WebSocket(ws_url, timeout=30)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def drain(self, seconds: float) -> None:
        """Collect late events (a console message after load) until ``seconds`` of quiet."""
        while self.ws.pending(seconds):
            self.events.append(json.loads(self.ws.recv()))

    def load(self, path: Path, width: int = 1100, height: int = 900, media: str = "") -> None:
        self.events.clear()
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 700,
        )
        self.call("Emulation.setEmulatedMedia", media=media)
        url = path.resolve().as_uri()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while self.evaluate("document.readyState + ' ' + location.href") != f"complete {url}":
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not finish loading")
            time.sleep(0.05)
        self.drain(0.3)

    def problems(self) -> list[str]:
        """Console errors/warnings, uncaught exceptions and failed loads, as text."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in (
                "error",
                "warning",
                "assert",
            ):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in (
                "error",
                "warning",
            ):
                found.append(f"log: {params['entry'].get('text')}")
        return found

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, target: Path) -> None:
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        target.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        self.ws.close()


class Browser:
    """A headless Chromium on a loopback DevTools port, cut off from any other network."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--no-first-run",
                "--no-default-browser-check",
                "--no-pings",
                "--hide-scrollbars",
                "--mute-audio",
                # Anything a page tries to fetch beyond loopback hits a dead proxy.
                "--proxy-server=http://127.0.0.1:9",
                "--proxy-bypass-list=<-loopback>",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.port = self._port()

    def _port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"chromium exited with code {self.proc.returncode}; {INSTALL_HINT}")
            if marker.is_file():
                lines = marker.read_text().split()
                if lines:
                    return int(lines[0])
            time.sleep(0.05)
        pytest.fail("chromium did not open its DevTools port within 60 s")

    def _json(self, method: str, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, (path, response.status, body[:200])
            return json.loads(body)
        finally:
            conn.close()

    def new_page(self) -> tuple[Page, str]:
        target = self._json("PUT", "/json/new?about:blank")
        return Page(target["webSocketDebuggerUrl"]), target["id"]

    def close_page(self, page: Page, target_id: str) -> None:
        page.close()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", f"/json/close/{target_id}")
            conn.getresponse().read()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
