#!/usr/bin/env bash
# Makes a cluster CA and certificates for vidnode's mutual TLS with the
# openssl command-line tool. See `make-certs.sh --help` and README, "TLS".
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/make-certs.sh [OPTIONS] DIR

Makes, in DIR (created with mode 0700 if missing):
  ca.pem, ca.key          a CA for this cluster alone (kept if present)
  NAME.pem, NAME.key      a certificate per node (--node; default: node)
                          for vidnode: TLS server and client authentication
  NAME.pem, NAME.key      a certificate per client (--client; default: client)
                          for vidctl: TLS client authentication only
Keys are EC P-256, mode 0600; certificates SHA-256, mode 0644.

Existing files are kept, never overwritten: running it again with the same
arguments changes nothing. An existing ca.pem/ca.key signs the new
certificates, so new nodes and renewed certificates join the same cluster.

Options:
  --node NAME     make a node certificate NAME.pem/NAME.key (repeatable);
                  NAME is its common name and DNS name (informational: CAF
                  checks no host names)
  --client NAME   make a client certificate NAME.pem/NAME.key (repeatable)
  --days N        validity of node and client certificates (default 365)
  --ca-days N     validity of a new CA (default 3650)
  --encrypt       encrypt node and client keys (AES-256) with the passphrase
                  in $VIDNODE_TLS_PASSPHRASE, which vidnode and vidctl read
  --force         re-issue node and client certificates that exist (new keys,
                  same CA); the CA itself is never replaced: use a new DIR
  -h, --help      show this help
EOF
}

die() {
  echo "make-certs.sh: $*" >&2
  exit 2
}

nodes=()
clients=()
days=365
ca_days=3650
encrypt=false
force=false
dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --node) [ $# -ge 2 ] || die "--node needs a NAME"; nodes+=("$2"); shift 2 ;;
    --client) [ $# -ge 2 ] || die "--client needs a NAME"; clients+=("$2"); shift 2 ;;
    --days) [ $# -ge 2 ] || die "--days needs a number"; days="$2"; shift 2 ;;
    --ca-days) [ $# -ge 2 ] || die "--ca-days needs a number"; ca_days="$2"; shift 2 ;;
    --encrypt) encrypt=true; shift ;;
    --force) force=true; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$dir" ] || die "one DIR only (got '$dir' and '$1')"; dir="$1"; shift ;;
  esac
done
[ -n "$dir" ] || { usage >&2; exit 2; }
[ ${#nodes[@]} -gt 0 ] || nodes=(node)
[ ${#clients[@]} -gt 0 ] || clients=(client)
for n in "$days" "$ca_days"; do
  [[ "$n" =~ ^[1-9][0-9]{0,4}$ ]] || die "--days and --ca-days take a whole number of days from 1 to 99999, got '$n'"
done
declare -A seen=()
for name in "${nodes[@]}" "${clients[@]}"; do
  [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]] \
    || die "'$name' is not a usable name (letters, digits, '.', '_', '-'; at most 63)"
  [ "$name" != ca ] || die "'ca' is the CA's name; choose another"
  [ -z "${seen[$name]:-}" ] || die "'$name' is given twice"
  seen[$name]=1
done
command -v openssl >/dev/null || die "the openssl command-line tool is missing (apt-get install openssl)"
if $encrypt && [ -z "${VIDNODE_TLS_PASSPHRASE:-}" ]; then
  die "--encrypt needs the passphrase in VIDNODE_TLS_PASSPHRASE"
fi

if [ ! -d "$dir" ]; then
  mkdir -p "$dir"
  chmod 0700 "$dir"
fi
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

serial() {
  echo "0x$(openssl rand -hex 16)"
}

# -- the CA -----------------------------------------------------------------
if [ -e "$dir/ca.pem" ] || [ -e "$dir/ca.key" ]; then
  [ -f "$dir/ca.pem" ] && [ -f "$dir/ca.key" ] \
    || die "$dir has one of ca.pem and ca.key but not the other; refusing to go on"
  echo "kept     $dir/ca.pem (the existing CA signs the new certificates)"
else
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$ca_days" -sha256 \
    -set_serial "$(serial)" \
    -subj "/O=vidnode/CN=vidnode cluster CA $(date -u +%Y%m%d) $(openssl rand -hex 4)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>"$work/log" \
    || { cat "$work/log" >&2; die "cannot make the CA"; }
  chmod 0600 "$dir/ca.key"
  chmod 0644 "$dir/ca.pem"
  echo "made     $dir/ca.pem, $dir/ca.key (keep ca.key offline once the certificates are made)"
fi

# -- node and client certificates ---------------------------------------------
# issue NAME USAGES: a key and a certificate signed by the CA.
issue() {
  local name="$1" usages="$2"
  local pem="$dir/$name.pem" key="$dir/$name.key"
  if [ -e "$pem" ] || [ -e "$key" ]; then
    if ! $force; then
      [ -f "$pem" ] && [ -f "$key" ] \
        || die "$dir has one of $name.pem and $name.key but not the other; --force makes both anew"
      echo "kept     $pem (exists; --force issues a new one)"
      return
    fi
  fi
  local encryption=() passin=()
  if $encrypt; then
    encryption=(-aes-256-cbc -pass env:VIDNODE_TLS_PASSPHRASE)
    passin=(-passin env:VIDNODE_TLS_PASSPHRASE)
  fi
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    "${encryption[@]}" -out "$work/$name.key" 2>"$work/log" \
    || { cat "$work/log" >&2; die "cannot make the key of $name"; }
  openssl req -new -key "$work/$name.key" "${passin[@]}" \
    -out "$work/$name.csr" -subj "/O=vidnode/CN=$name" 2>"$work/log" \
    || { cat "$work/log" >&2; die "cannot make the certificate request of $name"; }
  cat >"$work/$name.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $usages
subjectAltName = DNS:$name
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  openssl x509 -req -in "$work/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -set_serial "$(serial)" -days "$days" -sha256 -extfile "$work/$name.ext" \
    -out "$work/$name.pem" 2>"$work/log" \
    || { cat "$work/log" >&2; die "cannot sign the certificate of $name"; }
  # Moved into place only when both are made, key first.
  chmod 0600 "$work/$name.key"
  chmod 0644 "$work/$name.pem"
  mv -f "$work/$name.key" "$key"
  mv -f "$work/$name.pem" "$pem"
  echo "made     $pem, $key"
}

for name in "${nodes[@]}"; do
  issue "$name" "serverAuth, clientAuth"
done
for name in "${clients[@]}"; do
  issue "$name" "clientAuth"
done
