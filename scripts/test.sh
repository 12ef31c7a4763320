#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, starts the real
# services the distributed tests use, and runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-venv.sh test

# Browser tests drive Debian's Chromium (a browser download by a tool is not possible here).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser tests ..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "the browser tests need /usr/bin/chromium: run 'sudo apt-get install chromium' first" >&2
    exit 1
  fi
fi

# The distributed tests need Kafka, Cassandra and MinIO: fetch (cached in
# ~/.cache/photostream/stack; the first time takes minutes) and start them here, in the
# open, and stop afterwards only the ones this run started.
backends=",${PHOTOSTREAM_TEST_BACKENDS:-embedded,distributed},"
if [[ "$backends" == *",distributed,"* ]]; then
  started=$(.venv/bin/python -c 'from stack.services import status; print(",".join(s.service for s in status() if s.state != "running"))')
  .venv/bin/photostream stack up
  if [ -n "$started" ] && [ -z "${PHOTOSTREAM_KEEP_STACK:-}" ]; then
    trap '.venv/bin/photostream stack down --only "$started" >/dev/null || true' EXIT
  fi
fi

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
exit $status
