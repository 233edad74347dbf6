"""Line splitting: newline only, CR stripped, partial lines held, long lines cut safely."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.parse.lines import LineSplitter, cut_utf8


def split_all(chunks: list[bytes], limit: int = 1 << 20) -> tuple[list[str], list[str], list[int]]:
    """(lines, lines at flush, truncated positions) for chunks fed one after another."""
    splitter = LineSplitter(limit)
    lines: list[str] = []
    truncated: list[int] = []
    for chunk in chunks:
        part = splitter.feed(chunk)
        truncated += [len(lines) + index for index in part.truncated]
        lines += part.text
    final = splitter.flush()
    truncated += [len(lines) + index for index in final.truncated]
    return lines, final.text, truncated


def test_splits_on_newline_only() -> None:
    """Form feeds, vertical tabs and U+2028 stay inside the line (no str.splitlines)."""
    lines, rest, _ = split_all([b"a\x0cb\x0bc\xe2\x80\xa8d\nnext\n"])
    assert lines == ["a\x0cb\x0bc\u2028d", "next"]
    assert rest == []


def test_crlf_and_empty_lines() -> None:
    """One trailing CR is removed; an empty line is a line."""
    lines, _, _ = split_all([b"one\r\n\r\n\ntwo\r\r\n"])
    assert lines == ["one", "", "", "two\r"]


def test_partial_line_held_until_newline() -> None:
    """A line without its newline is not given out until the newline comes."""
    splitter = LineSplitter(100)
    assert splitter.feed(b"hel").text == []
    assert splitter.pending_bytes == 3
    assert splitter.feed(b"lo").text == []
    assert splitter.feed(b" world\nnext").text == ["hello world"]
    assert splitter.flush().text == ["next"]
    assert splitter.flush().text == []


def test_invalid_utf8_is_replaced_and_nul_kept() -> None:
    """Invalid bytes become U+FFFD; NUL and other controls stay in the line."""
    lines, _, _ = split_all([b"bad \xff\xfe here\x00\x01\n"])
    assert lines == ["bad \ufffd\ufffd here\x00\x01"]


def test_long_line_truncated_and_stream_goes_on() -> None:
    """Past the limit a line is cut and flagged; the next line is intact."""
    lines, _, truncated = split_all([b"x" * 50 + b"\nshort\n"], limit=10)
    assert lines == ["x" * 10, "short"]
    assert truncated == [0]


@pytest.mark.parametrize(
    "line",
    [b"x" * 8, "€€".encode() + b"xx"],  # 8 bytes: ASCII, and with multi-byte characters
    ids=["ascii", "utf8"],
)
@pytest.mark.parametrize(
    "how", ["one feed", "among other lines", "byte by byte", "at the end, no newline"]
)
def test_a_line_of_exactly_the_limit_is_whole_and_one_byte_more_is_truncated(
    line: bytes, how: str
) -> None:
    """A line of exactly max_line_bytes is kept whole and not flagged; one byte more is cut
    back to the limit and flagged, however the bytes arrive (SPEC §6)."""
    limit = len(line)
    for text, flagged in [(line, False), (line + b"y", True)]:
        if how == "one feed":
            chunks = [text + b"\n"]
        elif how == "among other lines":
            chunks = [b"a\n" + text + b"\nb\n"]
        elif how == "byte by byte":
            chunks = [bytes([byte]) for byte in text + b"\n"]
        else:
            chunks = [text]
        lines, rest, truncated = split_all(chunks, limit)
        got = [*lines, *rest]
        expected = line.decode()
        if how == "among other lines":
            assert got == ["a", expected, "b"], (how, text)
            assert truncated == ([1] if flagged else []), (how, text)
        else:
            assert got == [expected], (how, text)
            assert truncated == ([0] if flagged else []), (how, text)


def test_long_partial_line_bounded_while_waiting() -> None:
    """A huge line without a newline holds at most the limit in memory."""
    splitter = LineSplitter(16)
    for _ in range(100):
        splitter.feed(b"y" * 1000)
        assert splitter.pending_bytes <= 16
    out = splitter.feed(b"tail\nok\n")
    assert out.text == ["y" * 16, "ok"]
    assert out.truncated == [0]


def test_truncation_never_splits_a_code_point() -> None:
    """A cut in the middle of a multi-byte character backs off to its start."""
    euro = "€".encode()  # 3 bytes
    lines, _, truncated = split_all([euro * 4 + b"\n"], limit=7)
    assert lines == ["€€"]
    assert truncated == [0]
    assert cut_utf8(euro * 2, 4) == euro


@given(
    st.lists(st.binary(max_size=40), max_size=20),
    st.integers(min_value=1, max_value=30),
    st.data(),
)
def test_chunking_does_not_change_the_lines(
    pieces: list[bytes], limit: int, data: st.DataObject
) -> None:
    """However the same bytes are cut into chunks, the same lines come out."""
    stream = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert split_all(chunks, limit) == split_all([stream], limit)


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\n\r")), max_size=20))
def test_lines_round_trip(texts: list[str]) -> None:
    """Lines joined with newlines come back as they were (no limit reached)."""
    stream = "".join(text + "\n" for text in texts).encode("utf-8", "surrogatepass")
    if any(0xD800 <= ord(char) <= 0xDFFF for text in texts for char in text):
        return  # surrogates are not valid UTF-8 and are replaced, by design
    lines, rest, truncated = split_all([stream])
    assert lines == texts
    assert rest == []
    assert truncated == []
