# scratch-serve: the inference service with the committed weights baked in.
#   docker build -t scratch-serve . && docker run -p 8000:8000 scratch-serve            # full: keras + scratch
#   docker build --target slim -t scratch-serve:slim .                                    # TF-free: scratch only
# The base is a build argument: any image with Python 3.10+ whose `python`/`pip` are on PATH and that has
# `useradd` (here, with no Docker Hub: deploy/build_images.sh builds a Debian one and passes BASE_IMAGE).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS base

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
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app

# The dependencies first, from pyproject.toml alone (empty packages stand in for the code), so that a change of
# the code rebuilds only the last layers; each target then installs the code itself and adds the weights.
COPY pyproject.toml README.md ./
RUN mkdir -p scratch_models service && touch scratch_models/__init__.py service/__init__.py

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-m", "service.healthcheck"]
CMD ["python", "-m", "service"]

# TF-free: the base install (NumPy engine, the scratch backend only).
FROM base AS slim
RUN pip install . && pip uninstall -y scratch-serve
COPY scratch_models/ scratch_models/
COPY service/ service/
RUN pip install --no-deps . && rm -rf build *.egg-info
COPY weights/ weights/
RUN chown -R root:root /app && chmod -R a+rX /app
USER app

# Both backends: TensorFlow/Keras from the `keras` extra. The last stage: what a plain `docker build` makes.
FROM base AS full
RUN pip install ".[keras]" && pip uninstall -y scratch-serve
COPY scratch_models/ scratch_models/
COPY service/ service/
RUN pip install --no-deps . && rm -rf build *.egg-info
COPY weights/ weights/
RUN chown -R root:root /app && chmod -R a+rX /app
USER app
