"""Network ingest (issue #5): TCP throughput, a stalled-output flood, and UDP at full rate.

    python3 bench/network.py [--repeat R]

1. TCP ingest: 10 connections send 100k lines each (~100 bytes, no timestamps) as fast as the
   kernel takes them; `aggregator tail tcp://… --format raw` writes to a pipe this script
   reads. lines/s is from the first byte sent to the last line read. Default codec and
   --codec raw.
2. Flood: 1000 connections send 1000 lines each while nobody reads the aggregator's stdout.
   Once every sender is held (or done), peak RSS (VmHWM) is read; then stdout is drained and
   every line must arrive.
3. UDP: one sender sends 200k datagrams as fast as it can; datagrams taken (in the output)
   and lost (dropped by the aggregator, which it reports, or by the kernel's buffer).
"""

import argparse
import asyncio
import os
import socket
import statistics
import sys
import threading
import time

from common import AGGREGATOR, table

LINE = b"x" * 90


async def start(*args: str) -> tuple[asyncio.subprocess.Process, tuple[str, int]]:
    proc = await asyncio.create_subprocess_exec(
        *AGGREGATOR, "tail", *args, "--format", "raw",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=1 << 22,
    )  # fmt: skip
    assert proc.stderr is not None
    banner = (await proc.stderr.readline()).decode().strip()
    host, port = banner.rsplit("//", 1)[1].rsplit(":", 1)
    return proc, (host, int(port))


async def count_lines(proc: asyncio.subprocess.Process, total: int) -> None:
    assert proc.stdout is not None
    seen = 0
    while seen < total:
        chunk = await proc.stdout.read(1 << 20)
        if not chunk:
            raise SystemExit(f"the aggregator ended after {seen} of {total} lines")
        seen += chunk.count(b"\n")


async def stop(proc: asyncio.subprocess.Process) -> str:
    proc.terminate()
    assert proc.stderr is not None
    _, err = await proc.communicate()
    return err.decode()


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def tcp_ingest(codec: list[str], connections: int = 10, per: int = 100_000) -> float:
    proc, address = await start("tcp://127.0.0.1:0", *codec)
    payloads = [
        b"".join(b"c%d n%d %s\n" % (c, n, LINE) for n in range(per)) for c in range(connections)
    ]

    def send(payload: bytes) -> None:
        with socket.create_connection(address) as sock:
            sock.sendall(payload)

    start_at = time.perf_counter()
    threads = [threading.Thread(target=send, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    await count_lines(proc, connections * per)
    elapsed = time.perf_counter() - start_at
    for thread in threads:
        thread.join()
    await stop(proc)
    return connections * per / elapsed


async def flood(connections: int = 1000, per: int = 1000) -> tuple[float, bool, float]:
    proc, address = await start("tcp://127.0.0.1:0", "--codec", "raw")
    writers = []
    for _ in range(connections):
        _, writer = await asyncio.open_connection(*address)
        writers.append(writer)
    payload = b"".join(b"n%d %s\n" % (n, LINE) for n in range(per))
    for writer in writers:
        writer.write(payload)
    # Wait for a steady state: nothing moves any more (the senders are held, or all they
    # sent sits in the kernel's and the aggregator's bounded buffers).
    last, steady_since, give_up = -1, time.perf_counter(), time.perf_counter() + 120
    while time.perf_counter() < give_up:
        buffered = sum(w.transport.get_write_buffer_size() for w in writers)
        if buffered != last:
            last, steady_since = buffered, time.perf_counter()
        elif time.perf_counter() - steady_since > 2:
            break
        await asyncio.sleep(0.25)
    rss = peak_rss_mib(proc.pid)
    start_at = time.perf_counter()
    drained = asyncio.gather(*(w.drain() for w in writers))
    await count_lines(proc, connections * per)
    await drained
    elapsed = time.perf_counter() - start_at
    for writer in writers:
        writer.close()
    await stop(proc)
    return rss, True, elapsed


async def udp(datagrams: int = 200_000) -> tuple[float, float, int, str]:
    proc, address = await start("udp://127.0.0.1:0", "--codec", "raw")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        start_at = time.perf_counter()
        for n in range(datagrams):
            sender.sendto(b"d%d %s" % (n, LINE), address)
        send_seconds = time.perf_counter() - start_at
    assert proc.stdout is not None
    received = 0
    try:
        async with asyncio.timeout(3):
            while chunk := await proc.stdout.read(1 << 20):
                received += chunk.count(b"\n")
                if received == datagrams:
                    break
    except TimeoutError:
        pass
    err = await stop(proc)
    reported = [line for line in err.splitlines() if "dropped" in line]
    return (
        datagrams / send_seconds,
        received / send_seconds,
        datagrams - received,
        (reported or ["none"])[0],
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name, codec in (("auto (default)", []), ("--codec raw", ["--codec", "raw"])):
        rates = [await tcp_ingest(codec) for _ in range(args.repeat)]
        rows.append(
            [f"TCP ingest, 10 connections, {name}", f"{statistics.median(rates):,.0f} lines/s"]
        )
    rss, complete, seconds = await flood()
    rows.append(["flood, 1000 connections, stdout stalled: peak RSS", f"{rss:.0f} MiB"])
    rows.append(["flood: every line arrived once stdout drained", f"{complete} ({seconds:.1f} s)"])
    sent, taken, lost, reported = await udp()
    rows.append(["UDP: generator's top rate", f"{sent:,.0f} datagrams/s"])
    rows.append(["UDP: taken while it ran", f"{taken:,.0f} datagrams/s"])
    rows.append(["UDP: lost of 200k (dropped by the aggregator / rest by the kernel)",
                 f"{lost:,} ({reported})"])  # fmt: skip
    cores, version = os.cpu_count(), sys.version.split()[0]
    print(f"median of {args.repeat} runs where repeated; {cores} cores; Python {version}")
    print(table(rows, ["measure", "value"]))


if __name__ == "__main__":
    asyncio.run(main())
