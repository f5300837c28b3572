"""The documentation site builds with --strict (a broken link, a missing page or an
unknown performance marker fails), and its configuration reference names every
environment variable the code reads (issue 16)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
CONFIGURATION_PAGE = ROOT / "docs" / "operations" / "configuration.md"
# Environment reads in Python (django-environ, os.environ) and, in shell scripts, a
# variable read with a default (`${NAME:-default}`: a knob, not a local variable).
ENV_READ = re.compile(
    r"""env\.\w+\(\s*"([A-Z][A-Z0-9_]+)"
      | environ\.get\(\s*"([A-Z][A-Z0-9_]+)"
      | environ\[\s*"([A-Z][A-Z0-9_]+)"\s*\]
      | getenv\(\s*"([A-Z][A-Z0-9_]+)"
      | _ENV\s*=\s*"([A-Z][A-Z0-9_]+)"
      | \$\{([A-Z][A-Z0-9_]+):?-""",
    re.VERBOSE,
)
NOT_CONFIGURATION = {
    "PATH",
    "HOME",
    "XDG_RUNTIME_DIR",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def _build(site: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.mark.e2e
def test_search_works_when_the_site_is_opened_from_disk(tmp_path):
    """site/index.html over file://, in Debian's Chromium: the search finds pages."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it as root)")
    _build(tmp_path / "site")
    page = (tmp_path / "site" / "index.html").as_uri() + "?q=checkpoint"
    dom = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=10000", "--dump-dom", page],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert re.search(r"md-search-result__meta\">\d+ matching documents?<", dom), dom[-2000:]


def test_the_site_builds_strictly(tmp_path):
    _build(tmp_path / "site")
    performance = (tmp_path / "site" / "performance.html").read_text()
    assert "<!-- bench:" not in performance
    assert "ours: services.spend, threads" in performance  # the table came from latest.json
    assert (tmp_path / "site" / "img" / "bench" / "throughput.png").exists()
    # Opened from disk (file://) search needs no server: the offline plugin inlines the
    # index as a script; the stylesheet keeps code lines and table names whole.
    site = tmp_path / "site"
    index = (site / "index.html").read_text()
    assert (site / "search" / "search_index.js").exists()
    assert "unpkg.com" not in index  # the worker shim is the vendored copy
    assert "javascripts/iframe-worker-shim.js" in index
    assert (site / "javascripts" / "iframe-worker-shim.js").exists()
    assert "stylesheets/extra.css" in index
    css = (site / "stylesheets" / "extra.css").read_text()
    assert "pre-wrap" in css and "white-space: nowrap" in css


def _tracked_sources() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py", "*.sh", "Makefile", ".ci/*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # The service, its scripts and commands; not the variables tests, benchmark and
    # cluster-drill processes pass among themselves (deploy/ is documented by its page).
    return [ROOT / name for name in listed if (ROOT / name).is_file() and not _internal(name)]


def _internal(name: str) -> bool:
    return (
        "/tests/" in f"/{name}" or name.startswith(("bench/", "deploy/")) or name == "conftest.py"
    )


def test_every_environment_variable_the_code_reads_is_documented():
    read: dict[str, str] = {}
    for path in _tracked_sources():
        for match in ENV_READ.finditer(path.read_text(errors="replace")):
            name = next(group for group in match.groups() if group)
            read.setdefault(name, str(path.relative_to(ROOT)))
    assert "DATABASE_URL" in read and "PORT" in read  # the scan itself works
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", CONFIGURATION_PAGE.read_text()))
    missing = {
        name: where
        for name, where in read.items()
        if name not in documented and name not in NOT_CONFIGURATION
    }
    assert missing == {}, f"add these to docs/operations/configuration.md: {missing}"


def test_no_page_links_outside_the_repository():
    for page in (ROOT / "docs").rglob("*.md"):
        text = page.read_text()
        assert "../shared" not in text, page
        assert "CONTRACT.md" not in text, page
