"""The ``byok`` command line's conventions, in one place, so every command (and every new flag) follows them.

- **stdout is the result, stderr is the conversation.** A command that reports something prints it for a
  human by default and as one JSON object with ``--json`` (``report``); progress and warnings go to stderr
  (``progress``), so ``$(byok ...)`` and pipes only ever see the result.
- **Errors are one line** on stderr, ``byok: error: <input>: <what is wrong> — <what to do next>``, with a
  non-zero exit and no traceback unless ``--debug``. Raise a ``ByokError`` naming the input (a flag, a file,
  an environment variable); ``next_step`` appends the way out.
- **Every flag has help text and shows its default** (``HelpFormatter``); commands that talk to a vault carry
  ``ONLINE_EPILOG``, which names the credentials and the ``BYOK_*`` variables.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterable, Mapping

__all__ = ["HelpFormatter", "ONLINE_EPILOG", "progress", "report", "add_json", "add_out", "add_vault_url",
           "next_step", "quiet_azure_logs", "LOCAL_VAULT_ENV_HINT"]

# The one-liner that points a shell at a running local vault (README "The local vault").
LOCAL_VAULT_ENV_HINT = 'eval "$(byok local-vault env --data DIR)"'

ONLINE_EPILOG = f"""\
credentials:
  Azure: DefaultAzureCredential (az login, AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET,
  workload or managed identity). The principal needs Key Vault Crypto Officer on the vault
  (Managed HSM Crypto User on a Managed HSM).
  A local vault (byok local-vault serve): {LOCAL_VAULT_ENV_HINT}

environment:
  BYOK_ACCESS_TOKEN_FILE    file holding a bearer token, used instead of DefaultAzureCredential
  BYOK_CA_BUNDLE            PEM file of CAs to trust for the vault's TLS (a local vault's ca_cert)
  BYOK_RBAC_WAIT_SECONDS    how long a 403 ForbiddenByRbac is waited out as role propagation (default 600)
  BYOK_THROTTLE_WAIT_SECONDS how long 429s are backed off per call, Retry-After or not (default 120)
  BYOK_PENDING_WAIT_SECONDS how long a delete/purge/recover in flight is waited for (default 300)
  BYOK_BACKOFF_BASE_SECONDS first backoff delay, doubled up to 16x (default 1)
  BYOK_HTTP_TIMEOUT_SECONDS read timeout per request (default 60)
  BYOK_IMPORT_ATTEMPTS      imports re-sent at most this often, each after asking the vault (default 4)
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows ``(default: X)`` after a flag's help when it has a meaningful default; keeps epilogs as written.

    argparse's ArgumentDefaultsHelpFormatter would also print ``(default: None)`` and ``(default: False)``
    for every optional flag and switch, which says nothing. ``is`` rather than ``in``: ``0 in (False,)`` is true,
    and a default of 0 (``--port``, ``--wait``) means something.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or default is None or default is False or default == argparse.SUPPRESS
                or not action.option_strings
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        return f"{text} (default: %(default)s)"


def quiet_azure_logs() -> None:
    """Keep the Azure SDK's own log records (DefaultAzureCredential's ~20-line WARNING) off the terminal.

    With no handler configured, Python prints WARNING records to stderr ("last resort"); the CLI reports the
    same failure as its one-line error instead. ``--debug`` shows the traceback.
    """
    import logging
    azure = logging.getLogger("azure")
    if not azure.handlers:
        azure.addHandler(logging.NullHandler())


def progress(message: str) -> None:
    """A progress line on stderr (stdout stays the result)."""
    print(f"byok: {message}", file=sys.stderr, flush=True)


def report(args: argparse.Namespace, data: Mapping[str, Any], text: str | Iterable[str]) -> None:
    """Print a command's result: ``text`` for humans, or ``data`` as one JSON object with ``--json``."""
    if getattr(args, "json", False):
        print(json.dumps(data, sort_keys=True, default=str))
        return
    print(text if isinstance(text, str) else "\n".join(text))


def next_step(reason: str, step: str) -> str:
    """``reason`` followed by what to do about it, the one shape every error takes."""
    return f"{reason.rstrip('.')} — {step}"


def add_json(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")


def add_out(command: argparse.ArgumentParser, what: str = "output file") -> None:
    command.add_argument("-o", "--out", required=True, metavar="FILE", help=f"{what} (not overwritten without --force)")
    command.add_argument("--force", action="store_true", help="overwrite the output file if it exists")


def add_vault_url(command: argparse.ArgumentParser) -> None:
    command.add_argument("--vault-url", required=True, metavar="URL",
                         help="the vault: https://NAME.vault.azure.net, https://NAME.managedhsm.azure.net, "
                              "or a local vault's URL ($BYOK_VAULT_URL after byok local-vault env)")
