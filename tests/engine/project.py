"""A copy of this Pulumi project driven by the real ``pulumi`` CLI against a local vault.

``EngineProject(bin_dir, root, vault)`` lays out, under ``root``:

- ``project/``: ``Pulumi.yaml``, ``__main__.py`` and ``Pulumi.example-local.yaml`` copied from the repository,
  ``venv`` -> the test interpreter's virtual environment (so the engine's dynamic-provider launcher runs
  ``project/venv/bin/python -m pulumi.dynamic`` with cwd = ``project/``, as for a user), and the key files;
- ``state/``: the file backend (``pulumi login file://...``); ``home/``: ``PULUMI_HOME``.

Every command's arguments, exit code, stdout and stderr are kept in ``transcript`` so a test can scan all
of what the engine printed for secrets. Commands that run the program (preview, up, refresh, destroy) go
through ``langhost.py`` (see there why); the others call ``pulumi`` directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LANGHOST = Path(__file__).resolve().with_name("langhost.py")
PROJECT_NAME = "byok-component"
STACK = "example-local"  # so the repository's Pulumi.example-local.yaml is this stack's settings file
PASSPHRASE = "engine-tests-state-passphrase"  # the file backend's secrets passphrase (test data)
COMMAND_TIMEOUT = 600.0
PROGRAM_COMMANDS = frozenset({"preview", "up", "refresh", "destroy"})
VERBOSE = ("-v=9", "--logtostderr", "--logflow")  # the engine's own debug log, on stderr


# provider_plugin.go logs every provider call at -v=7: "Provider[...].Check(<urn>) executing ...",
# "....Diff(<urn>,<id>): executing ...", "....Update(<id>,<urn>): executing ..." (urn and id in either order).
_RPC = re.compile(r"\.(Check|Diff|Create|Update|Delete|Read)\(([^)]*)\):? executing")


def rpc_calls(log: str, name: str) -> list[str]:
    """The provider methods the engine called for resource ``name``, in order, from a ``VERBOSE`` log."""
    return [m.group(1) for m in _RPC.finditer(log)
            if any(part.endswith(f"::{name}") for part in m.group(2).split(","))]


class EngineError(AssertionError):
    """A pulumi command ended otherwise than the test expected (its output is in the message)."""


@dataclass(frozen=True)
class Run:
    """One finished pulumi command."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (f"pulumi {' '.join(self.args)} -> exit {self.returncode}\n--- stdout\n{self.stdout[-6000:]}"
                f"\n--- stderr\n{self.stderr[-6000:]}")


def engine_env(bin_dir: Path, home: Path, extra: dict[str, str]) -> dict[str, str]:
    """Ours minus credentials, proxies, PYTHONPATH and Pulumi settings; the engine first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BYOK_", "AZURE_", "PULUMI_", "ARM_"))
           and k not in ("PYTHONPATH", "PYTHONHOME", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy",
                         "VIRTUAL_ENV")}
    env.update({
        "PATH": os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
        "PULUMI_HOME": str(home),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "NO_COLOR": "1",
        **extra,
    })
    return env


class EngineProject:
    """This project in a temporary directory, one stack (``example-local``) on a file backend."""

    def __init__(self, bin_dir: Path, root: Path, vault: Any) -> None:
        self.bin_dir = Path(bin_dir)
        self.pulumi_bin = self.bin_dir / "pulumi"
        self.dir = root / "project"
        self.state_dir = root / "state"
        self.home = root / "home"
        self.vault = vault
        self.transcript: list[Run] = []
        for d in (self.dir, self.state_dir, self.home):
            d.mkdir(parents=True, mode=0o700)
        for name in ("Pulumi.yaml", "__main__.py", f"Pulumi.{STACK}.yaml"):
            shutil.copy2(ROOT / name, self.dir / name)
        (self.dir / "venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        self.env = engine_env(self.bin_dir, self.home, {
            "BYOK_CA_BUNDLE": vault.ca_cert, "BYOK_ACCESS_TOKEN_FILE": vault.token_file})

    # --- running pulumi ---------------------------------------------------------------------------
    def pulumi(self, *args: str, ok: bool | None = True) -> Run:
        """``pulumi ARGS`` in the project directory. ``ok``: True = must succeed, False = must fail, None = either."""
        command = [str(self.pulumi_bin), *args]
        if args and args[0] in PROGRAM_COMMANDS:
            command = [sys.executable, str(LANGHOST), *command]
        done = subprocess.run(command, cwd=self.dir, env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT)
        run = Run(tuple(args), done.returncode, done.stdout, done.stderr)
        self.transcript.append(run)
        if ok is True and run.returncode != 0:
            raise EngineError(f"expected success:\n{run}")
        if ok is False and run.returncode == 0:
            raise EngineError(f"expected a failure:\n{run}")
        return run

    def init(self, **config: str) -> "EngineProject":
        """Log in to the file backend, create the stack, point it at the vault, set ``config``."""
        self.pulumi("login", f"file://{self.state_dir}")
        self.pulumi("stack", "init", STACK)
        self.config(vaultUrl=self.vault.vault_url, **config)
        return self

    def config(self, **values: str) -> None:
        for key, value in values.items():
            self.pulumi("config", "set", key, value)

    def secret_config(self, **values: str) -> None:
        for key, value in values.items():
            self.pulumi("config", "set", "--secret", key, value)

    def preview(self, *args: str, ok: bool | None = True) -> Run:
        """``pulumi preview --json``: the plan a reviewer sees, machine-readable."""
        return self.pulumi("preview", "--json", *args, ok=ok)

    def up(self, *args: str, ok: bool | None = True) -> Run:
        return self.pulumi("up", "--yes", *args, ok=ok)

    def refresh(self, *args: str, ok: bool | None = True) -> Run:
        return self.pulumi("refresh", "--yes", *args, ok=ok)

    def destroy(self, *args: str, ok: bool | None = True) -> Run:
        return self.pulumi("destroy", "--yes", *args, ok=ok)

    # --- reading state ----------------------------------------------------------------------------
    def export(self) -> dict[str, Any]:
        """``pulumi stack export``: the deployment as the engine stored it (secrets stay ciphertext)."""
        return self.pulumi("stack", "export").json()

    def state_file(self) -> Path:
        """The backend's checkpoint file on disk (what lands in a state bucket)."""
        return self.state_dir / ".pulumi" / "stacks" / PROJECT_NAME / f"{STACK}.json"

    def outputs(self) -> dict[str, Any]:
        return self.pulumi("stack", "output", "--json").json()

    def resources(self) -> list[dict[str, Any]]:
        return self.export()["deployment"].get("resources") or []

    def resource(self, type_suffix: str, name: str) -> dict[str, Any]:
        """The one resource in state whose type ends with ``type_suffix`` and whose URN ends with ``::name``."""
        found = [r for r in self.resources() if r["type"].endswith(type_suffix) and r["urn"].endswith(f"::{name}")]
        assert len(found) == 1, f"{len(found)} resources {type_suffix} {name} in state"
        return found[0]

    def urn(self, type_suffix: str, name: str) -> str:
        return self.resource(type_suffix, name)["urn"]

    def edit_program(self, old: str, new: str, count: int) -> None:
        """Edit this copy's ``__main__.py`` as a user would; ``count``: how often ``old`` must occur."""
        path = self.dir / "__main__.py"
        text = path.read_text()
        assert text.count(old) == count, f"__main__.py has {text.count(old)} x {old!r}, expected {count}"
        path.write_text(text.replace(old, new))
