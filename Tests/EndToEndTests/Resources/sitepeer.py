"""An independent MyCHIPs site peer for chipsite's end-to-end tests.

Written against ../shared/protocol.md with PyPI `noiseprotocol` (Noise) and
PyNaCl (Ed25519, X25519 conversion), sharing no code with chipsite. It talks
to a running `chipsite serve` over TCP and prints one JSON line of results.

usage:
  sitepeer.py interop HOST PORT SERVER_AGENT INVITER_CUID TOKEN [STATE_FILE]
      First contact with I and the token; the server offers a tally (T); we
      sign and send open (T); the server answers open (T). Then a new
      connection with N+K, open again, and the answer again.
  sitepeer.py healthy HOST PORT SERVER_AGENT STATE_FILE SECONDS
      With the identity interop saved in STATE_FILE: N+K, then open/answer
      round trips for SECONDS; reports their count and p50/p99 latency.
  sitepeer.py hostile HOST PORT CASE SERVER_AGENT SRC
      One attack; reports whether the server closed, how fast, and how many
      bytes it sent back (must be 0).
  sitepeer.py flood HOST PORT COUNT SRC
      COUNT connections at once from SRC; reports how many were closed at
      once by the rate limit.
  sitepeer.py forged-offer PORT SERVER_DB
      Acts as an inviting site: accepts chipsite's I, answers A, then sends an
      offer whose signature does not verify. Prints its agent for the ticket.
"""
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time
import uuid

import nacl.bindings as sodium
import nacl.signing
from noise.connection import Keypair, NoiseConnection


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def canonical(value):
    """Canonical JSON as protocol section 7: keys in UTF-16 code unit order."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(value[k]) for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


class Identity:
    def __init__(self, cuid="pyuser", site_seed=None, user_seed=None):
        self.site = nacl.signing.SigningKey(site_seed) if site_seed else nacl.signing.SigningKey.generate()
        self.user = nacl.signing.SigningKey(user_seed) if user_seed else nacl.signing.SigningKey.generate()
        self.agent = b64u(bytes(self.site.verify_key))
        sk = bytes(self.site) + bytes(self.site.verify_key)
        self.x25519 = sodium.crypto_sign_ed25519_sk_to_curve25519(sk)
        self.cuid = cuid
        self.chad = {"cuid": cuid, "agent": self.agent, "host": "127.0.0.1", "port": 1}
        self.cert = {"chad": self.chad, "type": "p", "name": "Py Thon", "date": "2026-11-24T21:00:00.000Z",
                     "public": {"kty": "OKP", "crv": "Ed25519", "x": b64u(bytes(self.user.verify_key))}}


def x25519_of(agent):
    return sodium.crypto_sign_ed25519_pk_to_curve25519(unb64u(agent))


class Channel:
    def __init__(self, sock):
        self.sock = sock
        self.noise = None

    def send_frame(self, header, body):
        self.sock.sendall(struct.pack(">I", 1 + len(body)) + header + body)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("closed")
            buf += chunk
        return buf

    def recv_frame(self):
        (n,) = struct.unpack(">I", self.recv_exact(4))
        data = self.recv_exact(n)
        return data[:1], data[1:]

    def send_json(self, obj):
        self.send_frame(b"T", self.noise.encrypt(canonical(obj).encode()))

    def recv_json(self):
        header, body = self.recv_frame()
        assert header == b"T", header
        return json.loads(self.noise.decrypt(body))


def connect(host, port, src="127.0.0.1", timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect((host, port))
    return s


def first_contact(me, host, port, server_agent, ticket_message):
    ch = Channel(connect(host, port))
    n = NoiseConnection.from_name(b"Noise_IK_25519_ChaChaPoly_BLAKE2b")
    n.set_as_initiator()
    n.set_keypair_from_private_bytes(Keypair.STATIC, me.x25519)
    n.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, x25519_of(server_agent))
    n.start_handshake()
    ch.send_frame(b"I", n.write_message(canonical(ticket_message).encode()))
    header, body = ch.recv_frame()
    assert header == b"A", header
    n.read_message(body)
    assert n.handshake_finished
    ch.noise = n
    return ch


def later_contact(me, host, port, server_agent, src="127.0.0.1"):
    ch = Channel(connect(host, port, src))
    rs = x25519_of(server_agent)
    n1 = NoiseConnection.from_name(b"Noise_N_25519_ChaChaPoly_BLAKE2b")
    n1.set_as_initiator()
    n1.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, rs)
    n1.start_handshake()
    ch.send_frame(b"N", n1.write_message(json.dumps(me.agent).encode()))
    kk = NoiseConnection.from_name(b"Noise_KK_25519_ChaChaPoly_BLAKE2b")
    kk.set_as_initiator()
    kk.set_keypair_from_private_bytes(Keypair.STATIC, me.x25519)
    kk.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, rs)
    kk.start_handshake()
    ch.send_frame(b"K", kk.write_message(b""))
    header, body = ch.recv_frame()
    assert header == b"A", header
    kk.read_message(body)
    ch.noise = kk
    return ch


def sign_open(me, offer):
    obj = dict(offer["object"])
    sign = dict(obj.pop("sign"))
    core = canonical(obj).encode()
    assert sign["hash"] == b64u(hashlib.sha256(core).digest()), "offer hash"
    my_side = "foil" if obj["foil"]["cert"]["chad"]["agent"] == me.agent else "stock"
    other = "stock" if my_side == "foil" else "foil"
    other_key = unb64u(obj[other]["cert"]["public"]["x"])
    nacl.signing.VerifyKey(other_key).verify(core, unb64u(sign[other]))
    sign[my_side] = b64u(me.user.sign(core).signature)
    obj["sign"] = sign
    return {"target": "tally", "action": "open", "to": offer["from"], "from": offer["to"], "object": obj}


def interop(host, port, server_agent, inviter, token, state_file=None):
    me = Identity()
    inviter_chad = {"cuid": inviter, "agent": server_agent, "host": host, "port": port}
    ticket = {"target": "tally", "action": "ticket", "to": inviter_chad, "from": me.chad,
              "ticket": {"token": token, "cert": me.cert}}
    ch = first_contact(me, host, port, server_agent, ticket)
    offer = ch.recv_json()
    assert offer["action"] == "offer", offer
    assert offer["from"]["agent"] == server_agent and offer["to"]["agent"] == me.agent
    opened = sign_open(me, offer)
    ch.send_json(opened)
    answer = ch.recv_json()
    assert answer["action"] == "open" and answer["object"]["uuid"] == offer["object"]["uuid"], answer
    ch.sock.close()
    # Later contact: N+K, and the repeated open is answered again.
    ch = later_contact(me, host, port, server_agent)
    ch.send_json(opened)
    again = ch.recv_json()
    assert again["action"] == "open" and again["object"]["sign"] == opened["object"]["sign"], again
    exchanged = 4
    for _ in range(20):
        ch.send_json(opened)
        assert ch.recv_json()["action"] == "open"
        exchanged += 2
    ch.sock.close()
    if state_file:
        with open(state_file, "w") as f:
            json.dump({"site": bytes(me.site).hex(), "user": bytes(me.user).hex(), "opened": opened}, f)
    return {"ok": True, "uuid": offer["object"]["uuid"], "agent": me.agent, "exchanged": exchanged}


def healthy(host, port, server_agent, state_file, seconds):
    """A partner site that keeps talking: N+K, then open/answer round trips."""
    with open(state_file) as f:
        state = json.load(f)
    me = Identity(site_seed=bytes.fromhex(state["site"]), user_seed=bytes.fromhex(state["user"]))
    ch = later_contact(me, host, port, server_agent)
    times = []
    end = time.time() + seconds
    while time.time() < end:
        t0 = time.time()
        ch.send_json(state["opened"])
        assert ch.recv_json()["action"] == "open"
        times.append((time.time() - t0) * 1000)
        time.sleep(0.01)
    ch.sock.close()
    times.sort()
    return {"ok": True, "exchanges": len(times), "p50_ms": round(times[len(times) // 2], 2),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2)}


def hostile(host, port, case, server_agent, src):
    s = connect(host, port, src)
    start = time.time()
    received = b""
    try:
        if case == "len0":
            s.sendall(struct.pack(">I", 0))
        elif case == "len16":
            s.sendall(struct.pack(">I", 16) + b"T" * 16)
        elif case == "len65537":
            s.sendall(struct.pack(">I", 65537) + b"T")
        elif case == "lenmax":
            s.sendall(struct.pack(">I", 2**32 - 1) + b"I")
        elif case == "header":
            s.sendall(struct.pack(">I", 40) + b"X" + os.urandom(39))
        elif case == "t-first":
            s.sendall(struct.pack(">I", 40) + b"T" + os.urandom(39))
        elif case == "k-first":
            s.sendall(struct.pack(">I", 49) + b"K" + os.urandom(48))
        elif case == "garbage":
            s.sendall(os.urandom(2000))
        elif case == "n-unknown":
            stranger = Identity()
            n1 = NoiseConnection.from_name(b"Noise_N_25519_ChaChaPoly_BLAKE2b")
            n1.set_as_initiator()
            n1.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, x25519_of(server_agent))
            n1.start_handshake()
            m = n1.write_message(json.dumps(stranger.agent).encode())
            s.sendall(struct.pack(">I", 1 + len(m)) + b"N" + m)
        elif case == "i-bad-token" or case.startswith("i-token:"):
            # i-token:TOKEN:CUID presents a real token (e.g. one already used).
            _, token, cuid = case.split(":") if case.startswith("i-token:") else ("", "0" * 32, "nobody")
            me = Identity()
            ticket = {"target": "tally", "action": "ticket", "to": {"cuid": cuid, "agent": server_agent, "host": host, "port": port},
                      "from": me.chad, "ticket": {"token": token, "cert": me.cert}}
            n = NoiseConnection.from_name(b"Noise_IK_25519_ChaChaPoly_BLAKE2b")
            n.set_as_initiator()
            n.set_keypair_from_private_bytes(Keypair.STATIC, me.x25519)
            n.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, x25519_of(server_agent))
            n.start_handshake()
            m = n.write_message(canonical(ticket).encode())
            s.sendall(struct.pack(">I", 1 + len(m)) + b"I" + m)
        elif case == "slowloris":
            frame = struct.pack(">I", 200) + b"I" + os.urandom(199)
            for b in frame:
                s.sendall(bytes([b]))
                time.sleep(1)
                if time.time() - start > 30:
                    break
        s.settimeout(30)
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            received += chunk
        closed = True
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    except socket.timeout:
        closed = False
    return {"case": case, "closed": closed, "seconds": round(time.time() - start, 2), "received": len(received)}


def flood(host, port, count, src, want, within=1.5):
    """Opens `count` connections, then waits until the site has closed `want`
    of them or `within` seconds passed (keep it under the site's handshake
    timeout, so that only a close at once counts)."""
    socks = []
    for _ in range(count):
        try:
            socks.append(connect(host, port, src, timeout=5))
        except OSError:
            pass
    for s in socks:
        s.setblocking(False)
    closed = set()
    end = time.time() + within
    while True:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                if s.recv(1) == b"":
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
        if len(closed) >= want or time.time() >= end:
            break
        time.sleep(0.02)
    for s in socks:
        s.close()
    return {"connected": len(socks), "closed_at_once": len(closed)}


def forged_offer(port):
    """A fake inviting site whose offer is signed by the wrong key."""
    me = Identity("issuer")
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4)
    srv.settimeout(60)
    print(json.dumps({"agent": me.agent}), flush=True)
    conn, _ = srv.accept()
    conn.settimeout(30)
    ch = Channel(conn)
    header, body = ch.recv_frame()
    assert header == b"I", header
    n = NoiseConnection.from_name(b"Noise_IK_25519_ChaChaPoly_BLAKE2b")
    n.set_as_responder()
    n.set_keypair_from_private_bytes(Keypair.STATIC, me.x25519)
    n.start_handshake()
    ticket = json.loads(n.read_message(body))
    ch.send_frame(b"A", n.write_message(b""))
    ch.noise = n
    requester = ticket["from"]
    my_cert = dict(me.cert, chad={"cuid": "issuer", "agent": me.agent, "host": "127.0.0.1", "port": port})
    core = {"version": 1, "revision": 1, "uuid": str(uuid.uuid4()), "date": "2026-11-24T21:00:00.000Z", "memo": None,
            "agree": {"domain": "mychips.org", "name": "standard", "version": 1},
            "stock": {"cert": my_cert, "terms": {}}, "foil": {"cert": ticket["ticket"]["cert"], "terms": {}}}
    raw = canonical(core).encode()
    wrong = nacl.signing.SigningKey.generate()
    sign = {"stock": b64u(wrong.sign(raw).signature), "hash": b64u(hashlib.sha256(raw).digest())}
    ch.send_json({"target": "tally", "action": "offer", "to": requester, "from": my_cert["chad"], "object": dict(core, sign=sign)})
    time.sleep(3)
    return {"sent": True}


def main():
    mode = sys.argv[1]
    if mode == "interop":
        host, port, agent, inviter, token = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
        result = interop(host, port, agent, inviter, token, sys.argv[7] if len(sys.argv) > 7 else None)
    elif mode == "healthy":
        result = healthy(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6]))
    elif mode == "hostile":
        result = hostile(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
    elif mode == "flood":
        result = flood(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
    elif mode == "forged-offer":
        result = forged_offer(int(sys.argv[2]))
    else:
        raise SystemExit("unknown mode " + mode)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
