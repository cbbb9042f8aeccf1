"""The README's shell blocks, pasted as they are, one after the other, into one bash.

They run against the real ``stead serve`` the first block starts, on SQLite in a temporary
directory; bash runs with ``-e -u -o pipefail``, so a command that fails (curl answers an error
with ``--fail-with-body``) fails the test. What a reader must choose is set from outside, never
by editing a command, except for one line:

* ``PORT=8080`` becomes a free port (8080 may be taken where tests run);
* ``HOME`` and ``STEAD_DATA_DIR`` are in the temporary directory, and ``stead`` is the one
  installed beside this Python;
* the blocks run in a temporary directory whose ``src`` links to this checkout's ``src`` (they
  read ``src/stead/demo_examples`` from the clone's root and write files where they run).

The quick-start block (``make demo``, ``make test``) is the only one not run: ``make test`` is
this suite, and ``stead demo`` is tested in ``tests/test_flow.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[1]
QUICK_START = "make demo"


def shell_blocks(text: str) -> list[str]:
    """The ```sh blocks of a Markdown text, in order."""
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


@pytest.mark.process
def test_the_readme_shell_blocks_run_as_written(tmp_path: Path) -> None:
    blocks = shell_blocks((ROOT / "README.md").read_text())
    assert QUICK_START in blocks[0]
    run = blocks[1:]
    assert len(run) == 3, "a new shell block: check that it runs here, then count it"
    script = "\n".join(run)
    assert script.count("PORT=8080\n") == 1
    port = free_port()
    script = script.replace("PORT=8080\n", f"PORT={port}\n")

    work = tmp_path / "work"
    work.mkdir()
    (work / "src").symlink_to(ROOT / "src")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    env |= {
        "HOME": str(home),
        "STEAD_DATA_DIR": str(tmp_path / "data"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    # files, not pipes: the backgrounded `stead serve` keeps its output open after bash ends
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("w") as out_file, stderr.open("w") as err_file:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=work,
            env=env,
            stdout=out_file,
            stderr=err_file,
            start_new_session=True,
        )
    try:
        proc.wait(timeout=180)
        out = stdout.read_text()
        assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{stderr.read_text()[-4000:]}"
        # the server the first block started is still serving
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the backgrounded `stead serve`, and bash
        proc.wait(timeout=30)

    # step 6: the clone checked out the scaffold Stead pushed
    assert (work / "finance-pipelines" / "stead.yaml").is_file()
    assert "README.md" in out and "stead.yaml" in out
    # the declarative block exported what the walkthrough made, and plan found nothing to do
    exported = yaml.safe_load((work / "projects.yaml").read_text())
    (project,) = exported["projects"]
    assert project["name"] == "finance-analytics"
    assert [e["name"] for e in project["environments"]] == ["prod"]
    assert (work / "stead.schema.json").stat().st_size > 0
