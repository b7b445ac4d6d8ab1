# syntax=docker/dockerfile:1
# The autoscaler's image: slim, non-root, two stages.
#   build:   installs the wheel and its pinned dependencies (constraints.txt) into /opt/venv
#   runtime: the same Python base with only /opt/venv copied in; runs as uid/gid 65532
# Build and push (docs/deploy.md):  docker build -t REGISTRY/node-autoscaler:0.1.0 .
# Both stages use the same base, because the virtualenv's interpreter is the base's Python.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY autoscaler/ autoscaler/
COPY producers/ producers/
COPY providers/ providers/
RUN python -m venv /opt/venv \
 && python -m pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --constraint constraints.txt /wheels/*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="node-autoscaler" \
      org.opencontainers.image.description="Horizontal, metrics-driven autoscaler for Kubernetes node groups" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    AUTOSCALER_SERVER__HOST=0.0.0.0
COPY --from=build /opt/venv /opt/venv
# Numeric, so that Kubernetes' runAsNonRoot can check it without a passwd entry.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["autoscaler"]
CMD ["serve", "--kubernetes"]
