# Minyi: a multi-stage image. The build stage installs dependencies into a virtualenv, the assets stage
# fetches htmx from npm; the runtime stage carries only those and the source, runs as a non-root user.
# `CMD` migrates at start for a single container; docker-compose.yml runs migrations once, apart.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /srv/minyi
COPY pyproject.toml README.md ./
COPY app ./app
# Editable: the app finds alembic/ and frontend/ beside itself in /srv/minyi, in both stages.
RUN pip install -e .

# htmx from npm, pinned by frontend/package-lock.json (node_modules is never in the build context).
FROM node:20-slim AS assets
WORKDIR /frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    MINYI_HOST=0.0.0.0 MINYI_PORT=8000 MINYI_ENVIRONMENT=production
# A Chinese font for the PDF documents and charts (paper forms, records, briefs), embedded in each PDF.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk fontconfig \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 minyi
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/minyi
COPY --chown=minyi:minyi . .
COPY --from=assets --chown=minyi:minyi /frontend/node_modules ./frontend/node_modules
RUN mkdir -p data && chown minyi:minyi data
USER minyi
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["minyi", "serve", "--migrate"]
