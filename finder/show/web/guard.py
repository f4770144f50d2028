"""What stands between the page and anyone else on the machine or the web (after Jupyter's server).

An ASGI middleware around the whole app, checked in this order, each refusal a one-line JSON error:

1. **Host** (403): the ``Host`` header must name this server: its bound address, a loopback name
   (``127.0.0.1``, ``localhost``, ``::1``), a name given with ``finder serve --allow-host``, and,
   when it listens beyond loopback (``--host 0.0.0.0`` or an address of the machine), this
   machine's own names and addresses (host name, fully qualified name, every interface's
   address). A web page whose domain an attacker re-points at this machine (DNS rebinding)
   sends its own domain there, and is refused whatever address the server listens on.
2. **Token** (403): every route needs the access token printed with the URL: from the ``token``
   query parameter, else an ``Authorization: token …`` header, else the cookie set the first
   time the token came in a query. The cookie is ``HttpOnly``, ``SameSite=Strict`` and named
   after the port (cookies do not tell ports apart).
3. **Methods** (405): GET and HEAD read; POST is the only method that changes anything, and it
   must be same-origin JSON (415 otherwise): ``Content-Type: application/json`` (which a
   cross-origin page cannot send without a CORS preflight, never granted here), an ``Origin``
   header, when present, equal to this server's, and ``Sec-Fetch-Site``, when present,
   ``same-origin`` or ``none``.

Every response also gets ``Server-Timing: app;dur=…`` (the time spent in the app, for
``scripts/bench_serve.py``) and headers that keep it out of frames, referrers and sniffing.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from finder.errors import Arg, UsageError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})
READ_METHODS = frozenset({"GET", "HEAD"})
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.startswith("127.")


def cookie_name(port: int) -> str:
    return f"finder-token-{port}"


def host_name(header: str) -> str:
    """``example.org:8765`` → ``example.org``; ``[::1]:8765`` → ``::1``; lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def machine_names() -> frozenset[str]:
    """This machine's names and addresses, as a ``Host`` header names them (lower case, IPv6
    without brackets or zone): its host name, its fully qualified name, every address of every
    network interface, and the loopback names."""
    import socket

    import psutil

    names = set(LOOPBACK_NAMES)
    names.add(socket.gethostname().lower())
    names.add(socket.getfqdn().lower())
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                names.add(a.address.split("%")[0].lower())
    names.discard("")
    return frozenset(names)


def allowed_host(name: str) -> str:
    """A name given with ``--allow-host``, as ``Host`` headers are compared (``host_name``);
    ``UsageError`` for one that names no host."""
    shown = host_name(name)
    if not shown or any(c.isspace() or c in "/@?#" for c in shown):
        raise UsageError(Arg("allow_host"), f" takes a host name or address, not {name!r}")
    return shown


class Guard:
    """The middleware: ``Guard(app, token=, port=, host=, allow_hosts=)``; ``host`` is the
    bound address, ``allow_hosts`` more names the ``Host`` header may give (``--allow-host``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        port: int,
        host: str = "127.0.0.1",
        allow_hosts: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.token = token.encode()
        self.cookie = cookie_name(port)
        bound = host_name(host)
        names = LOOPBACK_NAMES | {allowed_host(h) for h in allow_hosts}
        if not is_loopback(bound):  # reachable from elsewhere: by any name of this machine
            names |= machine_names()
        self.hosts = names | ({bound} - WILDCARD)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal, set_cookie = self._check(scope, headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                took = (time.perf_counter() - started) * 1000
                extra.append((b"server-timing", f"app;dur={took:.2f}".encode()))
                if set_cookie:
                    extra.append(
                        (
                            b"set-cookie",
                            f"{self.cookie}={self.token.decode()}; Path=/; HttpOnly; "
                            "SameSite=Strict".encode(),
                        )
                    )
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        if refusal is not None:
            status, text = refusal
            await _json_error(send_with_headers, status, text)
            return
        await self.app(scope, receive, send_with_headers)

    def _check(self, scope: Scope, headers: dict[str, str]) -> tuple[tuple[int, str] | None, bool]:
        """(refusal as (status, message) or None, whether to set the token cookie)."""
        host = headers.get("host", "")
        if host_name(host).split("%")[0] not in self.hosts:
            return (
                403,
                f"refused: the Host {host!r} is not this server's address (`finder serve "
                "--allow-host NAME` lets a name in)",
            ), False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [None])[-1]
        from_query = given is not None
        if given is None:
            auth = headers.get("authorization", "")
            if auth.lower().startswith("token "):
                given = auth[6:].strip()
        if given is None:
            jar = SimpleCookie()
            try:
                jar.load(headers.get("cookie", ""))
            except Exception:  # a malformed cookie header is no token
                jar = SimpleCookie()
            if self.cookie in jar:
                given = jar[self.cookie].value
        if given is None or not hmac.compare_digest(given.encode(), self.token):
            what = "a wrong" if given is not None else "no"
            return (
                403,
                f"refused: {what} access token; open the URL that `finder serve` printed",
            ), False
        method = scope["method"]
        if method not in READ_METHODS:
            if method != "POST":
                return (405, f"refused: method {method} is not allowed"), False
            refusal = _same_origin_json(headers, host)
            if refusal is not None:
                return refusal, False
        return None, from_query


def _same_origin_json(headers: dict[str, str], host: str) -> tuple[int, str] | None:
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return 415, "refused: a request that changes something must be JSON (application/json)"
    origin = headers.get("origin")
    if origin is not None and origin.lower() not in (f"http://{host}".lower(),):
        return 403, f"refused: a request from another origin ({origin})"
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return 403, f"refused: a {site} request"
    return None


async def _json_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
