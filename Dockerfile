FROM python:3.11-slim

# GATEWAY_HOST and GATEWAY_PORT are `serve`'s defaults for --host and --port: every
# `docker run IMAGE [ARGS]` listens on all interfaces (ARGS replace no --host), and the
# HEALTHCHECK asks the port the gateway listens on. Another port: -e GATEWAY_PORT=9000 -p 9000:9000.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    GATEWAY_CONFIG=/etc/gateway/gateway.toml GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8080
WORKDIR /app

# The dependencies, pinned, in a layer of their own: a change to the sources reuses it.
COPY constraints.txt pyproject.toml ./
RUN python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' > requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r requirements.txt

# The gateway and every plugin under plugins/, as make installs them (a new one needs no edit
# here); what a plugin needs beyond the core's dependencies is pinned by the constraints too.
COPY README.md ./
COPY gateway ./gateway
COPY openapi ./openapi
COPY plugins ./plugins
RUN pip install --no-cache-dir -c constraints.txt . ./plugins/*/ \
    && useradd --system --uid 10001 --home-dir /var/lib/gateway --create-home gateway \
    && mkdir -p /etc/gateway && chown gateway /var/lib/gateway

USER gateway
WORKDIR /var/lib/gateway
# The store: the default store.url (sqlite:///data/gateway.db) and the sandbox's .gateway-data/
# are below this folder. Mount a named volume or a host folder writable by uid 10001 here
# (-v gateway-data:/var/lib/gateway), or every restart starts with an empty store.
VOLUME ["/var/lib/gateway"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:${GATEWAY_PORT}/healthz', timeout=2).status != 200)"
ENTRYPOINT ["gateway", "serve"]
