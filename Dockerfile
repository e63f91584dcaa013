# The image the PyTorchJob pods run: csl with its locked dependencies, as a non-root user.
# CPU wheels by default; for GPU nodes build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
FROM python:3.12-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# the code commit the registry records for encoders trained in this image:
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
ARG GIT_COMMIT=unknown
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 CSL_GIT_COMMIT=$GIT_COMMIT
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/csl
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --extra-index-url "$TORCH_INDEX" -r requirements.lock
COPY src ./src
RUN pip install --no-deps .
RUN useradd --uid 1000 --create-home csl
USER 1000
# the project (params.yaml, data, checkpoints) is mounted here by the job
WORKDIR /workspace
ENTRYPOINT []
CMD ["csl", "--help"]
