"""Screenshots of the admin for the docs site (docs/img/admin-*.png).

Builds a throwaway SQLite database with `make run`'s demo data, serves it with
`manage.py runserver` on a free port, and drives Debian's headless Chromium
(/usr/bin/chromium, never a downloaded browser) through Playwright, as the admin's
end-to-end test does. Run it again after changing an admin page:

    .venv/bin/python scripts/docs_screenshots.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "whispers-demo-2026"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def wait_until_up(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the server at {url} did not answer within {seconds} s")


def demo_ids(env: dict) -> tuple[int, int]:
    """(alice's wallet id, alice's demo spend id) in the fresh demo database."""
    code = (
        "from wallet.models import Transaction, Wallet;"
        "w = Wallet.objects.get(user__username='alice');"
        "s = Transaction.objects.get(wallet=w, type='spend');"
        "print(w.pk, s.pk)"
    )
    wallet_id, spend_id = manage(env, "shell", "-v", "0", "-c", code).split()
    return int(wallet_id), int(spend_id)


def shoot(base: str, wallet_id: int, spend_id: int) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    taken: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 760})

            def snap(name: str, full_page: bool = False) -> None:
                path = OUT / f"admin-{name}.png"
                page.screenshot(path=str(path), full_page=full_page)
                taken.append(path)

            page.goto(f"{base}/admin/")
            page.fill("#id_username", "finance")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            expect(page.locator("#site-name")).to_be_visible()
            page.goto(f"{base}/admin/wallet/wallet/")
            snap("wallets")
            page.goto(f"{base}/admin/wallet/wallet/{wallet_id}/change/")
            snap("wallet-page", full_page=True)
            page.goto(f"{base}/admin/wallet/wallet/{wallet_id}/adjust/")
            page.fill("#id_amount", "-40")
            page.fill("#id_reason", "Duplicate goodwill credit reversed (ticket 1234)")
            snap("adjust")
            page.fill("#id_amount", "-999999")
            page.get_by_role("button", name="Continue to confirmation").click()
            expect(page.locator("#confirm-refusal")).to_be_visible()
            snap("adjust-refused")
            page.goto(f"{base}/admin/wallet/transaction/{spend_id}/refund/")
            page.get_by_label("Part of it (enter the amount below)").check()
            page.fill("#id_amount", "25")
            page.fill("#id_reason", "Reading arrived a day late: part refunded")
            snap("refund")
            page.get_by_role("button", name="Continue to confirmation").click()
            snap("refund-confirm")
            page.locator("#confirm-button").click()
            expect(page.locator(".messagelist .success")).to_contain_text("Refunded 25 points")
            snap("refund-done", full_page=True)
            page.goto(f"{base}/admin/wallet/transaction/{spend_id}/refund/")
            page.get_by_label("Part of it (enter the amount below)").check()
            page.fill("#id_amount", "5")
            page.fill("#id_reason", "Second thoughts")
            page.get_by_role("button", name="Continue to confirmation").click()
            expect(page.locator("#confirm-warnings")).to_be_visible()
            snap("refund-again")
            page.goto(f"{base}/admin/wallet/wallet/{wallet_id}/timeline/")
            snap("timeline", full_page=True)
            page.goto(f"{base}/admin/wallet/wallet/{wallet_id}/change/")
            page.locator(".field-transactions_link a").click()
            expect(page.locator("#filter-chips")).to_be_visible()
            snap("transactions-filtered")
            page.goto(f"{base}/admin/jobs/job/?status=partial")
            snap("jobs-partial")
            page.goto(f"{base}/admin/")
            snap("index")
            page.get_by_role("link", name="Approval requests", exact=True).click()
            snap("approval-queue")
            page.goto(f"{base}/admin/wallet/financereport/")
            snap("report", full_page=True)
            page.set_viewport_size({"width": 1600, "height": 760})  # the list is wide
            page.goto(f"{base}/admin/audit/auditevent/")
            snap("audit")
        finally:
            browser.close()
    return taken


def main() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dw-docs-shots-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(DEBUG="1", SQLITE_PATH=str(Path(tmp) / "demo.sqlite3"))
        manage(env, "migrate", "--noinput")
        manage(env, "seed_demo")
        wallet_id, spend_id = demo_ids(env)
        port = free_port()
        server = subprocess.Popen(
            [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base}/healthz")
            for path in shoot(base, wallet_id, spend_id):
                print(f"wrote {path.relative_to(ROOT)}")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
