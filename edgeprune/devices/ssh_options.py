"""Which OpenSSH options a target profile may set (``device.ssh_options``).

A profile is often taken from someone else (a pull request, a colleague's
board), so it must not be able to run a program on this machine or hand the
board more than the one command edgeprune sends. OpenSSH has many options that
do exactly that (``ProxyCommand``, ``LocalCommand``, ``KnownHostsCommand``,
``PKCS11Provider``, ``Match exec``, ``Include``, agent and port forwarding,
``SetEnv``, ``ControlPath`` to another connection's master). So only the
options below are accepted, each with the values it may take; everything else,
in any letter case, is refused. Option names are case-insensitive in OpenSSH,
so the check is too. Anything else belongs in the user's own ``~/.ssh/config``,
which edgeprune uses as it is.
"""

from __future__ import annotations

import re

_WORD = r"[A-Za-z0-9][A-Za-z0-9._+@-]*"
_LIST = rf"{_WORD}(,{_WORD})*"
_PATH = r"[A-Za-z0-9_./~+-][A-Za-z0-9_./~+@:-]*"   # no %-tokens, shell or ssh-config syntax
_HOSTSPEC = r"([A-Za-z0-9._-]+@)?[A-Za-z0-9._-]+(:[0-9]{1,5})?"

YES_NO = r"yes|no"
NUMBER = r"[0-9]{1,6}"

# canonical name -> the values it accepts (a regular expression, matched in full)
ALLOWED: dict[str, str] = {
    "AddressFamily": r"any|inet|inet6",
    "BatchMode": r"yes",                       # edgeprune sets it; "no" would prompt
    "CheckHostIP": YES_NO,
    "Ciphers": rf"[+^-]?{_LIST}",
    "Compression": YES_NO,
    "ConnectionAttempts": NUMBER,
    "ConnectTimeout": NUMBER,
    "GlobalKnownHostsFile": _PATH,
    "HashKnownHosts": YES_NO,
    "HostKeyAlgorithms": rf"[+^-]?{_LIST}",
    "IdentitiesOnly": YES_NO,
    "IPQoS": rf"{_WORD}( {_WORD})?",
    "KexAlgorithms": rf"[+^-]?{_LIST}",
    "LogLevel": r"QUIET|FATAL|ERROR|INFO|VERBOSE|DEBUG|DEBUG1|DEBUG2|DEBUG3",
    "MACs": rf"[+^-]?{_LIST}",
    "NumberOfPasswordPrompts": NUMBER,
    "PreferredAuthentications": _LIST,
    "ProxyJump": rf"none|{_HOSTSPEC}(,{_HOSTSPEC})*",
    "PubkeyAcceptedAlgorithms": rf"[+^-]?{_LIST}",
    "PubkeyAuthentication": YES_NO,
    "RekeyLimit": rf"{_WORD}( {_WORD})?",
    "ServerAliveCountMax": NUMBER,
    "ServerAliveInterval": NUMBER,
    "StrictHostKeyChecking": r"yes|no|accept-new|ask|off",
    "TCPKeepAlive": YES_NO,
    "UpdateHostKeys": r"yes|no|ask",
    "UserKnownHostsFile": rf"{_PATH}( {_PATH})*",
    "VerifyHostKeyDNS": r"yes|no|ask",
}
_BY_LOWER = {name.lower(): name for name in ALLOWED}
_ALIASES = {"pubkeyacceptedkeytypes": "PubkeyAcceptedAlgorithms"}


def check_ssh_option(entry: str) -> str:
    """Return the entry as ``Name=value`` with the canonical name, or raise ValueError
    saying why it is refused."""
    name, sep, value = entry.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9]+", name):
        raise ValueError(f"ssh_options entry {entry!r} must look like Name=value")
    key = name.lower()
    canonical = _BY_LOWER.get(key) or _ALIASES.get(key)
    if canonical is None:
        raise ValueError(f"ssh_options entry {entry!r}: {name} is not among the options a target "
                         f"profile may set ({', '.join(sorted(ALLOWED))}); options that run "
                         "programs, forward connections or read other configuration are refused; "
                         "put anything else in your own ~/.ssh/config")
    if not re.fullmatch(ALLOWED[canonical], value):
        raise ValueError(f"ssh_options entry {entry!r}: {value!r} is not a value edgeprune "
                         f"accepts for {canonical}")
    return f"{canonical}={value}"
