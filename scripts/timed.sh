#!/usr/bin/env bash
# `timed.sh PHASE COMMAND...`: run COMMAND, then say how long it took; the exit status is COMMAND's. `make test` and
# `.ci/run` name their phases with it, so a slow run says where its time went.
set -uo pipefail
phase=$1
shift
started=$EPOCHREALTIME
"$@"
code=$?
LC_ALL=C awk -v phase="$phase" -v from="$started" -v to="$EPOCHREALTIME" -v code="$code" \
  'BEGIN { printf "timed: %s took %.0f s%s\n", phase, to - from, code ? " (failed: exit " code ")" : "" }' >&2
exit "$code"
