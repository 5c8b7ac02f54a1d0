# Minyi: a two-stage image. The build stage installs dependencies into a virtualenv; the runtime stage
# carries only that virtualenv and the source, runs as a non-root user, and migrates at start.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /srv/minyi
COPY pyproject.toml README.md ./
COPY app ./app
# Editable: the app finds alembic/ and frontend/ beside itself in /srv/minyi, in both stages.
RUN pip install -e .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    MINYI_HOST=0.0.0.0 MINYI_PORT=8000 MINYI_ENVIRONMENT=production
RUN useradd --create-home --uid 10001 minyi
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/minyi
COPY --chown=minyi:minyi . .
RUN mkdir -p data && chown minyi:minyi data
USER minyi
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["minyi", "serve", "--migrate"]
