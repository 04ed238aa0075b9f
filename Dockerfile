# syntax=docker/dockerfile:1
# One image for every Verbinding process; the command picks the role:
#   verbinding serve registrations --host 0.0.0.0 --port 8001   (referrals: 8002, metrics: 8003)
#   verbinding migrate                                          (schemas and topics, then exits)
#   verbinding partner create <org-id> --name <name> --scopes <scopes>
# The healthcheck asks GET /healthz on VERBINDING_PORT, so set that to the port being served.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, at the exact versions of constraints.txt: this layer is rebuilt only when
# the dependency files change, not on every code change.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip install -c constraints.txt -r requirements.txt
COPY shared ./shared
COPY services ./services
COPY tools ./tools
RUN pip install --no-deps -c constraints.txt . \
 && verbinding --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 verbinding \
 && useradd --system --uid 10001 --gid verbinding --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin verbinding
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
EXPOSE 8001 8002 8003
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VERBINDING_PORT', '8000'), timeout=2)"]
ENTRYPOINT ["verbinding"]
CMD ["--help"]
