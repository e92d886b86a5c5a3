# One image for every service: worker, beat, the fake Moloco sink and the operator CLI.
#   docker build -t eventfwd .
#   docker run --rm --env-file .env eventfwd stats
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN useradd --system --create-home --home-dir /home/eventfwd --uid 10001 eventfwd \
    && install -d -o eventfwd -g eventfwd /var/lib/eventfwd /var/lib/eventfwd/beat

WORKDIR /src
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY eventfwd ./eventfwd
COPY producers ./producers
COPY worker ./worker
# The fleet's side (worker, beat, the CLI and the sink), at the versions CI tested.
RUN pip install -c constraints.txt '.[worker]' && rm -rf /src

# Run from a directory that is not the source tree, so imports come from the installed package;
# /var/lib/eventfwd/beat is where beat keeps its schedule (a volume in docker-compose.yml).
WORKDIR /var/lib/eventfwd
USER eventfwd

ENTRYPOINT ["eventfwd"]
CMD ["--help"]
