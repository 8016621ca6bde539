# One image for the web server, both workers and beat; docker-compose.yml picks the role
# with the same bin/portal entry points that `make run` uses.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORTAL_PYTHON=python PORTAL_DATA_DIR=/data \
    DJANGO_SETTINGS_MODULE=portal.settings.production
WORKDIR /app
COPY requirements.txt requirements-node.txt ./
RUN pip install --no-cache-dir -r requirements.txt -r requirements-node.txt
COPY . .
# The film viewer's bundle (static/viewer/, as `make js` builds it); node_modules is not kept.
RUN npm ci --no-audit --no-fund --loglevel=error && node frontend/build.mjs && rm -rf node_modules
RUN useradd --create-home --uid 1000 portal && mkdir -p /data && chown portal /data
USER portal
EXPOSE 8000
CMD ["bin/portal", "web"]
