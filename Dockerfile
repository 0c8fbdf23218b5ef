FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 GATEWAY_CONFIG=/etc/gateway/gateway.toml
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY openapi ./openapi
COPY plugins ./plugins
# Every plugin under plugins/, as make installs them: a new one needs no edit here.
RUN pip install --no-cache-dir . ./plugins/*/ \
    && useradd --system --uid 10001 --home-dir /var/lib/gateway --create-home gateway \
    && mkdir -p /etc/gateway && chown gateway /var/lib/gateway

USER gateway
WORKDIR /var/lib/gateway
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
ENTRYPOINT ["gateway", "serve"]
CMD ["--host", "0.0.0.0"]
