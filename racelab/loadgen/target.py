"""Which server a load run may hit (loopback only, unless the user explicitly says otherwise), and
what each of its requests sends."""

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from racelab.loadgen.errors import LoadError

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# The methods Django's CSRF check lets through unchecked (RFC 9110's safe methods).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def post_url(self, post: "LoadRequest") -> str:
        return self.base_url + post.path_and_query

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` as a browser sends it in Origin: the port left out when it is
        the scheme's default, as curl, ab, Python's http.client and Locust leave it out of Host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORTS.get(self.scheme) else f":{self.port}"
        return f"{self.scheme}://{host}{port}"

    def origin_headers(self, request: "LoadRequest") -> tuple[tuple[str, str], ...]:
        """Origin and Referer for an unsafe request to an https target, unless its own headers
        give them: there Django's CSRF check refuses a request whose Origin (or, without one,
        Referer) does not match the host or settings.CSRF_TRUSTED_ORIGINS. None for plain http,
        where Django checks an Origin only when one is sent."""
        if self.scheme != "https" or request.method in SAFE_METHODS:
            return ()
        given = {name.lower() for name, _ in request.headers}
        headers = (("Origin", self.origin), ("Referer", self.origin + request.path_and_query))
        return tuple((name, value) for name, value in headers if name.lower() not in given)


@dataclass(frozen=True)
class LoadRequest:
    """What one request of a load sends: ``method`` to ``path`` (and ``query``), with a form of
    ``fields`` or, when ``json`` is given, that JSON text as its body, and ``headers`` besides the
    cookies and the CSRF token every driver adds.

    ``raw_form``, when given, is the form as the user typed it (``--data``), sent as it is: the
    order of repeated fields and each encoding (``%20`` or ``+``) reach the server unchanged.
    ``fields`` are then what it parses to, for the records of the run."""

    path: str
    fields: tuple[tuple[str, str], ...] = ()
    method: str = "POST"
    query: tuple[tuple[str, str], ...] = ()
    json: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    raw_form: str | None = None

    @property
    def path_and_query(self) -> str:
        if not self.query:
            return self.path
        return f"{self.path}{'&' if '?' in self.path else '?'}{urlencode(self.query)}"

    @property
    def content_type(self) -> str:
        return FORM if self.json is None else JSON

    @property
    def body(self) -> str:
        if self.json is not None:
            return self.json
        return urlencode(self.fields) if self.raw_form is None else self.raw_form

    @property
    def padded_body(self) -> bytes:
        """The body with one byte more that changes nothing it says (an empty form field, a JSON
        space), for drivers that hold back a last byte: an empty form is sent as "&"."""
        return (self.body + ("&" if self.json is None else " ")).encode()


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
