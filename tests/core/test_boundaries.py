"""console/core must run without the UI: it never imports textual (design.md)."""

import json
import subprocess
import sys
from pathlib import Path

import console.core

CORE = Path(console.core.__file__).parent


def test_core_sources_do_not_import_textual():
    offenders = []
    for path in CORE.rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import textual", "from textual")):
                offenders.append(f"{path}: {stripped}")
    assert offenders == []


def test_importing_the_whole_core_loads_no_textual():
    modules = sorted(
        "console.core." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in CORE.rglob("*.py") if p.name != "__init__.py"
    )
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + (
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'console.tui'))]\n"
        "print(bad); raise SystemExit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_twolane_add_path_imports_no_textual_or_http_server():
    code = (
        "import sys, console.cli as c\n"
        "p = c.build_parser()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'aiohttp', 'httpx')]\n"
        "print(bad); raise SystemExit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_linter_contract_is_kept():
    """pyproject's import-linter contract: console.core never imports textual or the UI."""
    import shutil

    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is part of the test extra"
    result = subprocess.run([exe], capture_output=True, text=True, cwd=CORE.parent.parent)
    assert result.returncode == 0 and "1 kept, 0 broken" in result.stdout, result.stdout + result.stderr


def test_direct_add_to_an_existing_database_starts_no_event_loop(home: Path):
    """With no owner, `twolane add` writes its row with plain sqlite3 once the database
    exists; the first add (no database yet) takes the async path, which creates it."""
    code = (
        "import sys\n"
        "from console.cli import main\n"
        "code = main(['add', '--name', sys.argv[1], '--', 'true'])\n"
        "print('asyncio' in sys.modules, 'aiosqlite' in sys.modules)\n"
        "raise SystemExit(code)\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True)
            for name in ("first", "second")]  # fmt: skip
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert runs[0].stdout.splitlines()[-1] == "True True"
    assert runs[1].stdout.splitlines()[-1] == "False False"
    listed = subprocess.run([sys.executable, "-m", "console", "ls", "--json"],
                            capture_output=True, text=True)  # fmt: skip
    jobs = json.loads(listed.stdout)
    assert [j["name"] for j in jobs] == ["first", "second"]
    assert [j["seq"] for j in jobs] == [1, 2] and all(j["state"] == "queued" for j in jobs)
