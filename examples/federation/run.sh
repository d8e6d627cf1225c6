#!/usr/bin/env bash
# Starts the three operators of this folder as three separate anfed
# processes on loopback. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")"
go build -o ./anfed ../../cmd/anfed
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
for op in op-a op-b op-c; do
  ./anfed serve --config "$op.yaml" --log-format console &
  pids+=($!)
done
wait
