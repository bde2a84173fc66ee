"""Interop peer for chipsite's Noise tests, driven over stdin/stdout.

Frames are a 4-byte big-endian length followed by that many bytes, in both
directions. The script follows the same fixed script as the Swift side
(NoiseInteropTests.swift): for each handshake round it runs a whole handshake
with the given payload sizes, sends its handshake hash as one frame, then
exchanges transport messages; at the end it sends b"done".

usage: noise_peer.py PROTOCOL initiator|responder LOCAL_PRIV|- REMOTE_PUB|- ROUNDS
  ROUNDS: rounds separated by ';', each "s0,s1,...:count" where s_i is the
  payload size of handshake message i and count the number of transport
  messages each way after it.
"""
import struct
import sys

from noise.connection import Keypair, NoiseConnection

SIZES = [0, 1, 1000, 65519]
BASE = bytes(j % 251 for j in range(65519 + 251))


def payload(n, seed):
    s = seed % 251
    return BASE[s:s + n]


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = sys.stdin.buffer.read(n - len(buf))
        if not chunk:
            raise EOFError("peer closed the pipe")
        buf += chunk
    return buf


def recv():
    (n,) = struct.unpack(">I", read_exact(4))
    return read_exact(n)


def send(data):
    sys.stdout.buffer.write(struct.pack(">I", len(data)) + bytes(data))
    sys.stdout.buffer.flush()


def expect(got, want, what):
    if bytes(got) != bytes(want):
        sys.stderr.write("mismatch in %s: got %d bytes, want %d\n" % (what, len(got), len(want)))
        sys.exit(3)


def main():
    name, role, local, remote, rounds = sys.argv[1:6]
    initiator = role == "initiator"
    one_way = name.split("_")[1] in ("N", "K", "X")
    for r, spec in enumerate(rounds.split(";")):
        hs_spec, count = spec.split(":")
        hs_sizes = [int(x) for x in hs_spec.split(",")]
        conn = NoiseConnection.from_name(name.encode())
        conn.set_as_initiator() if initiator else conn.set_as_responder()
        if local != "-":
            conn.set_keypair_from_private_bytes(Keypair.STATIC, bytes.fromhex(local))
        if remote != "-":
            conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, bytes.fromhex(remote))
        conn.set_prologue(b"")
        conn.start_handshake()
        i = 0
        while not conn.handshake_finished:
            want = payload(hs_sizes[i], 1000 * r + i)
            if (i % 2 == 0) == initiator:
                send(conn.write_message(want))
            else:
                expect(conn.read_message(recv()), want, "handshake message %d" % i)
            i += 1
        send(conn.get_handshake_hash())
        for k in range(int(count)):
            size = SIZES[k % 4]
            a, b = payload(size, 7 + k), payload(size, 8 + k)
            if initiator:
                send(conn.encrypt(a))
                if not one_way:
                    expect(conn.decrypt(recv()), b, "transport %d" % k)
            else:
                expect(conn.decrypt(recv()), a, "transport %d" % k)
                if not one_way:
                    send(conn.encrypt(b))
    send(b"done")


if __name__ == "__main__":
    main()
