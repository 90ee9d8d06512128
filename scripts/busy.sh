#!/usr/bin/env bash
# Run a command (default: make test) beside two CPU-bound burners, as on a busy CI machine, and print how long it
# took. The burners are this script's own children and end with it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- make test
burners=()
for _ in 1 2; do
  # `exec` so that the pid recorded is the busy loop itself.
  bash -c 'exec python3 -c "while True: pass"' &
  burners+=($!)
done
stop() { kill "${burners[@]}" 2>/dev/null || true; wait "${burners[@]}" 2>/dev/null || true; }
trap stop EXIT
started=$(date +%s)
echo "busy: two CPU-bound processes (${burners[*]}) beside: $*"
code=0
"$@" || code=$?
echo "busy: $* exited $code after $(( $(date +%s) - started )) s, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$code"
