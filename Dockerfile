# portal-gateway container image.
#
# Not built on the development machine (it has no container engine); kept small and plain so
# that it is correct by reading. Build and run:
#   docker build -t portal-gateway .
#   docker run -p 8080:8080 \
#     -e PORTAL_GATEWAY_TOTP__ENCRYPTION_KEY="$(openssl rand -base64 32)" \
#     -e PORTAL_GATEWAY_UPSTREAMS__PORTAL__URL=http://backend:8081 \
#     -v gateway-data:/app/var portal-gateway
# Production settings (Redis, PostgreSQL, trusted proxies, shared key volume): docs/deployment.md.

FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # config/gateway.toml listens on loopback; in a container the port must be reachable.
    PORTAL_GATEWAY_SERVER__HOST=0.0.0.0

RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --home-dir /app --shell /usr/sbin/nologin gateway

WORKDIR /app

# The package (gateway + demo, with templates, static files and migrations as package data).
COPY pyproject.toml README.md ./
COPY gateway/ gateway/
COPY demo/ demo/
RUN pip install . && rm -rf build *.egg-info

# Relative paths in the configuration are taken from the working directory (/app):
# config/routes.toml, policies/portal.polar and policies/tests (run at every start and reload).
COPY config/ config/
COPY policies/ policies/

# data_dir ("var"): signing keys, SQLite file, SMS outbox. Mount a volume here (shared by replicas).
RUN mkdir -p /app/var && chown gateway:gateway /app/var
VOLUME ["/app/var"]

USER gateway
EXPOSE 8080 9090

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/_gateway/health', timeout=2).status == 200 else 1)"]

CMD ["portal-gateway", "serve", "--config", "/app/config/gateway.toml"]
