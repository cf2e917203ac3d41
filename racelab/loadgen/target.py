"""Which server a load run may hit: loopback only, unless the user explicitly says otherwise."""

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from racelab.loadgen.errors import LoadError

LOGIN_PATH = "/auth/login/"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def login_url(self) -> str:
        return self.base_url + LOGIN_PATH

    def post_url(self, post: "FormPost") -> str:
        return self.base_url + post.path_and_query


@dataclass(frozen=True)
class FormPost:
    """What a request sends: a form to ``path?strategy=NAME``, POSTed unless ``method`` says."""

    path: str
    strategy: str
    fields: tuple[tuple[str, str], ...]
    method: str = "POST"

    @property
    def path_and_query(self) -> str:
        return f"{self.path}?{urlencode({'strategy': self.strategy})}"

    @property
    def body(self) -> str:
        return urlencode(self.fields)


def is_loopback(host: str) -> bool:
    # Names other than localhost are not resolved: a lookup would itself leave the machine.
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_target(base_url: str, *, allow_remote: bool = False) -> Target:
    """Check ``base_url`` (``http://127.0.0.1:8001``) and refuse a non-loopback host.

    A load generator pointed at someone else's server is an attack, so anything but
    127.0.0.0/8, ::1 or localhost needs ``allow_remote``.
    """
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError as error:
        raise LoadError(f"{base_url!r} is not a valid URL ({error}).") from error
    if port == 0:
        raise LoadError(f"{base_url!r} is not a valid URL (port 0 cannot be connected to).")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadError(f"{base_url!r} is not a valid base URL: give one like http://127.0.0.1:8001")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise LoadError(f"{base_url!r} has a path or query: give only the server, like http://127.0.0.1:8001")
    if not allow_remote and not is_loopback(parts.hostname):
        raise LoadError(
            f"{parts.hostname} is not a loopback address: splatter is a load generator and only "
            "targets 127.0.0.1, ::1 or localhost unless you pass --allow-remote for a server "
            "you own."
        )
    default_port = 443 if parts.scheme == "https" else 80
    return Target(scheme=parts.scheme, host=parts.hostname, port=default_port if port is None else port)
