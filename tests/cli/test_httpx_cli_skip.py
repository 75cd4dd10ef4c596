"""``llmrelay chat`` skips httpx's own command-line tool while it first imports httpx.

``llmrelay.cli._chat._without_httpx_cli`` relies on one detail of httpx's
``httpx/__init__.py`` (a private module name, so ``pyproject.toml`` bounds httpx's
version): ``from ._main import main`` inside ``try``/``except ImportError``, with a
fallback ``main``. These tests fail when a new httpx changes that import, so that the
trick is re-examined before the bound is raised.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys

from tests.cli.conftest import SRC


def _httpx_init() -> ast.Module:
    spec = importlib.util.find_spec("httpx")
    assert spec is not None
    assert spec.origin is not None
    with open(spec.origin, encoding="utf-8") as handle:
        return ast.parse(handle.read())


def _guarded_main_import(tree: ast.Module) -> ast.Try | None:
    for node in tree.body:
        if not isinstance(node, ast.Try):
            continue
        imports = [n for n in node.body if isinstance(n, ast.ImportFrom)]
        handled = {
            h.type.id for h in node.handlers if h.type is not None and isinstance(h.type, ast.Name)
        }
        fallback = {n.name for h in node.handlers for n in h.body if isinstance(n, ast.FunctionDef)}
        if (
            any(i.module == "_main" and i.level == 1 for i in imports)
            and "ImportError" in handled
            and "main" in fallback
        ):
            return node
    return None


def test_httpx_still_imports_its_cli_under_an_import_error_guard() -> None:
    assert _guarded_main_import(_httpx_init()) is not None, (
        "httpx changed how its __init__ imports httpx._main: re-examine "
        "llmrelay.cli._chat._without_httpx_cli and the httpx bound in pyproject.toml"
    )


def test_the_check_sees_a_changed_import() -> None:
    assert _guarded_main_import(ast.parse("from ._main import main\n")) is None
    changed = "try:\n    from ._cli import main\nexcept ImportError:\n    def main(): pass\n"
    assert _guarded_main_import(ast.parse(changed)) is None


def test_httpx_imports_without_its_cli_and_the_cli_stays_importable() -> None:
    code = (
        "import sys\n"
        "from llmrelay.cli._chat import _without_httpx_cli\n"
        "with _without_httpx_cli():\n"
        "    import httpx\n"
        "print('rich' in sys.modules, 'httpx._main' in sys.modules)\n"
        "import httpx._main\n"
        "print(httpx._main.main is not httpx.main)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PYTHONPATH": SRC},
    )
    assert out.stdout.split() == ["False", "False", "True"], out.stderr
