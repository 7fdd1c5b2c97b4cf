# scratch-serve: the inference service with the committed weights baked in.
#   docker build -t scratch-serve . && docker run -p 8000:8000 scratch-serve            # full: keras + scratch
#   docker build --target slim -t scratch-serve:slim .                                    # TF-free: scratch only
# The base is a build argument: any image with Python 3.10+ whose `python`/`pip` are on PATH and that has
# `useradd` (here, with no Docker Hub: deploy/build_images.sh builds a Debian one and passes BASE_IMAGE).
ARG BASE_IMAGE=python:3.11-slim
# The compiled kernel (scratch_models/inference/_kernels.c) is built into a wheel in an image with a C compiler
# and the Python headers, of the same Python as BASE_IMAGE; the run-time images get the wheel, not the compiler.
ARG BUILDER_IMAGE=python:3.11

# The run-time requirements, read from pyproject.toml ([project] dependencies; + the keras extra): a change
# elsewhere in pyproject.toml (dev, train extras) gives the same files, so the install layers stay cached.
FROM ${BASE_IMAGE} AS requirements
COPY pyproject.toml /tmp/
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; \
own = lambda reqs: [r for r in reqs if not r.startswith(p['name'])]; \
open('/tmp/requirements-slim.txt', 'w').write('\n'.join(own(p['dependencies'])) + '\n'); \
open('/tmp/requirements-keras.txt', 'w').write('\n'.join(own(p.get('optional-dependencies', {}).get('keras', []))) + '\n')"

# The package as a wheel, with the compiled kernel (setup.py; pip fetches setuptools for the build).
FROM ${BUILDER_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY scratch_models/ scratch_models/
COPY service/ service/
RUN pip wheel --no-deps --wheel-dir /wheels . && python -c "import glob, zipfile; \
names = zipfile.ZipFile(glob.glob('/wheels/*.whl')[0]).namelist(); \
assert any('inference/_kernels' in n for n in names), 'the wheel has no compiled kernel'"

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

# The dependencies first (from the requirements stage), so that a change of the code rebuilds only the last
# layers; each target then installs the package's wheel (no dependencies) and adds the weights.
COPY --from=requirements /tmp/requirements-slim.txt /tmp/requirements-keras.txt /tmp/

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-m", "service.healthcheck"]
CMD ["python", "-m", "service"]

# TF-free: the base install (NumPy engine, the scratch backend only).
FROM base AS slim
RUN pip install -r /tmp/requirements-slim.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
COPY weights/ weights/
RUN chown -R root:root /app && chmod -R a+rX /app
USER app

# Both backends: TensorFlow/Keras from the `keras` extra. The last stage: what a plain `docker build` makes.
FROM base AS full
RUN pip install -r /tmp/requirements-slim.txt -r /tmp/requirements-keras.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
COPY weights/ weights/
RUN chown -R root:root /app && chmod -R a+rX /app
USER app
