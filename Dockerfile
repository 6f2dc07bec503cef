# Greenheart on a CUDA host:
#   docker build -t greenheart .
#   docker run --init --stop-timeout 60 --gpus all -e DISCORD_TOKEN=... \
#       -v gh-models:/models -v gh-data:/app/data greenheart
# --init puts an init (tini) in front as PID 1, which forwards signals and reaps processes;
# on SIGTERM the bot stops cleanly within executor.stop_grace_s (30 s), so give `docker stop` longer than
# that (--stop-timeout) or it is killed like a crash.
# The PyPI build of torch bundles its CUDA libraries, so a slim Python base is enough;
# the host needs an NVIDIA driver and the NVIDIA container toolkit.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models

RUN useradd --create-home --uid 10001 greenheart \
    && mkdir -p /models /app/data \
    && chown greenheart:greenheart /models /app/data

WORKDIR /app
# torch (the big one, pinned like pyproject.toml) in its own layer, so editing the bot's
# code doesn't re-download it.
RUN pip install --no-cache-dir "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --no-cache-dir .
COPY config.toml ./

USER 10001
# Model weights (the Hugging Face cache) and the database with images outlive the container.
VOLUME ["/models", "/app/data"]
# Exec form: python itself gets the signal (a shell in between would swallow it).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "--config", "/app/config.toml"]
