#!/usr/bin/env bash
# Creates gitops-guard's two Secrets once and points the webhook configurations at the CA.
# Idempotent: an existing Secret is kept as it is (never re-generated), so running this again,
# from CI or by hand, changes nothing but re-patching the same caBundle.
#
#   gitops-guard-checksum-key  the HMAC key for config checksums (64 random hex characters).
#                              A new key re-rolls every stamped workload: never re-created.
#   gitops-guard-tls           serving certificate + key and the CA (tls.crt, tls.key, ca.crt),
#                              from `gitops-guard certs`; skipped with --checksum-key-only
#                              (cert-manager issues it then).
#
# Then, for each of the MutatingWebhookConfiguration and ValidatingWebhookConfiguration named
# gitops-guard that exists and is not managed by cert-manager's CA injector, sets every
# webhook's clientConfig.caBundle to the CA in gitops-guard-tls.
#
# Usage: hack/install-certs.sh [--namespace NS] [--service NAME] [--days N] [--rotate] [--checksum-key-only]
#
#   --rotate   issue a new CA and serving certificate. caBundle then holds the new AND the old
#              CA, so the API server trusts the pods before and after they reload the new
#              certificate. Run the script again (without --rotate) a few minutes later to drop
#              the old CA.
#
# Environment: KUBECTL (default kubectl); GITOPS_GUARD, the command that runs gitops-guard
# (default: gitops-guard on PATH, else node dist/cli/main.js of this checkout, built with
# `npm ci && npm run build`).
set -euo pipefail

namespace=gitops-guard
service=gitops-guard
days=365
rotate=false
tls=true
tls_secret=gitops-guard-tls
key_secret=gitops-guard-checksum-key
configuration=gitops-guard

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "install-certs: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) namespace="${2:?--namespace needs a value}"; shift 2 ;;
    --service) service="${2:?--service needs a value}"; shift 2 ;;
    --days) days="${2:?--days needs a value}"; shift 2 ;;
    --rotate) rotate=true; shift ;;
    --checksum-key-only) tls=false; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
if [ "$rotate" = true ] && [ "$tls" = false ]; then die "--rotate and --checksum-key-only do not go together"; fi

kubectl_cmd="${KUBECTL:-kubectl}"
kube() { $kubectl_cmd "$@"; }

if [ -n "${GITOPS_GUARD:-}" ]; then
  gitops_guard="$GITOPS_GUARD"
elif command -v gitops-guard >/dev/null 2>&1; then
  gitops_guard=gitops-guard
else
  repo="$(cd "$(dirname "$0")/.." && pwd)"
  [ -f "$repo/dist/cli/main.js" ] || [ "$tls" = false ] || die "gitops-guard not found: run 'npm ci && npm run build' in $repo, or set GITOPS_GUARD"
  gitops_guard="node $repo/dist/cli/main.js"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077

b64() { base64 < "$1" | tr -d '\n'; }

if ! kube get namespace "$namespace" -o name >/dev/null 2>&1; then
  kube create namespace "$namespace" >/dev/null
  echo "created namespace $namespace"
fi

# --- checksum key: create once, never touch again -------------------------------------------
if kube -n "$namespace" get secret "$key_secret" -o name >/dev/null 2>&1; then
  echo "kept secret $namespace/$key_secret (existing checksum key)"
else
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex 32 | tr -d '\n' > "$work/checksum.key"
  else
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$work/checksum.key"
  fi
  [ "$(wc -c < "$work/checksum.key" | tr -d ' ')" = 64 ] || die "could not generate a 64-character checksum key"
  kube -n "$namespace" create secret generic "$key_secret" --from-file=checksum.key="$work/checksum.key" >/dev/null
  echo "created secret $namespace/$key_secret (new checksum key)"
fi

[ "$tls" = true ] || exit 0

# --- serving certificate --------------------------------------------------------------------
old_ca=""
if kube -n "$namespace" get secret "$tls_secret" -o name >/dev/null 2>&1; then
  old_ca="$(kube -n "$namespace" get secret "$tls_secret" -o 'jsonpath={.data.ca\.crt}')"
  [ -n "$old_ca" ] || die "secret $namespace/$tls_secret has no ca.crt (was it made by cert-manager's component or by hand?); delete it or use --checksum-key-only"
fi

generate() {
  $gitops_guard certs --service "$service" --namespace "$namespace" --days "$days" --out "$work/certs" >/dev/null
  kube -n "$namespace" create secret generic "$tls_secret" --type=kubernetes.io/tls \
    --from-file=tls.crt="$work/certs/tls.crt" --from-file=tls.key="$work/certs/tls.key" \
    --from-file=ca.crt="$work/certs/ca.crt" --dry-run=client -o json > "$work/tls-secret.json"
}

ca_bundle=""
if [ -z "$old_ca" ]; then
  generate
  kube -n "$namespace" create -f "$work/tls-secret.json" >/dev/null
  ca_bundle="$(b64 "$work/certs/ca.crt")"
  echo "created secret $namespace/$tls_secret (new CA, $days days)"
elif [ "$rotate" = true ]; then
  generate
  printf '%s' "$old_ca" | base64 -d > "$work/old-ca.crt"
  cat "$work/certs/ca.crt" "$work/old-ca.crt" > "$work/bundle.crt"
  ca_bundle="$(b64 "$work/bundle.crt")"
  rotating=true
  echo "rotating secret $namespace/$tls_secret (new CA, $days days); caBundle trusts the new and the old CA"
else
  ca_bundle="$old_ca"
  echo "kept secret $namespace/$tls_secret (existing certificate)"
fi

# --- caBundle -------------------------------------------------------------------------------
patch_ca_bundle() {
  local resource="$1" names injected ops="" i=0
  if ! names="$(kube get "$resource" "$configuration" -o 'jsonpath={.webhooks[*].name}' 2>/dev/null)"; then
    echo "$resource/$configuration not installed yet: run 'kubectl apply -k manifests/', then this script again" >&2
    return 0
  fi
  injected="$(kube get "$resource" "$configuration" -o 'jsonpath={.metadata.annotations.cert-manager\.io/inject-ca-from}')"
  if [ -n "$injected" ]; then
    echo "$resource/$configuration: caBundle is managed by cert-manager (inject-ca-from $injected); not patched" >&2
    return 0
  fi
  for _ in $names; do
    ops="$ops${ops:+,}{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$ca_bundle\"}"
    i=$((i + 1))
  done
  [ "$i" -gt 0 ] || return 0
  kube patch "$resource" "$configuration" --type=json -p "[$ops]" >/dev/null
  echo "patched caBundle of $resource/$configuration ($i webhooks)"
}

# On rotation the API server must trust the new CA before any pod serves the new certificate.
patch_ca_bundle mutatingwebhookconfiguration
patch_ca_bundle validatingwebhookconfiguration

if [ "${rotating:-false}" = true ]; then
  kube -n "$namespace" replace -f "$work/tls-secret.json" >/dev/null
  echo "replaced secret $namespace/$tls_secret; the pods reload it within a minute or two."
  echo "Then run $0 again (without --rotate) to drop the old CA from caBundle."
fi
