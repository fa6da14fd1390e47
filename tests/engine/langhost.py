"""Run one ``pulumi`` command with this Python as the program's language host: ``python langhost.py pulumi up ...``.

A Pulumi user's CLI starts ``pulumi-language-python``, which runs the project's ``__main__.py``. That host is a
Go module the Go module proxy does not serve, so the CLI built by ``./dev engine`` has none. The CLI takes
an already running language host instead (``--client``, with ``--exec-kind auto.inline``), which is how the
Automation API runs inline programs; this script is that host: it serves the SDK's own inline language
server, whose program does what ``pulumi-language-python-exec`` does (``runpy.run_path`` of the project
directory, cwd = the project root), then runs the given command and exits with its status.

Everything else is the real engine: it plans, diffs, keeps state, and launches the dynamic provider itself
(``pulumi-resource-pulumi-python``: the project's venv python, ``-m pulumi.dynamic``, cwd = project root).
Run it with the project venv's python and cwd = the project directory; stdout/stderr are the CLI's.

One thing ``--client`` loses: the engine hands a provider plugin the project's runtime options as
``PULUMI_RUNTIME_<OPTION>`` variables (pkg/resource/plugin/provider_plugin.go), and with ``--client`` the
project's runtime is swapped for the client one, so ``virtualenv: venv`` never reaches the launcher, which
then runs plain ``python3`` (found running it: ``No module named 'pulumi'``). Automation API users meet the
same; the CLI with its own language host does not. So this host sets those variables from Pulumi.yaml
exactly as the engine would, and the launcher picks the project's venv as it does for a user.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from concurrent import futures

import grpc
import yaml
from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2_grpc


def program() -> None:
    """The project's program, run the way pulumi-language-python-exec runs it."""
    runpy.run_path(os.getcwd(), run_name="__main__")


def runtime_options_env(project_file: str = "Pulumi.yaml") -> dict[str, str]:
    """``runtime.options`` of Pulumi.yaml as the engine passes them to provider plugins."""
    with open(project_file, encoding="utf-8") as f:
        runtime = (yaml.safe_load(f) or {}).get("runtime")
    options = runtime.get("options") if isinstance(runtime, dict) else None
    return {f"PULUMI_RUNTIME_{k.upper()}": str(v) for k, v in (options or {}).items()}


def main(argv: list[str]) -> int:
    if not argv or os.path.basename(argv[0]) != "pulumi":
        print("usage: python langhost.py /path/to/pulumi COMMAND [ARGS]", file=sys.stderr)
        return 2
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(program), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        return subprocess.call([*argv, f"--client=127.0.0.1:{port}", "--exec-kind", "auto.inline"],
                               stdin=subprocess.DEVNULL, env={**os.environ, **runtime_options_env()})
    finally:
        server.stop(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
