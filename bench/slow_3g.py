"""The market stall on a weak signal, measured in Chromium (issue 16, point 5).

Network: "slow 3G" as the issue defines it, 400 ms round trip and 400 kbit/s each way, made by a small
TCP proxy in this script between Chromium and the app (``SlowLink``): one link shared by every connection,
each byte waiting for its turn on the wire and then 200 ms more each way. Chromium's own throttling
(DevTools ``Network.emulateNetworkConditions``) is not used for speed: it did not slow the offline queue's
uploads (Blob bodies from IndexedDB went at about twice the rate), so it would flatter point 2. DevTools
is used only to take the phone offline and back. Phone: 390×844, Chinese.

1. **Scan → receipt.** A resident opens the workroom's page as its QR code does (empty cache), writes one
   sentence, adds one ~3 MB camera photo, submits and sees the receipt. Reported: the time the machine
   takes (page load, shrinking the photo on the phone, sending, the receipt), typing left out. Goal ≤ 10 s.
2. **Three forms offline, then a flapping network.** A signed-in representative enters three forms with
   photos offline, the network comes back and drops twice, and the queue sends them. Reported: the time
   from the network's return to the last form sent, forms on the server, photos each, and the codes shown
   after a reload.

Baseline in the same run: ``GET /healthz`` fetched by the same page over the same slow link, so
the journeys are also given as a multiple of one round trip on that network.

Run (about a minute; needs ``make install`` and Debian's chromium)::

    .venv/bin/python bench/slow_3g.py            # prints a markdown table, writes bench/results/slow3g-*.json

The app runs as its own process (``python -m app serve --demo``) on a fresh SQLite database in a temporary
folder, on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CHROMIUM = os.environ.get("MINYI_TEST_CHROMIUM", "/usr/bin/chromium")
RATE = 400_000 / 8  # bytes per second, each way
ONE_WAY = 0.2  # seconds: a 400 ms round trip
ONLINE = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
OFFLINE = {**ONLINE, "offline": True}
CONTENTS = ["菜场东门的路灯坏了两盏，早市摸黑。", "鱼摊旁边的下水道堵了，污水外溢。", "希望在市场门口加装一个公交站牌。"]


def camera_photo(path: Path, width: int = 2000, height: int = 1500) -> Path:
    """About 3 MB: noise does not compress, so it is the hardest photo to shrink."""
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(path, "JPEG", quality=93)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_app(folder: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MINYI_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'bench.db'}",
           "MINYI_PHOTO_DIR": str(folder / "photos"), "MINYI_EXPORT_DIR": str(folder / "exports"),
           "MINYI_ENVIRONMENT": "development"}
    log = (folder / "server.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "app", "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(base: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the app stopped (exit {process.returncode}); see its server.log")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the app did not answer /healthz in time")


class Link:
    """One direction of the network: bytes leave in order at ``RATE`` and arrive ``ONE_WAY`` later."""

    def __init__(self) -> None:
        self.free_at = 0.0

    def arrival(self, size: int) -> float:
        now = asyncio.get_running_loop().time()
        self.free_at = max(now, self.free_at) + size / RATE
        return self.free_at + ONE_WAY


class SlowLink:
    """A TCP proxy on 127.0.0.1 in front of the app: every connection through the same slow 3G link."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up, self.down = Link(), Link()
        self.server: asyncio.base_events.Server | None = None
        self.connections: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.connections:  # the browser's kept-alive connections
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)

    async def _connection(self, client_reader, client_writer) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            app_reader, app_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(self._pipe(client_reader, app_writer, self.up),
                                 self._pipe(app_reader, client_writer, self.down), return_exceptions=True)
        except (OSError, asyncio.CancelledError):  # closing: end quietly
            client_writer.close()
        finally:
            self.connections.discard(task)

    async def _pipe(self, reader, writer, link: Link) -> None:  # type: ignore[no-untyped-def]
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            loop = asyncio.get_running_loop()
            while True:
                at, chunk = await queue.get()
                await asyncio.sleep(max(0.0, at - loop.time()))
                if not chunk:
                    break
                writer.write(chunk)
                await writer.drain()
            writer.close()

        delivering = asyncio.create_task(deliver())
        try:
            while chunk := await reader.read(4096):
                await queue.put((link.arrival(len(chunk)), chunk))
        except (ConnectionError, OSError):
            pass
        await queue.put((link.arrival(0), b""))
        try:
            await delivering
        except (ConnectionError, OSError):
            pass


async def devtools(context, page) -> object:  # type: ignore[no-untyped-def]
    """A DevTools session of ``page``, to take the phone offline (``OFFLINE``) and back (``ONLINE``)."""
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    return cdp


async def healthz_ms(page, base: str, rounds: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = await page.evaluate("""async ([url, n]) => {
      const out = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await fetch(url + "?r=" + i + Math.random(), { cache: "no-store" });
        out.push(performance.now() - t);
      }
      return out;
    }""", [f"{base}/healthz", rounds])
    return sorted(times)[len(times) // 2]


async def scan_to_receipt(browser, base: str, photo: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True,
                                        has_touch=True, device_scale_factor=2)
    try:
        page = await context.new_page()
        started = time.perf_counter()
        await page.goto(f"{base}/w/LS-01", wait_until="load")
        loaded = time.perf_counter()
        baseline = await healthz_ms(page, base)
        await page.fill("#f-content", "菜场门口的井盖松了，踩上去会翻。")  # typing: not counted
        shrink_start = time.perf_counter()
        await page.set_input_files("#f-photos", str(photo))
        await page.wait_for_selector("[data-photo-status]:has-text('已添加 1 张照片')", timeout=60_000)
        shrunk = time.perf_counter()
        size = await page.eval_on_selector("#f-photos", "(i) => i.files[0].size")
        send_start = time.perf_counter()
        await page.click("form.submit-form button[type=submit]")
        await page.wait_for_url(f"{base}/receipt", timeout=120_000)
        await page.wait_for_selector("text=查询码", timeout=60_000)
        done = time.perf_counter()
        return {
            "page_load_s": loaded - started, "shrink_s": shrunk - shrink_start, "send_to_receipt_s": done - send_start,
            "total_s": (loaded - started) + (shrunk - shrink_start) + (done - send_start),
            "photo_sent_bytes": size, "photo_original_bytes": photo.stat().st_size, "healthz_ms": baseline,
        }
    finally:
        await context.close()


async def offline_three(browser, base: str, folder: Path, direct: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True,
                                        has_touch=True)
    try:
        page = await context.new_page()
        await page.goto(f"{base}/login?next=/rep")
        await page.fill("#username", "daibiao")
        await page.fill("#password", "minyi-daibiao")
        await page.click("form[action='/login'] button[type=submit]")
        await page.wait_for_url(f"{base}/rep")
        await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        await page.reload()
        await page.wait_for_function("() => navigator.serviceWorker.controller !== null")
        cdp = await devtools(context, page)
        await cdp.send("Network.emulateNetworkConditions", OFFLINE)
        photos = [camera_photo(folder / f"IMG_{i}.jpg") for i in range(3)]
        for number, (content, photo) in enumerate(zip(CONTENTS, photos, strict=True), start=1):
            await page.locator(".rep-chips label").nth(number % 2).click()
            await page.fill("#f-content", content)
            await page.set_input_files("#f-photos", str(photo))
            await page.wait_for_selector("[data-photo-status]:has-text('已添加 1 张照片')", timeout=60_000)
            await page.click("#rep-form button[type=submit]")
            await page.wait_for_selector(f"#pending-count:has-text('{number} 条待发送')")
        await page.wait_for_timeout(1000)
        still = await page.inner_text("#pending-count")
        if still != "3 条待发送" or await representative_forms(direct):
            raise SystemExit(f"the forms did not stay on the phone while offline ({still!r})")
        back = time.perf_counter()
        for is_offline in (False, True, False, True, False):  # the signal comes and goes
            await cdp.send("Network.emulateNetworkConditions", OFFLINE if is_offline else ONLINE)
            await page.wait_for_timeout(300)
        await page.wait_for_selector("#pending-count", state="hidden", timeout=180_000)
        sent = time.perf_counter()
        await page.reload()
        await page.wait_for_function("() => document.querySelectorAll('#today .rep-code').length >= 3", timeout=60_000)
        codes = await page.eval_on_selector_all("#today li[data-tracking-no]", """(rows) => rows.map((r) => [
            r.getAttribute('data-tracking-no'), (r.querySelector('.rep-code b') || {}).textContent || '',
            (r.querySelector('.rep-content') || {}).textContent || ''])""")
    finally:
        await context.close()
    ours = await representative_forms(direct)
    counts = [photos for _form, photos in ours]
    with_code = [c for c in codes if any(c[2].startswith(x[:10]) for x in CONTENTS) and len(c[1]) == 6]
    return {"send_after_return_s": sent - back, "forms_on_server": len(ours), "photos_each": counts,
            "codes_after_reload": len(with_code)}


async def representative_forms(base: str) -> list[tuple[dict[str, object], int]]:
    """This bench's forms on the server (not throttled: asked from here), each with its number of photos."""
    async with httpx.AsyncClient(base_url=base) as http:
        token = (await http.post("/api/v1/auth/token", data={"username": "office", "password": "minyi-office"})).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        forms = (await http.get("/api/v1/forms", params={"limit": 200}, headers=headers)).json()["items"]
        return [(f, len((await http.get(f"/api/v1/forms/{f['id']}/photos", headers=headers)).json()["items"]))
                for f in forms if f["content"] in CONTENTS]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="minyi-3g-") as tmp:
        folder = Path(tmp)
        port = free_port()
        server = start_app(folder, port)
        link = SlowLink(port)
        try:
            wait_ready(f"http://127.0.0.1:{port}", server)
            base = f"http://127.0.0.1:{await link.start()}"  # the phone reaches the app through the slow link
            photo = camera_photo(folder / "IMG_0001.jpg")
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    scan = await scan_to_receipt(browser, base, photo)
                    queue = await offline_three(browser, base, folder, f"http://127.0.0.1:{port}")
                finally:
                    await browser.close()
        finally:
            await link.close()
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit,
              "network": {"round_trip_ms": ONE_WAY * 2000, "kbit_per_s_each_way": RATE * 8 / 1000},
              "scan_to_receipt": scan, "offline_three": queue}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"slow3g-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    rtt = scan["healthz_ms"] / 1000
    print(f"| measure | value | × /healthz on the same network ({scan['healthz_ms']:.0f} ms) |")
    print("| --- | --- | --- |")
    for name in ("page_load_s", "shrink_s", "send_to_receipt_s", "total_s"):
        print(f"| scan → receipt: {name} | {scan[name]:.2f} s | {scan[name] / rtt:.1f} |")
    print(f"| photo: original → sent | {scan['photo_original_bytes'] / 1e6:.2f} MB → {scan['photo_sent_bytes'] / 1024:.0f} KB | |")
    print(f"| offline three: sent after the network's return | {queue['send_after_return_s']:.2f} s | "
          f"{queue['send_after_return_s'] / rtt:.1f} |")
    print(f"| offline three: forms on server / photos each / codes after reload | {queue['forms_on_server']} / "
          f"{queue['photos_each']} / {queue['codes_after_reload']} | |")
    print(f"\n{out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
