"""Images from OpenAI `image_url` content parts: data URIs, http(s) URLs and (with --image-root) files.

    policy = ImagePolicy(max_bytes=32 * 2**20, max_pixels=50_000_000, image_root=None)
    image = read_image_url(url, policy)          # PIL RGB (wizard.images), or BadRequest (HTTP 400)

The server fetches on behalf of whoever holds its API key, so it fetches nothing they could not
reach themselves (server-side request forgery):
- http(s) only. The host is resolved once; every address it resolves to must be public: loopback,
  private, link-local, carrier-grade NAT, multicast, reserved and unspecified addresses are refused
  unless --allow-private-urls (all of them) or --allow-url-network CIDR (those networks). Cloud
  metadata addresses (169.254.169.254 and kin) are refused even with --allow-private-urls; only a
  network naming them lets them through.
- The connection goes to the very address that was checked, so a second DNS answer cannot swap it
  (DNS rebinding); HTTPS still verifies the certificate against the host name. Each redirect (at
  most MAX_REDIRECTS) is checked the same way.
- --fetch-timeout seconds to connect and between reads, three times that in all; at most max_bytes,
  counted while reading (a Content-Length over it is refused unread); an answer must be 200, with an
  image (or no, or octet-stream) Content-Type, and start like an image file before Pillow sees it.
- Local files only with --image-root DIR, and only inside DIR once symlinks are resolved. A path
  that does not exist and one that is not allowed get the same message, so nobody learns which
  files exist on the server.
Everything a client can get wrong raises BadRequest (HTTP 400 with the message).
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import os
import socket
import stat
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

FETCH_TIMEOUT_S = 10.0
MAX_REDIRECTS = 3
DECODE_PIXELS = 4096 * 4096  # like `caption`: the processor resizes far below this anyway
# Cloud metadata services: AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba, Azure's wire server.
METADATA = tuple(ipaddress.ip_network(n) for n in ("169.254.169.254/32", "169.254.170.2/32", "fd00:ec2::254/128",
                                                    "100.100.100.200/32", "168.63.129.16/32"))
# Image file signatures: the content must start like one of these before Pillow is asked to decode it.
SIGNATURES = ((b"\x89PNG\r\n\x1a\n", 0), (b"\xff\xd8\xff", 0), (b"GIF87a", 0), (b"GIF89a", 0), (b"WEBP", 8),
              (b"BM", 0), (b"II*\x00", 0), (b"MM\x00*", 0), (b"ftypavif", 4), (b"ftypheic", 4), (b"ftypmif1", 4))
KINDS = "PNG, JPEG, GIF, WebP, BMP, TIFF, AVIF or HEIC"
OK_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")


class BadRequest(Exception):
    """A client error: answered with `status` and {"error": {"message": ...}}."""

    def __init__(self, message: str, status: int = 400, param: str | None = None):
        super().__init__(message)
        self.message, self.status, self.param = message, status, param


@dataclass(frozen=True)
class ImagePolicy:
    """What the server reads for a client (serve's --max-body-mb, --max-image-megapixels,
    --image-root, --allow-private-urls, --allow-url-network, --fetch-timeout)."""

    max_bytes: int = 32 * 2**20
    max_pixels: int = 50_000_000
    image_root: Path | None = None  # resolved (realpath); None: no local files
    allow_private: bool = False
    networks: tuple = field(default_factory=tuple)  # ip_network objects always allowed
    timeout_s: float = FETCH_TIMEOUT_S


def parse_networks(values) -> tuple:
    """--allow-url-network values ("10.0.0.0/8", "127.0.0.2") as ip_network objects; ValueError names a bad one."""
    out = []
    for value in values or ():
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--allow-url-network {value!r}: not an address or network (e.g. 10.0.0.0/8)") from None
    return tuple(out)


def read_image_url(url: str, policy: ImagePolicy):
    """The image at `url` as a decoded PIL RGB image."""
    if not isinstance(url, str) or not url.strip():
        raise BadRequest("image_url.url is empty", param="messages")
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url[:12] else ""
    if scheme == "data":
        raw = _data_uri(url)
    elif scheme in ("http", "https"):
        raw = fetch(url, policy)
    elif scheme in ("", "file") or len(scheme) == 1:  # a path (C: on Windows has a one-letter "scheme")
        raw = read_local(url, policy)
    else:
        raise BadRequest(f"image_url: {scheme}: URLs are not fetched (a data URI or an http(s) URL)")
    _check_signature(raw, "image_url")
    return decode_image(raw, max_pixels=policy.max_pixels)


def _data_uri(url: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise BadRequest("image_url: a data URI must look like data:image/png;base64,<base64 data>")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequest(f"image_url: the data URI's base64 is invalid ({e})") from None


def _check_signature(raw: bytes, what: str) -> None:
    if not any(raw[at:at + len(sig)] == sig for sig, at in SIGNATURES):
        raise BadRequest(f"cannot read the image: {what} is not a {KINDS} image file")


# ----------------------------------------------------------------------------- http(s)
def address_problem(address: str, policy: ImagePolicy) -> str | None:
    """None when the server may connect to `address`, else what kind of address it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    embedded = ip.ipv4_mapped or ip.sixtofour if ip.version == 6 else None
    if ip.version == 6 and ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64: an IPv4 address inside
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if embedded is not None:
        inner = address_problem(str(embedded), policy)
        return inner and f"{inner} inside an IPv6 address"
    if any(ip in net for net in policy.networks):
        return None
    if any(ip in net for net in METADATA):
        return "a cloud metadata address (refused even with --allow-private-urls; --allow-url-network names it)"
    if policy.allow_private:
        return None
    for test, kind in ((ip.is_loopback, "a loopback"), (ip.is_link_local, "a link-local"),
                       (ip.is_private, "a private"), (ip.is_multicast, "a multicast"),
                       (ip.is_unspecified, "an unspecified"), (ip.is_reserved, "a reserved"),
                       (not ip.is_global, "a non-public")):
        if test:
            return f"{kind} address"
    return None


def _resolve(host: str, port: int, policy: ImagePolicy, url: str) -> list[str]:
    """The addresses of `host`, all of them allowed (BadRequest naming the first that is not)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as e:
        raise BadRequest(f"image_url {url}: could not fetch it (cannot resolve {host}: "
                         f"{getattr(e, 'strerror', None) or e})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        problem = address_problem(address, policy)
        if problem:
            shown = host if host == address else f"{host} resolves to {address}"
            raise BadRequest(f"image_url {url}: not fetched: {shown}, {problem}; this server fetches images "
                             "from public addresses only (serve --allow-private-urls or --allow-url-network)")
    return addresses


class _Pinned(http.client.HTTPConnection):
    """An HTTP connection to `address`, whatever the host name resolves to by now."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # verifies the name


def fetch(url: str, policy: ImagePolicy) -> bytes:
    """The bytes at an http(s) URL under the policy above (redirects followed and checked)."""
    deadline = time.monotonic() + 3 * policy.timeout_s
    first = url
    for hop in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        via = "" if url == first else f" (redirected from {first})"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadRequest(f"image_url {url}{via}: not an http(s) URL with a host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise BadRequest(f"image_url {url}{via}: the port is not a number 1..65535") from None
        try:
            addresses = _resolve(parts.hostname, port, policy, url + via)
            status, location, body = _get(parts, port, addresses, policy, deadline, url + via)
        except (OSError, http.client.HTTPException) as e:
            reason = "timed out" if isinstance(e, TimeoutError) else (getattr(e, "strerror", None) or str(e)
                                                                       or type(e).__name__)
            raise BadRequest(f"image_url {url}{via}: could not fetch it ({reason})") from None
        if location is None:
            if status != 200:
                raise BadRequest(f"image_url {url}{via}: the server answered HTTP {status}")
            return body
        url = urllib.parse.urljoin(url, location)
    raise BadRequest(f"image_url {first}: more than {MAX_REDIRECTS} redirects")


def _get(parts, port: int, addresses: list[str], policy: ImagePolicy, deadline: float, shown: str):
    """(status, redirect location or None, body) from the first address that answers."""
    kind = _PinnedTLS if parts.scheme == "https" else _Pinned
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    error: Exception | None = None
    for address in addresses:
        conn = kind(parts.hostname, port, address, policy.timeout_s)
        try:
            conn.request("GET", path, headers={"User-Agent": "caption-wizard-serve", "Accept": "image/*"})
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                return resp.status, resp.getheader("Location"), b""
            if resp.status != 200:
                return resp.status, None, b""
            return 200, None, _body(resp, policy, deadline, shown)
        except ConnectionRefusedError as e:  # another address of the same host may answer
            error = e
        finally:
            conn.close()
    raise error or OSError("no address to connect to")


def _body(resp, policy: ImagePolicy, deadline: float, shown: str) -> bytes:
    limit = policy.max_bytes
    too_big = BadRequest(f"image_url {shown}: larger than {limit / 2**20:g} MiB (serve --max-body-mb)")
    ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
    if ctype and not ctype.startswith(OK_TYPES):
        raise BadRequest(f"image_url {shown}: the server sent {ctype}, not an image")
    declared = resp.getheader("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        chunk = resp.read1(64 * 1024) if hasattr(resp, "read1") else resp.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)


# ----------------------------------------------------------------------------- local files
def read_local(url: str, policy: ImagePolicy) -> bytes:
    """A file under policy.image_root (symlinks resolved first); one message for missing and not allowed."""
    if policy.image_root is None:
        raise BadRequest("image_url: this server reads no local files (a data URI or an http(s) URL; "
                         "serve --image-root DIR lets clients name files under DIR)")
    given = url
    if url.lower().startswith("file:"):
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise BadRequest(f"image_url {given}: file URLs name files on this server only (file:///PATH)")
        url = urllib.parse.unquote(parts.path)
    root = str(policy.image_root)
    unavailable = BadRequest(f"image_url {given}: no readable image file at that path under the server's "
                             "image root (paths are relative to it; serve --image-root)")
    if "\x00" in url:
        raise unavailable
    real = os.path.realpath(os.path.join(root, url))
    if os.path.commonpath([real, root]) != root:
        raise unavailable
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise unavailable from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or not _inside(fd, root):  # a folder, a device, a FIFO...
        os.close(fd)
        raise unavailable
    with os.fdopen(fd, "rb") as f:
        if st.st_size > policy.max_bytes:
            raise BadRequest(f"image_url {given}: larger than {policy.max_bytes / 2**20:g} MiB (serve --max-body-mb)")
        return f.read(policy.max_bytes + 1)[:policy.max_bytes]


def _inside(fd: int, root: str) -> bool:
    """What the open file really is (a folder renamed between the check and the open cannot move it out)."""
    try:
        actual = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc (macOS): the realpath check above stands
        return True
    return os.path.commonpath([actual, root]) == root


# ----------------------------------------------------------------------------- decoding
def decode_image(raw: bytes, *, max_pixels: int):
    """PIL RGB image by wizard.images' rules; the size is checked from the header before any pixel
    is decoded, and a huge one is shrunk while decoding (as `caption` does)."""
    from wizard.images import ImageProblem, load_rgb

    try:
        return load_rgb(raw, max_pixels=max_pixels, shrink_to=DECODE_PIXELS)
    except ImageProblem as e:
        reason = e.reason
        if reason.startswith("image too large"):
            raise BadRequest(f"{reason.replace('are decoded', 'on this server')} "
                             f"(serve --max-image-megapixels)") from None
        if reason.startswith("not a readable image"):
            raise BadRequest("cannot read the image: not an image file Pillow can open") from None
        raise BadRequest(reason) from None
