"""A few bytes of the gdb remote protocol for the tests' raw clients."""


def packet(payload):
    """'$payload#checksum' (no escaping: the tests send plain text)."""
    data = payload.encode()
    return b"$" + data + b"#" + f"{sum(data) % 256:02x}".encode()


def recv_until(sock, marker, timeout=30):
    """Reads until `marker` arrives (or the peer closes); returns all read."""
    data = b""
    sock.settimeout(timeout)
    while marker not in data:
        more = sock.recv(4096)
        if not more:
            break
        data += more
    return data
