"""Informed consent: the notice a volunteer accepts once before the probe touches the network.

Everything that decides whether a measurement may start, as far as the volunteer's consent is
concerned, lives here. Rules for this module:

* Consent is given by any of: ``--accept-risk`` / ``accept_risk = true`` in the config /
  ``PROBE_ACCEPT_RISK=1`` (resolved by :mod:`probe.cli.config` into one boolean), or a consent file
  (``<user config dir>/consent``) written when the volunteer accepted :data:`NOTICE` at a
  terminal. A consent file for an older :data:`NOTICE_VERSION` does not count: a materially
  changed notice is shown again.
* Interactive use (standard input *and* standard error are terminals): the notice is printed
  on standard error and the volunteer types ``yes``. Anything else declines.
* Non-interactive use without consent never waits for input: :class:`ConsentError` at once,
  one line saying how to consent (exit status 2).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import platformdirs

from probe.errors import UsageError
from probe.model import utcnow_iso

__all__ = [
    "NOTICE",
    "NOTICE_VERSION",
    "ConsentError",
    "consent_path",
    "ensure_consent",
    "has_consented",
    "is_interactive",
    "record_consent",
]

#: Bump when the notice changes materially: everyone is asked again.
NOTICE_VERSION = 1

NOTICE = """\
probe — please read before the first measurement

What it does: probe tests whether web sites (news, social networks, messaging, VPN and other
sites from the target lists) can be reached from your Internet connection. For each site it
makes ordinary DNS look-ups, TCP connections, TLS handshakes and HTTP requests, and it checks
a few well-known hosts to tell a network shutdown from blocking.

What it stores, and where: the results (times, errors, DNS answers, certificates, page
headers and page contents — or only their hashes and sizes with --no-bodies) and a verdict
per site, in a SQLite file on this computer (see `probe config show`, setting "db"). Nothing
is sent anywhere except to the sites measured and to the control helper you configure.
You decide whom you give the file to.

Your IP address is never stored: your computer's own addresses and the public address the
control helper sees are removed from everything before it is written.

The risk: to your Internet provider and anyone watching the network, the probe's traffic
looks like visits to every site on the list, some of them blocked or sensitive. In some
countries running network measurements, or visiting blocked sites, can be illegal or
dangerous. Only run probe if you understand and accept this risk for yourself. See
docs/volunteers.md for details.
"""

_PROMPT = "Type 'yes' to accept and continue, anything else to stop: "
_HOW = (
    "consent needed before measuring: run `probe run` once in a terminal to read and accept "
    "the notice, or pass --accept-risk (config: accept_risk = true; env: PROBE_ACCEPT_RISK=1)"
)


class ConsentError(UsageError):
    """Raised when a measurement would start without the volunteer's consent (exit status 2)."""


def consent_path() -> Path:
    """Where the acceptance is recorded: ``<user config dir>/consent``."""
    return Path(platformdirs.user_config_dir("probe")) / "consent"


def has_consented(path: Path | None = None) -> bool:
    """True if the consent file records acceptance of the current notice version."""
    try:
        text = (path or consent_path()).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "notice_version":
            return value.strip() == str(NOTICE_VERSION)
    return False


def record_consent(path: Path | None = None) -> Path:
    """Write the consent file (atomically); returns its path. OSError if it cannot be written."""
    target = path or consent_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    content = f"notice_version = {NOTICE_VERSION}\naccepted_at = {utcnow_iso()}\n"
    fd, tmp = tempfile.mkstemp(prefix=".consent-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def is_interactive() -> bool:
    """Standard input and standard error are both terminals (someone can read and answer)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def ensure_consent(
    accept_risk: bool,
    *,
    path: Path | None = None,
    interactive: bool | None = None,
    ask: Callable[[str], str] | None = None,
    out: TextIO | None = None,
) -> str:
    """Return how consent was given (``flag``, ``recorded`` or ``accepted``), or raise
    ConsentError.

    ``accept_risk``: the effective ``accept_risk`` setting. ``path``: the consent file
    (default :func:`consent_path`). ``interactive``: None = :func:`is_interactive`. ``ask``:
    shows the prompt and reads the answer (default: prompt on ``out``, a line from standard
    input); ``out``: where the notice goes (default standard error).
    """
    if accept_risk:
        return "flag"
    if has_consented(path):
        return "recorded"
    if not (is_interactive() if interactive is None else interactive):
        raise ConsentError(_HOW)
    stream = out or sys.stderr
    stream.write("\n" + NOTICE + "\n")
    stream.flush()
    try:
        if ask is not None:
            answer = ask(_PROMPT)
        else:  # the prompt goes with the notice, not to a possibly redirected stdout
            stream.write(_PROMPT)
            stream.flush()
            answer = sys.stdin.readline()
    except (EOFError, KeyboardInterrupt):
        answer = ""
    if answer.strip().lower() not in ("yes", "y"):
        raise ConsentError("consent declined; nothing measured")
    try:
        where = record_consent(path)
    except OSError as e:
        stream.write(f"probe: warning: could not record consent ({e.strerror or e}); "
                     "you will be asked again\n")
    else:
        stream.write(f"consent recorded in {where}\n")
    return "accepted"
