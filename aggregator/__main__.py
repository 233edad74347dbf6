"""``python -m aggregator`` is the same program as the ``aggregator`` console script."""

from aggregator.cli import main

if __name__ == "__main__":  # not when a worker process imports the main module
    raise SystemExit(main())
