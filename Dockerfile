# photostream: one image for the API (`photostream serve`) and the workers (`photostream worker`).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY commands commands
COPY projections projections
COPY streams streams
COPY api api
COPY media media
COPY stack stack
RUN pip install . && useradd --system --home /data photostream && mkdir -p /data && chown photostream /data
USER photostream
ENV PHOTOSTREAM_DATA_DIR=/data
EXPOSE 8000
CMD ["photostream", "serve", "--host", "0.0.0.0", "--port", "8000"]
