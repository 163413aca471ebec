"""Uninstall every distribution the lock does not pin, so that a venv holds the lock and nothing else.

    python requirements/prune.py requirements/cpu.lock     (make setup runs it with the venv's python)

`pip install --no-deps -r <lock>` installs the lock's pins but leaves whatever an older lock or a hand install
put there (pip has no `sync`). Kept besides the lock: pip itself and srlm (the editable install of this repo).
"""

import re
import subprocess
import sys
from importlib.metadata import distributions

KEEP = {"pip", "srlm"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(lock_text: str) -> set[str]:
    return {canonical(m[1]) for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", lock_text, re.M)}


def main(lock: str) -> int:
    with open(lock) as f:
        keep = pinned(f.read()) | KEEP
    names = {d.metadata["Name"] for d in distributions()}
    extra = sorted({canonical(n) for n in names if n} - keep)
    if not extra:
        return 0
    print(f"not in {lock}, uninstalled: {' '.join(extra)}")
    return subprocess.call([sys.executable, "-m", "pip", "uninstall", "-q", "-y", *extra])


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
