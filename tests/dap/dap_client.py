"""A Debug Adapter Protocol client (standard library only) for the tests:
starts `ttvm dap TRACE` with pipes, sends framed requests, reads framed
responses and events."""
import json
import subprocess


class DapClient:
    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.seq = 1
        self.events = []  # events read while waiting for responses, in order

    def _read(self):
        length = None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError("ttvm dap closed its output")
            line = line.decode().rstrip("\r\n")
            if line == "":
                break
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-length":
                length = int(value)
        assert length is not None, "a message without Content-Length"
        return json.loads(self.proc.stdout.read(length))

    def send(self, command, arguments=None):
        msg = {"seq": self.seq, "type": "request", "command": command}
        if arguments is not None:
            msg["arguments"] = arguments
        self.seq += 1
        body = json.dumps(msg).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return msg["seq"]

    def request(self, command, arguments=None):
        """Sends a request and returns its response (events before it are kept)."""
        seq = self.send(command, arguments)
        while True:
            m = self._read()
            if m["type"] == "event":
                self.events.append(m)
            elif m["type"] == "response" and m["request_seq"] == seq:
                return m

    def wait_event(self, name):
        for i, e in enumerate(self.events):
            if e["event"] == name:
                return self.events.pop(i)
        while True:
            m = self._read()
            if m["type"] == "event" and m["event"] == name:
                return m
            if m["type"] == "event":
                self.events.append(m)

    def close(self):
        self.proc.stdin.close()
        return self.proc.wait(timeout=30)
