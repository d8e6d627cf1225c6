#!/usr/bin/env bash
# Starts the three operators of this folder as three separate anfed
# processes on loopback. Ctrl-C (or SIGTERM) stops them all, and so does the
# exit of any one of them. ANFED=/path/to/anfed runs that binary instead of
# building ./anfed from the source tree.
set -euo pipefail
cd "$(dirname "$0")"
anfed=${ANFED:-}
if [[ -z $anfed ]]; then
  go build -o ./anfed ../../cmd/anfed
  anfed=./anfed
fi
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
for op in op-a op-b op-c; do
  "$anfed" serve --config "$op.yaml" --log-format console &
  pids+=($!)
done
wait -n # the first to exit stops the others (EXIT trap)
