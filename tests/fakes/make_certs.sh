#!/usr/bin/env bash
# make_certs.sh DIR - test PKI for the fake API server (openssl CLI only).
#   ca.crt/ca.key                    test CA (trusted by the fake API server)
#   server.crt/server.key            server cert, SAN IP:127.0.0.1, DNS:localhost (or $SERVER_SAN,
#                                    e.g. DNS:kube.internal, for tls-server-name tests)
#   client.crt/client.key            client cert CN=rollout-test, O=system:masters
#   untrusted-ca.crt/.key            a second CA the API server does not trust
#   untrusted-client.crt/.key        client cert from that CA (-> 401 Unauthorized)
# Keys are EC P-256; everything is valid for 10 years.  Idempotent: existing
# files are kept.
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
  [ -s "$1.crt" ] && return 0
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$1.crt" 2>/dev/null
}

leaf() { # name ca subject extensions
  [ -s "$1.crt" ] && return 0
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$3" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -sha256 -days 3650 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=rollout-test-ca"
leaf server ca "/CN=kube-apiserver" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=${SERVER_SAN:-IP:127.0.0.1,DNS:localhost}"
leaf client ca "/O=system:masters/CN=rollout-test" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
ca untrusted-ca "/CN=rollout-untrusted-ca"
leaf untrusted-client untrusted-ca "/O=system:masters/CN=intruder" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
rm -f ./*.srl
chmod 644 ./*.crt
echo "certificates in $dir"
