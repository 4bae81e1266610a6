"""What the runtime loads: no PyTorch, and llama.cpp only through the door that sets its thread waiting."""
import ast
import subprocess
import sys
from pathlib import Path

import voxprompt
from voxprompt.llm import OPENMP_SPINS

PACKAGE = Path(voxprompt.__file__).parent


def test_the_runtime_does_not_import_torch():
    code = ("import sys, voxprompt.cli, voxprompt.transcriber, voxprompt.files, voxprompt.dictation, voxprompt.ui\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_llama_cpp_is_imported_only_through_llama_library():
    """A plain `import llama_cpp` before it would load libgomp spinning: 30x slower decodes on busy cores."""
    importers = []

    class Finder(ast.NodeVisitor):
        def __init__(self, path):
            self.path, self.where = path, ["module"]

        def visit_FunctionDef(self, node):
            self.where.append(node.name)
            self.generic_visit(node)
            self.where.pop()

        def visit_Import(self, node):
            self.check([a.name for a in node.names])

        def visit_ImportFrom(self, node):
            self.check([node.module or ""])

        def check(self, names):
            if any(n.split(".")[0] == "llama_cpp" for n in names):
                importers.append(f"{self.path.name}:{self.where[-1]}")

    for path in PACKAGE.rglob("*.py"):
        Finder(path).visit(ast.parse(path.read_text()))
    assert set(importers) == {"llm.py:llama_library"}


def test_llama_library_spins_briefly_unless_the_user_chose():
    code = ("import os; from voxprompt.llm import llama_library; llama_library(); "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}

    def chosen(**settings):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, **settings})
        return run.stdout.split()

    assert chosen() == ["passive", str(OPENMP_SPINS)]
    assert chosen(OMP_WAIT_POLICY="active") == ["active", "None"]
    assert chosen(GOMP_SPINCOUNT="5") == ["None", "5"]
