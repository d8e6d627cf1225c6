#!/usr/bin/env bash
# Makes the example certificates of the compose federation in ./certs: one
# CA (its key is thrown away) and, per operator, one certificate its NATS
# servers present on their leaf listener and as a client when they dial a
# peer (serverAuth and clientAuth). Valid for ten years. Example material,
# committed so that `docker compose up` runs as is: never reuse it; an
# operator uses its own PKI.
set -euo pipefail
cd "$(dirname "$0")/certs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/O=anfed example/CN=anfed compose federation CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$tmp/ca-key.pem" -out ca.pem
for op in a b c; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=anfed example/CN=op-$op" \
    -keyout "op-$op-key.pem" -out "$tmp/op-$op.csr"
  openssl x509 -req -in "$tmp/op-$op.csr" -CA ca.pem -CAkey "$tmp/ca-key.pem" -CAcreateserial -days 3650 -out "op-$op.pem" \
    -extfile <(printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:leaf-op-%s,DNS:nats-%s-1,DNS:nats-%s-2,DNS:nats-%s-3\n' "$op" "$op" "$op" "$op")
  chmod 0644 "op-$op-key.pem" # read by the servers' containers (example only)
done
rm -f ca.srl
