"""An independent user-port client for chipsite's end-to-end tests.

Written from ../shared/protocol.md section 10 alone with PyPI `noiseprotocol`
(Noise) and PyNaCl (X25519), sharing no code with chipsite (the framing is
sitepeer.py's). It
talks to a running `chipsite serve` on its user port and prints one JSON line.

usage:
  userclient.py register TICKET STATE_FILE [DEVICE_NAME]
      TICKET is the user ticket's JSON text (10.2) or its link. Makes a fresh
      device key, registers in one round trip (10.3), keeps the key and the
      site's address in STATE_FILE, prints {"user","device"}.
  userclient.py pay STATE_FILE UNITS [MEMO]
      Opens a session (10.4), subscribes to events from seq 0, lists the
      user's tallies, pays UNITS on the first open one with chit.pay (a site
      custody user: the site signs), and waits for the reply and for the
      `chit` event of the payment. Prints what it saw.
  userclient.py events STATE_FILE SINCE COUNT
      Opens a session, subscribes from SINCE and prints the first COUNT
      events' seqs (a resync counts as one).
  userclient.py cross HOST PORT AGENT
      A user-protocol session handshake (prologue chipsite-user/1) sent to
      HOST:PORT (the peer port): prints how many bytes came back (must be 0).
  userclient.py pay-core STATE_FILE CORE_FILE UNITS
      One chit.pay of the chit core kept in CORE_FILE (made, on the user's
      first open tally, if the file is not there): prints the reply, or
      fails with "closed" if the session ends before it.
  userclient.py replay-register TICKET
      Registers, then sends the same IK message 1 again on a new connection:
      prints whether the second one got any byte back (it must not).
"""
import base64
import datetime
import json
import socket
import struct
import sys
import time
import urllib.parse
import uuid

import nacl.bindings as sodium
import nacl.public
from noise.connection import Keypair, NoiseConnection

# Base64url, canonical JSON and the frame codec are the independent site
# peer's (same folder): both are written from protocol.md, not from chipsite.
from sitepeer import Channel, b64u, canonical, unb64u

PROLOGUE = b"chipsite-user/1"
PATTERN = b"Noise_IK_25519_ChaChaPoly_BLAKE2b"


def parse_ticket(text):
    """The JSON form {"ticket":{…}} or the link form (10.2)."""
    text = text.strip()
    if text.startswith("{"):
        t = json.loads(text)["ticket"]
    else:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(text).query)
        t = {k: v[0] for k, v in q.items()}
        t["port"] = int(t["port"])
    return t


def site_static(agent):
    """The site's Noise static key: its agent key's X25519 conversion (10.1)."""
    return sodium.crypto_sign_ed25519_pk_to_curve25519(unb64u(agent))


class Conn(Channel):
    """Section 2's framing over one TCP connection (sitepeer's), with JSON in `T` frames."""

    def __init__(self, host, port, timeout=10):
        super().__init__(socket.create_connection((host, port), timeout=timeout))

    def send(self, obj):
        self.send_json(obj)

    def recv(self):
        return self.recv_json()


def handshake(host, port, agent, device_secret, payload):
    """IK message 1 with `payload`; returns (connection, A's payload, the I frame's body)."""
    c = Conn(host, port)
    n = NoiseConnection.from_name(PATTERN)
    n.set_as_initiator()
    n.set_prologue(PROLOGUE)
    n.set_keypair_from_private_bytes(Keypair.STATIC, device_secret)
    n.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, site_static(agent))
    n.start_handshake()
    body = n.write_message(canonical(payload).encode())
    c.send_frame(b"I", body)
    header, answer = c.recv_frame()
    assert header == b"A", header
    reply = json.loads(n.read_message(answer))
    assert n.handshake_finished
    c.noise = n
    return c, reply, body


def register(ticket_text, state_file, name="py-client"):
    t = parse_ticket(ticket_text)
    secret = nacl.public.PrivateKey.generate()
    hello = {"op": "register", "v": [1], "token": t["token"], "device": name}
    c, reply, _ = handshake(t["host"], int(t["port"]), t["agent"], bytes(secret), hello)
    c.sock.close()
    assert reply.get("ok") is True, reply
    state = {"host": t["host"], "port": int(t["port"]), "agent": t["agent"], "secret": b64u(bytes(secret)),
             "device": reply["device"], "user": reply["user"]}
    with open(state_file, "w") as f:
        json.dump(state, f)
    # The device id is the base64url of the device's X25519 public key (10.1).
    assert reply["device"] == b64u(bytes(secret.public_key)), reply
    return {"user": reply["user"], "device": reply["device"]}


def session(state_file):
    with open(state_file) as f:
        s = json.load(f)
    c, reply, _ = handshake(s["host"], s["port"], s["agent"], unb64u(s["secret"]), {"op": "session", "v": [1]})
    assert reply.get("ok") is True and reply["user"] == s["user"], reply
    return c, reply


class Client:
    """Requests by id, events kept aside in arrival order."""

    def __init__(self, conn):
        self.conn = conn
        self.events = []
        self.replies = {}
        self.n = 0

    def request(self, cmd, args=None, idem=None):
        self.n += 1
        rid = "py-%d" % self.n
        req = {"id": rid, "cmd": cmd, "args": args or {}}
        if idem:
            req["idem"] = idem
        self.conn.send(req)
        return rid

    def pump_until(self, done, timeout=20):
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("no answer in %d s" % timeout)
            self.conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
            m = self.conn.recv()
            if "event" in m:
                self.events.append(m)
            else:
                self.replies[m["id"]] = m

    def call(self, cmd, args=None, idem=None):
        rid = self.request(cmd, args, idem)
        self.pump_until(lambda: rid in self.replies)
        return self.replies[rid]


def now_text():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        "%03dZ" % (datetime.datetime.now(datetime.timezone.utc).microsecond // 1000)


def pay(state_file, units, memo=None):
    conn, grant = session(state_file)
    cl = Client(conn)
    out = {"custody": grant["custody"], "scopes": grant["scopes"]}
    ping = cl.call("ping")
    out["ping"] = ping["ok"]
    sub = cl.call("events.subscribe", {"since": 0})
    assert sub["ok"], sub
    out["latest"] = sub["data"]["seq"]
    tallies = cl.call("tally.list")
    assert tallies["ok"], tallies
    open_tallies = [t for t in tallies["data"]["items"] if t["state"] == "open"]
    assert open_tallies, tallies
    t = open_tallies[0]
    core = {"tally": t["uuid"], "by": t["side"], "type": "tran", "uuid": str(uuid.uuid4()), "date": now_text(),
            "units": units}
    if memo:
        core["memo"] = memo
    paid = cl.call("chit.pay", {"chit": core})
    out["pay"] = paid
    again = cl.call("chit.pay", {"chit": core})
    out["replayed"] = again.get("replayed", False) and again.get("data") == paid.get("data")
    cl.pump_until(lambda: any(e["event"] == "chit" and e["data"].get("uuid") == core["uuid"] for e in cl.events))
    out["seqs"] = [e["seq"] for e in cl.events]
    out["chit_event"] = True
    out["unknown"] = cl.call("no.such.cmd")["error"]["code"]
    out["other_users_tally"] = cl.call("tally.show", {"uuid": str(uuid.uuid4())})["error"]["code"]
    conn.sock.close()
    return out


def pay_core(state_file, core_file, units):
    conn, _ = session(state_file)
    cl = Client(conn)
    try:
        with open(core_file) as f:
            core = json.load(f)
    except FileNotFoundError:
        t = [t for t in cl.call("tally.list")["data"]["items"] if t["state"] == "open"][0]
        core = {"tally": t["uuid"], "by": t["side"], "type": "tran", "uuid": str(uuid.uuid4()), "date": now_text(),
                "units": units}
        with open(core_file, "w") as f:
            json.dump(core, f)
    reply = cl.call("chit.pay", {"chit": core})
    conn.sock.close()
    return reply


def events(state_file, since, count):
    conn, _ = session(state_file)
    cl = Client(conn)
    cl.call("events.subscribe", {"since": since})
    cl.pump_until(lambda: len(cl.events) >= count)
    conn.sock.close()
    return {"seqs": [e["seq"] for e in cl.events[:count]], "kinds": [e["event"] for e in cl.events[:count]]}


def replay_register(ticket_text):
    t = parse_ticket(ticket_text)
    secret = nacl.public.PrivateKey.generate()
    hello = {"op": "register", "v": [1], "token": t["token"], "device": "replayed"}
    c, reply, body = handshake(t["host"], int(t["port"]), t["agent"], bytes(secret), hello)
    c.sock.close()
    second = Conn(t["host"], int(t["port"]))
    second.send_frame(b"I", body)
    second.sock.settimeout(5)
    try:
        got = second.sock.recv(1)
    except (socket.timeout, ConnectionResetError):
        got = b""
    return {"first": reply.get("ok") is True, "second_bytes": len(got)}


def cross(host, port, agent):
    """A user-port `I` on another port: the peer protocol's empty prologue makes it fail."""
    secret = nacl.public.PrivateKey.generate()
    c = Conn(host, port)
    n = NoiseConnection.from_name(PATTERN)
    n.set_as_initiator()
    n.set_prologue(PROLOGUE)
    n.set_keypair_from_private_bytes(Keypair.STATIC, bytes(secret))
    n.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, site_static(agent))
    n.start_handshake()
    c.send_frame(b"I", n.write_message(canonical({"op": "session", "v": [1]}).encode()))
    c.sock.settimeout(5)
    try:
        got = c.sock.recv(1)
    except (socket.timeout, ConnectionResetError):
        got = b""
    return {"bytes": len(got)}


def main(argv):
    cmd = argv[1]
    if cmd == "register":
        r = register(argv[2], argv[3], argv[4] if len(argv) > 4 else "py-client")
    elif cmd == "pay":
        r = pay(argv[2], int(argv[3]), argv[4] if len(argv) > 4 else None)
    elif cmd == "pay-core":
        r = pay_core(argv[2], argv[3], int(argv[4]))
    elif cmd == "events":
        r = events(argv[2], int(argv[3]), int(argv[4]))
    elif cmd == "cross":
        r = cross(argv[2], int(argv[3]), argv[4])
    elif cmd == "replay-register":
        r = replay_register(argv[2])
    else:
        raise SystemExit(__doc__)
    print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv)
