#!/usr/bin/env python3
"""End-to-end latency of Switchboard at a constant event rate.

Sends Salesforce trigger payloads (one new high-priority case each) to a running `switchboard serve` at a fixed
rate, open loop (latency is measured from each event's scheduled send time, so a slow server cannot hide its
queueing), and runs the recording sink that receives the resulting createIncident actions. Prints p50/p90/p99/max
latency from scheduled send to the action's arrival at the sink, and the server's memory over time: resident (VmRSS)
and the live heap (the server's `switchboard_heap_in_use_bytes` gauge).

Usage: latency.py --target http://127.0.0.1:PORT --sink-port PORT --rate 1000 --seconds 30 [--pid PID]
"""
import argparse, asyncio, json, os, sys, time, urllib.request


def salesforce_id(n):
    head = "500300" + format(n, "09d")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i in range(5):
            if head[chunk * 5 + i].isupper():
                bits |= 1 << i
        suffix += alphabet[bits]
    return head + suffix


def payload(n):
    rid = salesforce_id(n)
    rec = {"attributes": {"type": "Case"}, "Id": rid, "Priority": "High", "CaseNumber": format(n, "08d")}
    return json.dumps({"object": "Case", "isInsert": True, "old": None, "new": {rid: rec}}).encode()


async def read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = await reader.readexactly(length) if length else b""
    return body


async def sink(reader, writer, scheduled, latencies):
    try:
        while True:
            body = await read_request(reader)
            now = time.perf_counter()
            try:
                record = json.loads(body).get("record")
            except Exception:
                record = None
            if record in scheduled and record not in latencies:
                latencies[record] = now - scheduled[record]
            reply = b'{"incident":"Q' + str(len(latencies)).encode() + b'"}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(reply)).encode() + b"\r\n\r\n" + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError, asyncio.CancelledError):
        pass


async def sender(host, port, jobs, scheduled, start, errors):
    reader, writer = await asyncio.open_connection(host, port)
    while True:
        item = await jobs.get()
        if item is None:
            break
        n, at = item
        delay = start + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        body = payload(n)
        scheduled[salesforce_id(n)] = start + at
        writer.write(b"POST /webhooks/salesforce HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await reader.readexactly(length)
        if status >= 300:
            errors.append(status)
    writer.close()


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return None


def heap_in_use(target):
    try:
        with urllib.request.urlopen(target + "/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("switchboard_heap_in_use_bytes "):
                    return round(float(line.split()[1]) / 1048576, 1)
    except OSError:
        return None


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--sink-port", type=int, required=True)
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--pid", type=int)
    p.add_argument("--offset", type=int, default=0, help="first case number (distinct runs need distinct cases)")
    a = p.parse_args()
    host, port = a.target.split("//")[1].split(":")
    scheduled, latencies, errors = {}, {}, []
    server = await asyncio.start_server(lambda r, w: sink(r, w, scheduled, latencies), "127.0.0.1", a.sink_port)
    total = int(a.rate * a.seconds)
    jobs = asyncio.Queue()
    for i in range(total):
        jobs.put_nowait((a.offset + i, i / a.rate))
    for _ in range(a.connections):
        jobs.put_nowait(None)
    start = time.perf_counter() + 0.5
    memory = []

    async def sample():
        while True:
            if a.pid:
                memory.append((round(time.perf_counter() - start), rss(a.pid), await asyncio.to_thread(heap_in_use, a.target)))
            await asyncio.sleep(max(1.0, a.seconds / 20))

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*[sender(host, int(port), jobs, scheduled, start, errors) for _ in range(a.connections)])
    sent_done = time.perf_counter()
    deadline = time.perf_counter() + 60
    while len(latencies) < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    sampler.cancel()
    server.close()
    values = sorted(latencies.values())
    def pct(q):
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")
    achieved = total / (sent_done - start)
    print(f"events sent: {total} at {a.rate:.0f}/s target ({achieved:.0f}/s achieved), refused: {len(errors)}, actions received: {len(values)}")
    print(f"latency ms (scheduled send -> action at sink): p50 {pct(0.50):.1f}  p90 {pct(0.90):.1f}  p99 {pct(0.99):.1f}  max {values[-1]*1000 if values else float('nan'):.1f}")
    if memory:
        print("server RSS MiB over time (s, MiB): " + ", ".join(f"{t}:{m}" for t, m, _ in memory))
        print("server live heap MiB over time (s, MiB): " + ", ".join(f"{t}:{h}" for t, _, h in memory))


asyncio.run(main())
