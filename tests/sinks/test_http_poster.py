"""The POSTing sinks' client (sinks/http.py): with ``thread=True`` (the otlp sink) a request
is sent and answered on a loop of its own, whatever the loop that asked is doing."""

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from aggregator.sinks.http import HttpPoster
from tests.conftest import DEADLINE, wait_until
from tests.helpers.nats_server import free_port
from tests.helpers.otlp_receiver import Receiver

BODY = b'{"resourceLogs": []}'


def block_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Hold this thread, and so its event loop, until ``condition()`` or ``seconds``: what a
    long turn of the main loop (a large read decoded) does to the tasks waiting in it."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def poster_threads() -> list[threading.Thread]:
    return [one for one in threading.enumerate() if one.name.startswith("http-poster:")]


async def test_a_post_goes_out_while_the_asking_loop_is_busy() -> None:
    """With ``thread=True`` the receiver has the request and the answer is back while the
    loop that asked stays blocked; without it, nothing is sent until that loop turns."""
    receiver = Receiver(free_port())
    receiver.start()
    url = f"http://127.0.0.1:{receiver.port}/v1/logs"
    try:
        own = HttpPoster(url, thread=True)
        posting = asyncio.create_task(own.post(BODY))
        await asyncio.sleep(0)  # the task hands the request to the poster's loop
        assert block_until(lambda: len(receiver.received) == 1, DEADLINE)
        answer = await posting
        assert answer.status == 200
        await own.close()
        await own.close()  # idempotent
        assert poster_threads() == []

        shared = HttpPoster(url)
        posting = asyncio.create_task(shared.post(BODY))
        await asyncio.sleep(0)
        assert not block_until(lambda: len(receiver.received) == 2, 0.3)
        assert (await posting).status == 200  # sent once the loop turns
        await shared.close()
    finally:
        receiver.stop()


async def test_a_cancelled_post_and_close_end_the_poster_s_thread() -> None:
    """A POST cancelled while the receiver takes its time is dropped, and ``close`` returns
    and ends the poster's thread."""
    receiver = Receiver(free_port(), delay=DEADLINE)
    receiver.start()
    try:
        poster = HttpPoster(f"http://127.0.0.1:{receiver.port}/v1/logs", thread=True)
        posting = asyncio.create_task(poster.post(BODY))
        await wait_until(lambda: receiver.in_flight == 1, "the request at the receiver")
        posting.cancel()
        async with asyncio.timeout(DEADLINE / 2):
            with contextlib.suppress(asyncio.CancelledError):
                await posting
            await poster.close()
        assert poster_threads() == []
    finally:
        receiver.stop()
