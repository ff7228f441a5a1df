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
# The worker listens on all interfaces, so it needs an API key at run time:
#   docker run -e FLASH_API_KEY=$(openssl rand -hex 32) -p 127.0.0.1:8000:8000 otel-flash
# (or -e FLASH_ALLOW_UNAUTHENTICATED=1 behind a gateway that authenticates); without
# either it exits with code 2 and says so. Never bake a key into the image.
EXPOSE 8000
# /ping answers 204 while the worker initialises and 200 once it serves: healthy means 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ping', timeout=2).status != 200)"]
CMD ["otel-flash", "serve", "--host", "0.0.0.0", "--port", "8000"]
