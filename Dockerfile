# The otel-flash worker: `otel-flash serve` on port 8000.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY otel_flash ./otel_flash
RUN pip install ".[server]"

# Requests may install Python packages (and, with system_dependencies, apt packages)
# into this container at run time, which is why the worker runs as root here.
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ping', timeout=2)"]
CMD ["otel-flash", "serve", "--host", "0.0.0.0", "--port", "8000"]
