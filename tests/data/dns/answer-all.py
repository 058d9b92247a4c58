"""A DNS server for one test: answers every A query with 127.0.0.1, and every other query
with no records. Listens on the address and port given; prints "ready" once bound, and a
line per query (the name asked for) so the test can tell who asked."""
import socket
import struct
import sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    query, peer = sock.recvfrom(512)
    if len(query) < 12:
        continue
    # The question: labels up to the zero byte, then type and class.
    end = query.index(0, 12) + 5
    qtype = struct.unpack(">H", query[end - 4:end - 2])[0]
    labels, i = [], 12
    while query[i]:
        labels.append(query[i + 1:i + 1 + query[i]].decode())
        i += 1 + query[i]
    print("query", ".".join(labels), qtype, flush=True)
    answers = 1 if qtype == 1 else 0
    head = query[:2] + struct.pack(">HHHHH", 0x8180, 1, answers, 0, 0)
    reply = head + query[12:end]
    if answers:
        reply += struct.pack(">HHHIH4s", 0xC00C, 1, 1, 60, 4, socket.inet_aton("127.0.0.1"))
    sock.sendto(reply, peer)
