"""Octet-counted framing (RFC 6587)."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from aggregator.parse.framing import FramingError, OctetCountedSplitter


def frame(message: bytes) -> bytes:
    return b"%d %s" % (len(message), message)


def test_frames_with_newlines_inside() -> None:
    """A frame is one message, newlines and all; a trailing newline is dropped."""
    splitter = OctetCountedSplitter(1000)
    out = splitter.feed(frame(b"<13>1 - h a - - - two\nlines") + frame(b"next\n"))
    assert out.text == ["<13>1 - h a - - - two\nlines", "next"]
    assert out.truncated == []


def test_partial_header_and_body_wait_for_more() -> None:
    """Nothing is given until a frame is complete."""
    splitter = OctetCountedSplitter(1000)
    assert splitter.feed(b"1").text == []
    assert splitter.feed(b"1 hello").text == []
    assert splitter.pending_bytes == 5
    assert splitter.feed(b" world").text == ["hello world"]


def test_long_frame_is_cut_and_the_stream_goes_on() -> None:
    """A frame past the limit keeps its first bytes (whole code points) and is flagged."""
    splitter = OctetCountedSplitter(5)
    out = splitter.feed(frame("ab€€€".encode()) + frame(b"ok"))
    assert out.text == ["ab€", "ok"]
    assert out.truncated == [0]
    assert splitter.pending_bytes == 0


def test_bad_header_is_an_error_after_the_good_frames() -> None:
    """A header that is not a length cannot be framed past; the frames before it are kept."""
    splitter = OctetCountedSplitter(100)
    out = splitter.feed(frame(b"good") + b"hello world\n")
    assert out.text == ["good"]
    assert isinstance(splitter.error, FramingError)
    assert "expected a frame length" in str(splitter.error)
    assert splitter.feed(frame(b"ignored")).text == []
    long_header = OctetCountedSplitter(100)
    long_header.feed(b"12345678901234 x")
    assert long_header.error is not None


def test_stream_cut_inside_a_frame() -> None:
    """At the end, a frame cut short is given as it is, flagged truncated."""
    splitter = OctetCountedSplitter(100)
    splitter.feed(b"10 abc")
    final = splitter.flush()
    assert final.text == ["abc"] and final.truncated == [0]


@given(st.lists(st.binary(min_size=1, max_size=30), max_size=10), st.lists(st.integers(0, 400)))
def test_any_chunking_gives_the_same_messages(messages: list[bytes], cuts: list[int]) -> None:
    """However the stream is cut into reads, the same messages come out."""
    stream = b"".join(map(frame, messages))
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    splitter = OctetCountedSplitter(1000)
    got: list[str] = []
    for start, end in itertools.pairwise(bounds):
        got += splitter.feed(stream[start:end]).text
    expected = [m.decode("utf-8", "replace") for m in messages]
    assert got == [m[:-1] if m.endswith("\n") else m for m in expected]
