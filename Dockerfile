FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY processors processors
COPY schemas schemas
COPY localkafka localkafka
COPY sync sync
COPY config config
RUN pip install --no-cache-dir .
