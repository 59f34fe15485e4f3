"""Size targets of the structure (issue 19): no module over 400 lines and no function over 60 in
the runner and the operator, so a concern that grows is split rather than appended to."""

import ast

from tests.helpers import ROOT

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
TREES = ("runner-image/src", "operator/src")


def _sizes():
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            text = path.read_text()
            rel = path.relative_to(ROOT)
            yield "module", str(rel), text.count("\n")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield "function", f"{rel}:{node.name}", node.end_lineno - node.lineno + 1


def test_no_module_over_400_lines_and_no_function_over_60():
    sizes = list(_sizes())
    assert sum(1 for kind, _, _ in sizes if kind == "module") > 100  # the trees were found
    too_big = [(where, n) for kind, where, n in sizes
               if n > (MAX_MODULE_LINES if kind == "module" else MAX_FUNCTION_LINES)]
    assert too_big == []
