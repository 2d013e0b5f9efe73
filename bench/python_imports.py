"""What Python imports cost in resident memory, each figure from a fresh interpreter.

- ``fresh_rss(python, statement)``: VmRSS (and its anonymous / file-backed parts) of a new
  interpreter right after running ``statement``; the median of a few runs.
- ``cumulative(python, steps)``: the same for each step added to all steps before it, so a row's
  growth is what that step adds on top of the ones before (shared dependencies count where they
  first appear).
- ``leave_one_out(python, statement, packages)``: the saving if a package were gone from a full
  import set — the set imported once as is and once with the package's modules replaced by empty
  stubs (module-level names resolve to dummy classes), so whatever imports it still imports.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

PROBE = """\
import sys
BLOCK = tuple(p for p in sys.argv[2].split(",") if p)
if sys.argv[2] != "-":
    import importlib.abc, importlib.machinery, types

    class Stub(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {})

    class Blocker(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path, target=None):
            if fullname in BLOCK or fullname.startswith(tuple(p + "." for p in BLOCK)):
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

        def create_module(self, spec):
            return Stub(spec.name)

        def exec_module(self, module):
            module.__path__ = []

    sys.meta_path.insert(0, Blocker())
exec(sys.argv[1])
with open("/proc/self/status") as f:
    values = {k: v.split()[0] for k, _, v in (line.partition(":") for line in f)
              if k in ("VmRSS", "RssAnon", "RssFile")}
print(values["VmRSS"], values["RssAnon"], values["RssFile"], len(sys.modules))
"""


def fresh_rss(python: str, statement: str, cwd: Path, block: str = "-", repeats: int = 3) -> dict:
    """{rss_mb, anon_mb, file_mb, modules} of a fresh interpreter after ``statement`` (median run)."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [python, "-c", PROBE, statement, block], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{python} -c {statement!r} failed: {done.stderr.strip()[-500:]}")
        rss, anon, file, modules = (int(v) for v in done.stdout.split())
        runs.append({"rss_mb": rss / 1024, "anon_mb": anon / 1024, "file_mb": file / 1024, "modules": modules})
    runs.sort(key=lambda r: r["rss_mb"])
    return runs[len(runs) // 2]


def cumulative(python: str, steps: list[tuple[str, str]], cwd: Path) -> list[dict]:
    rows, statements = [], []
    for label, statement in steps:
        statements.append(statement)
        rows.append({"step": label, **fresh_rss(python, "; ".join(statements), cwd)})
    return rows


def leave_one_out(python: str, statement: str, packages: list[tuple[str, str]], cwd: Path) -> list[dict]:
    """[{package, saving_mb, …}] for each (label, comma-separated top-level names) in ``packages``."""
    base = fresh_rss(python, statement, cwd, block="")  # the blocker installed, blocking nothing
    rows = [{"package": "(nothing left out)", "saving_mb": 0.0, **base}]
    for label, names in packages:
        without = fresh_rss(python, statement, cwd, block=names)
        rows.append({"package": label, "saving_mb": base["rss_mb"] - without["rss_mb"], **without})
    return rows
