# scratch-serve: the inference service with the committed weights baked in.
#   docker build -t scratch-serve . && docker run -p 8000:8000 scratch-serve
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEIGHTS_DIR=/app/weights \
    CACHE_DIR=/tmp/scratch_models-cache \
    KERAS_HOME=/tmp/keras

WORKDIR /app

# The code and its dependencies (pyproject.toml), then the weights in their own layer.
COPY pyproject.toml README.md ./
COPY scratch_models/ scratch_models/
COPY service/ service/
RUN pip install .
COPY weights/ weights/

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app && chown -R root:root /app && chmod -R a+rX /app
USER app

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, sys, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/ready', timeout=4); sys.exit(0)" || exit 1

CMD ["python", "-m", "service"]
