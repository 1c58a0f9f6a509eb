#!/bin/sh
# The one-shot `init` of deploy/compose.yaml: generates every certificate and secret the stack
# reads as files, under /secrets (deploy/compose/secrets on the host, git-ignored), laid out as the
# Kubernetes Secret volumes are (/var/run/openwarn/<volume>/<key> in each service's container).
# Runs in alpine with openssl; keeps whatever exists, so running it again changes nothing (delete
# deploy/compose/secrets to start afresh). Development material only: never use it in production.
set -eu

out=/secrets
days=90
services="proxy verification submission test-result portal distribution"
apk add --no-cache openssl >/dev/null

mkdir -p "$out"
cd "$out"

random() { openssl rand -hex 32; }

# file PATH CONTENT: writes CONTENT to PATH unless it exists.
file() {
  [ -e "$1" ] && return 0
  mkdir -p "$(dirname "$1")"
  printf '%s' "$2" > "$1"
}

# ca DIR CN: a CA certificate and key (ECDSA P-256).
ca() {
  [ -e "$1/ca.crt" ] && return 0
  mkdir -p "$1"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1/ca.key" -out "$1/ca.crt" -days 365 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# leaf CA_DIR OUT_DIR NAME USAGE: a certificate for DNS name NAME (and localhost) signed by the CA.
leaf() {
  [ -e "$2/tls.crt" ] && return 0
  mkdir -p "$2"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$2/tls.key" -out "$2/tls.csr" -subj "/CN=$3" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=DNS:%s,DNS:localhost\n' \
    "$4" "$3" > "$2/ext.cnf"
  openssl x509 -req -in "$2/tls.csr" -CA "$1/ca.crt" -CAkey "$1/ca.key" -CAcreateserial \
    -days "$days" -extfile "$2/ext.cnf" -out "$2/tls.crt" 2>/dev/null
  rm -f "$2/tls.csr" "$2/ext.cnf"
}

# The internal CA and each service's identity: its name, as server and as client.
ca internal-ca "OpenWarn compose internal CA"
for s in $services; do
  leaf internal-ca "$s/tls" "$s" serverAuth,clientAuth
  cp internal-ca/ca.crt "$s/tls/ca.crt"
done

# Backing services' passwords, and the URLs the services read (with the password).
file postgres/password "$(random)"
file redis/password "$(random)"
file minio/user "openwarn"
file minio/password "$(random)"
pg=$(cat postgres/password)
for s in verification submission test-result portal; do
  db=$(echo "$s" | tr - _)
  file "$s/database/url" "postgres://postgres:$pg@postgres:5432/$db"
done
redis=$(cat redis/password)
for s in proxy verification distribution; do
  file "$s/kv/url" "redis://:$redis@redis:6379"
done

# proxy: the rate-limit secret (the same on every replica).
file proxy/rate-limit/secret "$(random)"

# distribution: the package signing key (PKCS#8 PEM) with its public key for the apps, the
# padding secret, the S3 secret key (MinIO's root password here).
if [ ! -e distribution/signing/v1.pem ]; then
  mkdir -p distribution/signing
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out distribution/signing/v1.pem
  openssl pkey -in distribution/signing/v1.pem -pubout -out distribution-public-key.pem
fi
file distribution/padding/secret "$(random)"
file distribution/s3/secret-access-key "$(cat minio/password)"

# test-result's lab API: a server certificate for the labs, a lab CA and one lab's client
# certificate (lab-client/, for curl), allow-listed by fingerprint in lab.env.
leaf internal-ca test-result/lab-tls test-result serverAuth
ca lab-ca "OpenWarn compose lab CA"
mkdir -p test-result/labs
cp lab-ca/ca.crt test-result/labs/lab-cas.pem
leaf lab-ca lab-client lab-1 clientAuth
cp internal-ca/ca.crt lab-client/server-ca.crt
fingerprint=$(openssl x509 -in lab-client/tls.crt -noout -fingerprint -sha256 | cut -d= -f2)
printf 'OPENWARN_LAB_CLIENT_FINGERPRINTS=%s\n' "$fingerprint" > lab.env

# The services run as uid 65532 (deploy/Dockerfile) and read only their own directory.
for s in $services; do
  chown -R 65532:65532 "$s"
  chmod -R go-rwx "$s"
done
# Keys the host user needs (the lab client for curl; the CAs stay root's).
chmod -R a+rX lab-client distribution-public-key.pem lab.env
chmod -R go-rwx internal-ca lab-ca postgres redis minio
echo "secrets ready in deploy/compose/secrets"
