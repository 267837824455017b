#!/usr/bin/env bash
# gen-certs.sh: the serving certificate of Tollgate's admission webhook without cert-manager.
#
# Writes, into OUT_DIR (default ./tollgate-webhook-certs):
#   ca.crt  ca.key    a private CA (EC P-256, valid CA_DAYS, default 1825)
#   tls.crt tls.key   the webhook's serving certificate, signed by it (valid DAYS, default 365),
#                     for tollgate-webhook.<namespace>.svc and .svc.cluster.local
#
# With --apply, also (needs kubectl and a cluster):
#   - creates or replaces the Secret tollgate-webhook-tls in the namespace;
#   - applies deploy/webhook/core (unless --no-manifests);
#   - sets caBundle of the ValidatingWebhookConfiguration tollgate-webhook to ca.crt.
#
# Usage: deploy/webhook/gen-certs.sh [--apply] [--no-manifests] [--namespace NS] [OUT_DIR]
#
# Renewal: run it again before tls.crt expires, reusing the CA (ca.key is kept when it
# exists, so caBundle stays the same); the webhook re-reads the Secret when it changes.
set -euo pipefail

NAMESPACE=tollgate-system
SERVICE=tollgate-webhook
SECRET=tollgate-webhook-tls
WEBHOOK=tollgate-webhook
APPLY=0
MANIFESTS=1
OUT_DIR=
: "${DAYS:=365}"
: "${CA_DAYS:=1825}"

while [ $# -gt 0 ]; do
	case "$1" in
	--apply) APPLY=1 ;;
	--no-manifests) MANIFESTS=0 ;;
	--namespace) NAMESPACE=${2:?--namespace needs a value}; shift ;;
	--namespace=*) NAMESPACE=${1#*=} ;;
	-h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "gen-certs.sh: unknown option $1" >&2; exit 2 ;;
	*) OUT_DIR=$1 ;;
	esac
	shift
done
OUT_DIR=${OUT_DIR:-./tollgate-webhook-certs}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) # deploy/webhook, for --apply
command -v openssl >/dev/null || { echo "gen-certs.sh: openssl not found" >&2; exit 1; }

mkdir -p "$OUT_DIR"
umask 077
cd "$OUT_DIR"

if [ ! -s ca.key ] || [ ! -s ca.crt ]; then
	openssl ecparam -name prime256v1 -genkey -noout -out ca.key
	openssl req -x509 -new -key ca.key -sha256 -days "$CA_DAYS" -subj "/CN=tollgate-webhook-ca" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out ca.crt
fi

host="$SERVICE.$NAMESPACE.svc"
openssl ecparam -name prime256v1 -genkey -noout -out tls.key.new
openssl req -new -key tls.key.new -subj "/CN=$host" -out tls.csr
cat >tls.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$host,DNS:$host.cluster.local
EXT
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days "$DAYS" \
	-extfile tls.ext -out tls.crt.new 2>/dev/null
mv tls.key.new tls.key
mv tls.crt.new tls.crt
rm -f tls.csr tls.ext ca.srl
chmod 0644 ca.crt tls.crt
openssl verify -CAfile ca.crt tls.crt >/dev/null
echo "gen-certs.sh: wrote $(pwd)/{ca.crt,ca.key,tls.crt,tls.key} for $host" >&2

if [ "$APPLY" = 0 ]; then
	cat >&2 <<MSG
Next (or run again with --apply):
  kubectl -n $NAMESPACE create secret tls $SECRET --cert=$(pwd)/tls.crt --key=$(pwd)/tls.key --dry-run=client -o yaml | kubectl apply -f -
  kubectl apply -k deploy/webhook/core
  kubectl patch validatingwebhookconfiguration $WEBHOOK --type=json \\
    -p '[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"'\$(base64 -w0 < $(pwd)/ca.crt)'"}]'
MSG
	exit 0
fi

command -v kubectl >/dev/null || { echo "gen-certs.sh: --apply needs kubectl" >&2; exit 1; }
kubectl -n "$NAMESPACE" create secret tls "$SECRET" --cert=tls.crt --key=tls.key --dry-run=client -o yaml |
	kubectl apply -f -
if [ "$MANIFESTS" = 1 ]; then
	kubectl apply -k "$here/core"
fi
ca=$(base64 <ca.crt | tr -d '\n')
kubectl patch validatingwebhookconfiguration "$WEBHOOK" --type=json \
	-p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$ca\"}]"
echo "gen-certs.sh: Secret $NAMESPACE/$SECRET and caBundle of $WEBHOOK updated" >&2
