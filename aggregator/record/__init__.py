"""The record and its vocabulary, at the bottom of the tree: what a record holds (``record``),
its levels, how it is written (``formats``: json, text, raw) and read back (``wire``), and how
it is chosen (``filters``). Everything above may import from here; this package imports
nothing above it."""
