"""Who may do what over HTTP: the policy (the server maps each refusal to a status code).

- **Host check** (DNS rebinding): a browser tricked into treating our address as
  ``evil.example`` sends ``Host: evil.example``. Requests must name a host we are reachable
  at: an IP literal, ``localhost``, this machine's names, ``server.base_url``'s host or one of
  ``server.allowed_hosts`` (``"*"`` allows any).
- **Control** (POST/DELETE): with ``server.api_token`` a matching Bearer token (constant-time
  compare); without one, loopback clients only. Either way a control request must not come
  from another site (``Sec-Fetch-Site: cross-site``/``same-site``, or an ``Origin`` whose host
  is not the request's host) and a POST must be ``application/json``: a web page can only
  send ``text/plain``, form or multipart bodies cross-site without the browser asking first.
- **Reading sessions and paths** needs ``server.read_token`` when one is set.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]{1,253})(:[0-9]{1,5})?$")
CONTROL_METHODS = ("POST", "DELETE", "PUT", "PATCH")


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str
    detail: str


def is_loopback(client: str | None) -> bool:
    """True only for a real loopback IP address (not ``127.evil.example`` or ``::1234``)."""
    if not client:
        return False
    try:
        ip = ipaddress.ip_address(client.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def host_name(host_header: str) -> str | None:
    """The host part of a ``Host`` header, lower-cased; None when it is not a valid host."""
    if not host_header or not HOST.match(host_header):
        return None
    if host_header.startswith("["):
        return host_header[1:host_header.index("]")].lower()
    return host_header.rsplit(":", 1)[0].lower() if ":" in host_header else host_header.lower()


@lru_cache(maxsize=1)
def machine_names() -> frozenset[str]:
    names = {"localhost", "localhost.localdomain"}
    try:
        hn = socket.gethostname().lower()
        names |= {hn, hn + ".local", socket.getfqdn().lower()}
    except OSError:
        pass
    return frozenset(n for n in names if n)


def host_allowed(host_header: str, base_url: str | None, allowed: tuple[str, ...]) -> bool:
    if "*" in allowed:
        return True
    name = host_name(host_header)
    if name is None:
        return False
    try:
        ipaddress.ip_address(name)
        return True  # an address, not a name: rebinding needs a name
    except ValueError:
        pass
    if name in machine_names() or name in (a.lower() for a in allowed):
        return True
    return bool(base_url) and (urlsplit(base_url).hostname or "").lower() == name


def bearer_matches(authorization: str, token: str) -> bool:
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode("latin-1", "replace"),
                                                              token.encode())


def control_refusal(method: str, path: str, client: str | None, headers: dict[str, str],
                    token: str | None) -> Refusal | None:
    """Why a control request is refused, or None to allow it."""
    if method not in CONTROL_METHODS:
        return None
    if path == "/lineup.post":  # HDHomeRun clients on the LAN call it to "scan": it changes nothing
        return None
    site = headers.get("sec-fetch-site", "")
    if site in ("cross-site", "same-site"):
        return Refusal(403, "Forbidden", "control requests from web pages of other sites are refused")
    origin = headers.get("origin")
    if origin is not None:
        o = urlsplit(origin)
        if origin == "null" or host_name(o.netloc) != host_name(headers.get("host", "")):
            return Refusal(403, "Forbidden", f"control requests from origin {origin[:100]!r} are refused")
    if method == "POST":
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json":
            return Refusal(415, "Unsupported media type", "control requests must be sent as application/json "
                           "(an empty body is fine: send Content-Type: application/json)")
    if token:
        if bearer_matches(headers.get("authorization", ""), token):
            return None
        return Refusal(401, "Unauthorized", "send Authorization: Bearer <server.api_token>")
    if is_loopback(client):
        return None
    return Refusal(403, "Forbidden", "control endpoints are only open to this machine; set server.api_token "
                   "(or EXSTREAMTV_API_TOKEN) and send Authorization: Bearer <token> to use them from elsewhere")


def read_refusal(path: str, headers: dict[str, str], read_token: str | None, api_token: str | None) -> Refusal | None:
    """Sessions (client addresses) and channel details (media paths) need ``read_token`` when set."""
    if not read_token or not path.startswith("/api/"):
        return None
    given = headers.get("authorization", "")
    if bearer_matches(given, read_token) or (api_token and bearer_matches(given, api_token)):
        return None
    return Refusal(401, "Unauthorized", "send Authorization: Bearer <server.read_token>")
