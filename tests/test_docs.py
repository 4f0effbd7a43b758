"""The documentation runs: every ```python block of every page, and ``mkdocs build --strict``.

Conventions for the pages in ``docs/`` (see docs/index.md, "About the code on these pages"):

* every fenced block whose info string starts with ``python`` is executed, in page order, all
  blocks of one page in one fresh namespace, in a temporary working directory;
* a block whose preceding non-blank line is ``<!-- skip-test -->`` (or ``<!-- skip-test: why -->``)
  is not executed; the page must say why;
* a python block followed by the line ``<!-- expected-output -->`` and then a ```text block must
  print exactly that text (trailing whitespace ignored).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
SKIP = re.compile(r"^<!--\s*skip-test\b.*-->$")
EXPECTED = "<!-- expected-output -->"


@dataclasses.dataclass
class Block:
    """One ```python block: its code, first line (1-based) and the expected output, if any."""

    code: str
    line: int
    skip: bool
    expected: str | None = None


def extract_blocks(text: str) -> list[Block]:
    """The python blocks of a Markdown page (fences must start at column 0)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    last_nonblank = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            info = line[3:].strip()
            start = i + 1
            j = start
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            if j == len(lines):
                raise AssertionError(f"unclosed code fence at line {i + 1}")
            body = "\n".join(lines[start:j]) + "\n"
            if info.split(" ")[0] == "python":
                skip = bool(SKIP.match(last_nonblank.strip()))
                blocks.append(Block(body, start + 1, skip))
            elif info.split(" ")[0] == "text" and last_nonblank.strip() == EXPECTED:
                if not blocks or blocks[-1].expected is not None:
                    raise AssertionError(f"expected-output block at line {i + 1} follows no code")
                blocks[-1].expected = body
            last_nonblank = "```"
            i = j + 1
            continue
        if line.strip():
            last_nonblank = line
        i += 1
    return blocks


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    for block in extract_blocks(page.read_text()):
        if block.skip:
            continue
        # pad so that tracebacks point at the line of the Markdown file
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(code, namespace)
        if block.expected is not None:
            assert _normalize(out.getvalue()) == _normalize(block.expected), (
                f"{page.name}, block at line {block.line}: the printed output differs from the "
                "expected-output block below it"
            )


def test_pages_have_code_and_are_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    nav = set(re.findall(r"^\s*-\s[^:]+:\s*(\S+\.md)\s*$", config, flags=re.M))
    assert nav == {p.name for p in PAGES}, "every page in docs/ must be in the nav, and back"
    for name in ("index.md", "modeling.md", "solvers.md"):
        blocks = extract_blocks((DOCS / name).read_text())
        assert sum(not b.skip for b in blocks) >= 3, name
    skipped = [(p.name, b.line) for p in PAGES for b in extract_blocks(p.read_text()) if b.skip]
    assert len(skipped) <= 2, f"too many skipped blocks: {skipped}"


def test_extract_blocks_conventions():
    text = (
        "intro\n\n```python\nx = 1\n```\n\n<!-- skip-test: needs a GPU -->\n```python\nboom\n"
        "```\n\n```python\nprint(x)\n```\n\n<!-- expected-output -->\n```text\n1\n```\n"
        "```bash\nls\n```\n"
    )
    blocks = extract_blocks(text)
    assert [(b.line, b.skip, b.expected) for b in blocks] == [
        (4, False, None),
        (9, True, None),
        (13, False, "1\n"),
    ]


def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
        + ["--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    for page in PAGES:
        assert (
            site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        ).exists()
    api = (site / "api" / "index.html").read_text()
    for name in ("solve_exact", "DualSolver", "RegularizedResult", "PartialTrace", "sweep"):
        assert name in api, name
