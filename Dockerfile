# QuantLens as a container: Hugging Face Spaces (sdk: docker, app_port 8501) or any container host.
# Build: docker build -t quantlens .    Run: docker run -p 8501:8501 --memory=6g quantlens
FROM python:3.11-slim

# No HF_HUB_OFFLINE here: the calculator's Hub lookup (metadata only) needs outbound HTTPS to the Hub. The compare
# worker never downloads: core/jobs/runner.py gives it HF_HUB_OFFLINE=1 and blocks its sockets.

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    HOME=/home/quantlens

RUN useradd --create-home --uid 1000 quantlens
WORKDIR /app

# CPU-only torch first (PyPI's Linux wheel would pull several GB of CUDA libraries); requirements.txt's
# torch==2.13.0 is then already satisfied by 2.13.0+cpu.
COPY requirements.txt .
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -r requirements.txt

COPY --chown=quantlens:quantlens . .
USER quantlens

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status == 200 else 1)"

CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true"]
