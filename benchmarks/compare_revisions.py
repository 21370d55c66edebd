"""Run benchmarks at an earlier revision and at this checkout, taking turns, in one run.

    .venv/bin/python -m benchmarks.compare_revisions --base fde2b42 engine sensitive -- --rounds 4

Checks out ``--base`` in a temporary worktree (sharing this checkout's ``.venv``), then runs
each named benchmark (``benchmarks/bench_<name>.py``) at the base and here, alternately,
``--turns`` times each (base first, then the other way round), and prints every run's output
under a heading naming the revision. Each benchmark's figures are ratios against its own
in-run baseline, so the two revisions compare by those ratios; their spread over the turns is
the run-to-run spread a change is judged against. Arguments after ``--`` go to every
benchmark. Nothing is parsed or judged here: the tables are read side by side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    command = ["git", "-C", str(ROOT), *args]
    done = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    return done.stdout.strip()


def _run(tree: Path, bench: str, extra: list[str]) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - our own benchmarks
        [str(ROOT / ".venv" / "bin" / "python"), "-m", f"benchmarks.bench_{bench}", *extra],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + (
        f"\n[exit {done.returncode}]\n{done.stderr[-2000:]}" if done.returncode else ""
    )
    return output, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the earlier revision")
    parser.add_argument("--turns", type=int, default=2, help="runs per revision (default 2)")
    parser.add_argument("benchmarks", nargs="+", help="names: engine, sensitive, sync, ...")
    argv = sys.argv[1:]
    # everything after "--" goes to the benchmarks untouched (argparse would take a bare value
    # such as the 1 of "--seconds 1" for one more benchmark name)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    extra = argv[split + 1 :]
    base = _git("rev-parse", "--short", args.base)
    head = _git("rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain") else ""
    with tempfile.TemporaryDirectory(prefix="bench-base-") as tmp:
        tree = Path(tmp) / "tree"
        _git("worktree", "add", "--detach", str(tree), base)
        try:
            (tree / ".venv").symlink_to(ROOT / ".venv")
            modules = ROOT / "client_js" / "node_modules"
            if modules.is_dir():  # the JS clients' packages, for the benchmarks that run node
                (tree / "client_js" / "node_modules").symlink_to(modules)
            for bench in args.benchmarks:
                for turn in range(args.turns):
                    order = [(base, tree), (head + dirty, ROOT)]
                    if turn % 2:
                        order.reverse()
                    for name, where in order:
                        output, seconds = _run(where, bench, extra)
                        print(f"\n===== {bench} at {name}, turn {turn + 1} ({seconds:.0f} s)")
                        print(output, flush=True)
        finally:
            _git("worktree", "remove", "--force", str(tree))
    return 0


if __name__ == "__main__":
    sys.exit(main())
