"""Safe HTTP GETs to a person-supplied Nightscout site (server-side request forgery guard).

A person types a URL; glucast's worker fetches it. Without care that lets anyone make the
worker read the cloud metadata service, the database port or an admin page on the LAN. So:

- only http and https, no user:password@ part;
- the host name is resolved here and EVERY address it resolves to must be public (not private,
  loopback, link-local, multicast, reserved, unspecified, shared 100.64/10, or an IPv6 form of
  one of those, e.g. ::ffff:127.0.0.1) unless the operator lists its network in
  GLUCAST_NIGHTSCOUT_ALLOW_NETWORKS (a LAN Nightscout; the tests' loopback server);
- the connection goes to the checked address itself (urllib3 pool on the IP, `Host` header and
  TLS SNI/certificate check against the name), so a second DNS answer cannot swap in another
  address (DNS rebinding);
- redirects are followed by hand, at most MAX_REDIRECTS, each target checked the same way;
- connect timeout, a deadline for the whole answer (a slow drip cannot hold the worker), and a
  size cap enforced while streaming (the body is never read past the cap).

urllib3 rather than requests: the pinned-IP connection with a separate TLS host name is a
first-class parameter of its connection pools (server_hostname / assert_hostname), and nothing
here needs requests' sessions or cookies.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from django.conf import settings

from observations.validation import ascii_digits

MAX_REDIRECTS = 3
USER_AGENT = "glucast-nightscout-pull/1"
# Not covered by ipaddress' is_private in every Python version: carrier-grade NAT.
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


class OutboundRefused(Exception):
    """The request was not made or its answer not used; the message says why, in words."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path_and_query: str
    address: str  # the checked IP the connection goes to


def address_refusal(address: str) -> str | None:
    """Why this IP may not be contacted, or None when it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return address_refusal(str(mapped))
        if ip.teredo:
            return "a Teredo tunnel address"
    checks = (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "an unspecified address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private address"),
    )
    for attribute, words in checks:
        if getattr(ip, attribute):
            return words
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if not ip.is_global:
        return "not a public address"
    return None


def _allowed_networks() -> list:
    networks = []
    for text in settings.GLUCAST_NIGHTSCOUT_ALLOW_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise OutboundRefused(f"GLUCAST_NIGHTSCOUT_ALLOW_NETWORKS has {text!r}, not a network.") from None
    return networks


def _operator_allows(address: str, networks: list) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return any(ip.version == net.version and ip in net for net in networks)


def check_url(url: str) -> Target:
    """Parse, resolve and check a URL; returns where to connect or raises OutboundRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"The address is not a valid URL ({exc}).") from None
    if parts.scheme not in ("http", "https"):
        raise OutboundRefused("Only http:// and https:// addresses can be used.")
    if parts.username or parts.password:
        raise OutboundRefused("Put the access token in its own field, not in the address.")
    host = parts.hostname
    if not host:
        raise OutboundRefused("The address has no host name.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OutboundRefused(f"The host name {host} could not be resolved.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OutboundRefused(f"The host name {host} has no address.")
    networks = _allowed_networks()
    for address in addresses:
        refusal = address_refusal(address)
        if refusal and not _operator_allows(address, networks):
            raise OutboundRefused(f"Refused: {host} resolves to {address}, {refusal}.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=parts.scheme, host=host, port=port, path_and_query=path, address=addresses[0])


def _pool(target: Target, *, timeout: urllib3.Timeout):
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            target.address, target.port, timeout=timeout, retries=False, maxsize=1,
            server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED",
        )
    return urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False, maxsize=1)


@dataclass
class Answer:
    status: int
    body: bytes
    url: str


def _host_header(target: Target) -> str:
    default = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == default else f"{host}:{target.port}"


def get(url: str, *, params: dict | None = None, headers: dict | None = None) -> Answer:
    """GET `url` safely (see the module doc); returns status and body (at most the size cap).

    Raises OutboundRefused for a refused address or redirect, a timeout, a connection failure
    or an oversized answer."""
    connect_s = settings.GLUCAST_NIGHTSCOUT_PULL_CONNECT_TIMEOUT_S
    read_s = settings.GLUCAST_NIGHTSCOUT_PULL_READ_TIMEOUT_S
    max_bytes = settings.GLUCAST_NIGHTSCOUT_PULL_MAX_BYTES
    deadline = time.monotonic() + connect_s + read_s
    if params:
        url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
    for _hop in range(MAX_REDIRECTS + 1):
        target = check_url(url)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OutboundRefused(f"The site did not answer within {connect_s + read_s:g} seconds.")
        timeout = urllib3.Timeout(connect=min(connect_s, remaining), read=min(read_s, remaining))
        pool = _pool(target, timeout=timeout)
        request_headers = {
            "Host": _host_header(target),
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            **(headers or {}),
        }
        try:
            response = pool.urlopen(
                "GET", target.path_and_query, headers=request_headers, redirect=False,
                preload_content=False, assert_same_host=False,
            )
            try:
                if response.status in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location")
                    if not location:
                        raise OutboundRefused(f"The site answered a redirect ({response.status}) without a target.")
                    url = urljoin(url, location)
                    continue
                body = _read_capped(response, max_bytes=max_bytes, deadline=deadline, total_s=connect_s + read_s)
                return Answer(status=response.status, body=body, url=url)
            finally:
                response.release_conn()
        except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError, socket.timeout, TimeoutError):
            raise OutboundRefused(f"The site did not answer within {connect_s + read_s:g} seconds.") from None
        except urllib3.exceptions.SSLError as exc:
            raise OutboundRefused(f"The site's TLS certificate could not be verified ({str(exc)[:120]}).") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise OutboundRefused(f"Could not connect to {target.host} ({type(exc).__name__}).") from None
        finally:
            pool.close()
    raise OutboundRefused(f"The site redirected more than {MAX_REDIRECTS} times.")


def _read_capped(response, *, max_bytes: int, deadline: float, total_s: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if ascii_digits(declared) and int(declared) > max_bytes:
        raise OutboundRefused(f"The answer is larger than {max_bytes / 1_048_576:g} MB; not read.")
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise OutboundRefused(f"The site did not answer within {total_s:g} seconds.")
        # read1: returns as soon as some bytes arrive, so the deadline is checked during a slow drip
        chunk = response.read1(64 * 1024, decode_content=True)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise OutboundRefused(f"The answer is larger than {max_bytes / 1_048_576:g} MB; not read.")
        chunks.append(chunk)
    return b"".join(chunks)
