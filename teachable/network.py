"""This computer's names and addresses on the local network, read from its interfaces.

Nothing here sends a packet: the addresses come from the operating system's interface list (``psutil``) and the
names from the host's own configuration (``socket.gethostname`` and ``socket.getfqdn``).
"""

from __future__ import annotations

import ipaddress
import socket

import psutil

__all__ = ["LOOPBACK_NAMES", "lan_addresses", "host_names", "is_loopback", "is_wildcard"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def is_wildcard(host: str) -> bool:
    """Whether ``host`` means "every interface" (0.0.0.0, :: or empty)."""
    return host.strip() in WILDCARD_HOSTS


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this computer only."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _usable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # IPv6 link-local addresses need a zone (fe80::1%eth0) that neither URLs in browsers nor certificates carry.
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return False
    return not (address.version == 6 and address.is_link_local)


def lan_addresses(ipv6: bool = True) -> list[str]:
    """Addresses other computers can reach this one at: every up interface's IPv4 (then IPv6) addresses.

    Loopback, link-local IPv6 and the addresses of interfaces that are down are left out.
    """
    stats = psutil.net_if_stats()
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for interface, entries in psutil.net_if_addrs().items():
        if interface in stats and not stats[interface].isup:
            continue
        for entry in entries:
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                address = ipaddress.ip_address(entry.address.split("%")[0])
            except ValueError:
                continue
            if _usable(address) and (ipv6 or address.version == 4) and address not in found:
                found.append(address)
    found.sort(key=lambda address: address.version)  # IPv4 first; stable within a family
    return [str(address) for address in found]


def host_names() -> list[str]:
    """This computer's host name and fully qualified name, when they are more than ``localhost``."""
    names: list[str] = []
    for name in (socket.gethostname(), socket.getfqdn()):
        name = name.strip().rstrip(".").lower()
        if name and not is_loopback(name) and name not in names:
            names.append(name)
    return names
