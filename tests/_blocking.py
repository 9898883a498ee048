"""Run Python in a fresh interpreter in which some packages cannot be imported, as if not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run_python(code: str, *, block: tuple[str, ...] = (), cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which the top-level packages in ``block`` cannot be imported."""
    blocker = textwrap.dedent(
        f"""
        import sys

        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {set(block)!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, _Blocker())
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABLE_")}
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
        check=False,
    )
