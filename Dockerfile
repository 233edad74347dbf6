# The aggregator's image: the compiled build (the per-line path through mypyc), run as a
# non-root user, `aggregator` as the entrypoint. Build it from the repository's root:
#
#     docker build -t aggregator:0.1.0 .
#     docker run --rm aggregator:0.1.0 --version
#
# examples/kubernetes/ runs it as a DaemonSet (a node's container logs) and as a sidecar.

FROM python:3.11-slim AS build
# mypyc compiles C: a compiler, and the headers the python image already has.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY aggregator ./aggregator
# A wheel for the aggregator (compiled) and for each of its dependencies.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin aggregator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels aggregator \
    && rm -rf /wheels \
    # the compiled build, or no image: a build that fell back to pure Python fails here
    && python -c "import aggregator.parse.lines as m; assert m.__file__.endswith('.so'), m.__file__" \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/aggregator
USER 10001:10001
WORKDIR /var/lib/aggregator
ENV PYTHONUNBUFFERED=1
# 8765: a websocket sink's port (/healthz, /metrics, the page) as the examples configure it.
EXPOSE 8765
ENTRYPOINT ["aggregator"]
CMD ["--help"]
