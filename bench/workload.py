"""A production-shaped workload (issue #27): 8 files of unequal size over the same hour, each
of one kind as services write them — JSON objects of 6 to 8 keys with nested objects and the time
not always first, nginx access lines, syslog lines with a program and a pid, Python logging
with tracebacks (lines without a time of their own), logfmt — long lines and short ones.

Every line carries ``id=FILE-NUMBER``; ``expected`` is the order of those ids after an exact
merge by event time: a line without a time takes its file's previous line's, equal times go
in the order of the files given (as ``tail`` takes them), then of the lines in a file.

    python3 bench/workload.py DIRECTORY [--lines N]    # writes the files, prints their sizes
"""

import argparse
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import orjson

SIZES = [222_000, 180_000, 140_000, 120_000, 100_000, 80_000, 50_000, 28_000]
"""Lines per file at the default scale (920,000 in all), largest first."""
KINDS = [
    "api-json",
    "nginx",
    "worker-json",
    "syslog",
    "python",
    "events-json",
    "logfmt",
    "api-json",
]
"""The kind of each file, in the order of SIZES."""
SPAN_US = 3_600_000_000
"""The hour every file covers, in microseconds: busier files write more lines in it."""
ID = re.compile(rb"(?<![A-Za-z_])id=(\d+-\d+)")

WORDS = ["cache", "miss", "hit", "timeout", "db", "queue", "retry", "user", "order", "payment"]
PATHS = ["/api/v1/items", "/api/v1/orders", "/healthz", "/static/app.js", "/login", "/metrics"]
PROGRAMS = ["sshd", "CRON", "kernel", "systemd", "dockerd", "kubelet"]
AGENTS = ["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"]
LEVELS = ["info"] * 14 + ["debug"] * 3 + ["warn"] * 2 + ["error"]

Line = tuple[int, bytes]
"""A line's time (µs since the epoch; -1: none of its own) and its bytes, without the newline."""


def iso(micros: int, sep: str = "T", zone: str = "Z") -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime(f"%Y-%m-%d{sep}%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}{zone}"


def api_json(rng: random.Random, micros: int, ident: str) -> list[Line]:
    """7 or 8 keys, ``ts`` third, a nested request object; now and then a long one."""
    record: dict[str, object] = {
        "level": rng.choice(LEVELS),
        "logger": "api.handlers",
        "ts": iso(micros),
        "msg": f"request served {ident}",
        "http": {
            "method": rng.choice(["GET", "POST"]),
            "path": rng.choice(PATHS),
            "status": rng.choice([200, 200, 200, 201, 404, 500]),
        },
        "duration_ms": round(rng.random() * 80, 3),
        "user": {"id": rng.randrange(10**6), "tenant": f"t{rng.randrange(40)}"},
    }
    if rng.random() < 0.3:
        record["trace_id"] = f"{rng.getrandbits(128):032x}"
    if rng.random() < 0.02:
        record["body"] = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(200, 600)))
    return [(micros, orjson.dumps(record))]


def worker_json(rng: random.Random, micros: int, ident: str) -> list[Line]:
    """ECS-like: ``@timestamp`` first, the level nested in ``log``, 6 keys."""
    record = {
        "@timestamp": iso(micros),
        "log": {"level": rng.choice(LEVELS), "logger": "worker"},
        "message": f"job {rng.choice(WORDS)} done {ident}",
        "job": {"id": rng.randrange(10**7), "queue": rng.choice(WORDS), "attempt": 1},
        "service": {"name": "worker", "version": "2.4.1"},
        "host": {"name": "node-3"},
    }
    return [(micros, orjson.dumps(record))]


def events_json(rng: random.Random, micros: int, ident: str) -> list[Line]:
    """``time`` last, short and long lines; now and then one without a time."""
    record: dict[str, object] = {"event": rng.choice(WORDS), "ok": rng.random() < 0.9,
                                 "ref": ident, "level": rng.choice(LEVELS),
                                 "tags": [rng.choice(WORDS) for _ in range(3)]}  # fmt: skip
    if rng.random() < 0.1:
        record["payload"] = {"items": [{"sku": rng.randrange(10**5), "n": rng.randrange(9)}
                                       for _ in range(rng.randrange(5, 40))]}  # fmt: skip
    if rng.random() < 0.01:
        return [(-1, orjson.dumps(record))]
    record["time"] = iso(micros, zone="+00:00")
    return [(micros, orjson.dumps(record))]


def nginx(rng: random.Random, micros: int, ident: str) -> list[Line]:
    """The combined log format: the time in brackets, after the address, to the second."""
    seconds = micros // 1_000_000 * 1_000_000
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(seconds // 1_000_000))
    line = (
        f"10.0.{rng.randrange(256)}.{rng.randrange(256)} - - [{stamp}] "
        f'"{rng.choice(["GET", "POST"])} {rng.choice(PATHS)}?{ident} HTTP/1.1" '
        f"{rng.choice([200, 200, 304, 404, 502])} {rng.randrange(50_000)} "
        f'"-" "{rng.choice(AGENTS)}"'
    )
    return [(seconds, line.encode())]


def syslog(rng: random.Random, micros: int, ident: str) -> list[Line]:
    """BSD syslog as a file has it: no year, to the second, a program and its pid."""
    seconds = micros // 1_000_000
    moment = time.gmtime(seconds)
    stamp = time.strftime(f"%b {moment.tm_mday:2d} %H:%M:%S", moment)
    program = rng.choice(PROGRAMS)
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 14)))
    line = f"{stamp} node-3 {program}[{rng.randrange(1, 40000)}]: {words} {ident}"
    return [(seconds * 1_000_000, line.encode())]


def python_logging(rng: random.Random, micros: int, ident: str) -> list[Line]:
    """``logging``'s default format, to the millisecond; an error now and then with its
    traceback (lines without a time)."""
    millis = micros // 1000 * 1000
    stamp = iso(millis, sep=" ", zone="")[:-3].replace(".", ",")
    level = rng.choice(["INFO"] * 12 + ["WARNING", "ERROR"])
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 20)))
    lines = [(millis, f"{stamp} {level} app.service: {words} {ident}".encode())]
    if level == "ERROR" and rng.random() < 0.3:
        lines += [(-1, b"Traceback (most recent call last):")]
        lines += [(-1, f'  File "/app/service.py", line {rng.randrange(900)}, in run'.encode())]
        lines += [(-1, b"KeyError: 'order'")]
    return lines


def logfmt(rng: random.Random, micros: int, ident: str) -> list[Line]:
    """logfmt with ``time`` first, quoted values."""
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 6)))
    line = (
        f'time="{iso(micros)}" level={rng.choice(LEVELS)} msg="{words}" ref={ident} '
        f"latency={rng.random():.4f}"
    )
    return [(micros, line.encode())]


MAKERS: dict[str, Callable[[random.Random, int, str], list[Line]]] = {
    "api-json": api_json,
    "worker-json": worker_json,
    "events-json": events_json,
    "nginx": nginx,
    "syslog": syslog,
    "python": python_logging,
    "logfmt": logfmt,
}


def start_time() -> int:
    """Ten days ago, to the hour, in µs: syslog's lines have no year, and a reader takes the
    last year that puts them in the past."""
    return (int(time.time()) // 3600 - 240) * 3600 * 1_000_000


def make_files(directory: Path, lines: int = sum(SIZES)) -> tuple[list[Path], list[str]]:
    """The files (in the order to give them) and the ids of their lines in merged order."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(27)
    t0 = start_time()
    keyed: list[tuple[int, int, int, str]] = []
    paths = []
    for index, (size, kind) in enumerate(zip(SIZES, KINDS, strict=True)):
        count = max(1, size * lines // sum(SIZES))
        path = directory / f"{index}-{kind}.log"
        paths.append(path)
        step = SPAN_US // count
        micros, last, number = t0 + index, t0, 0
        with path.open("wb") as out:
            while number < count:
                micros += rng.choice((0, step // 4, step // 2, step, 2 * step, 3 * step // 2))
                made = MAKERS[kind](rng, micros, f"id={index}-{number}")
                if number == 0 and made[0][0] < 0:
                    continue  # a file's first line has a time
                for stamp, line in made:
                    if stamp >= 0:  # a time of its own; it never goes back in a file
                        last = max(stamp, last)
                    if not ID.search(line):  # a traceback's line, say
                        line += f" id={index}-{number}".encode()
                    out.write(line + b"\n")
                    keyed.append((last, index, number, f"{index}-{number}"))
                    number += 1
    keyed.sort()
    return paths, [ident for *_, ident in keyed]


def read_ids(output: Path) -> list[str]:
    """The ids in the order the output holds them."""
    with output.open("rb") as lines:
        return [match.group(1).decode() for line in lines if (match := ID.search(line))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--lines", type=int, default=sum(SIZES))
    args = parser.parse_args()
    paths, expected = make_files(args.directory, args.lines)
    for path in paths:
        size = path.stat().st_size
        count = path.read_bytes().count(b"\n")
        print(f"{path.name}: {count:,} lines, {size / 1e6:.1f} MB, {size / count:.0f} B/line")
    print(f"{len(expected):,} lines in all")


if __name__ == "__main__":
    main()
