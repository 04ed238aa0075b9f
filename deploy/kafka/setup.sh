#!/usr/bin/env bash
# docker-compose's one-shot `kafka-setup`: a SCRAM-SHA-512 user per service and the ACLs of
# deploy/kafka/acls.txt. Idempotent: adding a user or an ACL again changes nothing, and a changed
# password in .env replaces the old one on the next `docker compose up`.
#
# It runs in the broker's network namespace (`network_mode: service:kafka`) and talks to the
# broker's PLAINTEXT listener on 127.0.0.1:19094, which only processes inside that namespace can
# reach and whose (anonymous) principal is the broker's super user; every listener that other
# containers or the host reach requires SASL/SCRAM (docs/privacy.md).
#
# Environment: TOPIC_PREFIX (VERBINDING_TOPIC_PREFIX), and one password per user:
# KAFKA_ADMIN_PASSWORD, KAFKA_REGISTRATIONS_PASSWORD, KAFKA_REFERRALS_PASSWORD,
# KAFKA_METRICS_PASSWORD (letters, digits, '-' and '_' only: they go into a SCRAM config string).
set -euo pipefail

BOOTSTRAP=127.0.0.1:19094
BIN=/opt/kafka/bin
ACLS=/opt/verbinding/acls.txt
PREFIX="${TOPIC_PREFIX:-}"

die() { echo "kafka-setup: $*" >&2; exit 1; }

for name in admin registrations referrals metrics; do
    var="KAFKA_${name^^}_PASSWORD"
    password="${!var:-}"
    [[ -n $password ]] || die "$var is not set"
    [[ $password =~ ^[A-Za-z0-9_-]{16,}$ ]] || die "$var must be 16+ letters, digits, '-' or '_'"
    "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter \
        --entity-type users --entity-name "verbinding-$name" \
        --add-config "SCRAM-SHA-512=[iterations=8192,password=$password]" >/dev/null
    echo "kafka-setup: user verbinding-$name"
done

while read -r user operation resource name _; do
    [[ -z $user || $user == \#* ]] && continue
    case $resource in
        topic) target=(--topic "$PREFIX$name") ;;
        group) target=(--group "$name") ;;
        *) die "unknown resource $resource in $ACLS" ;;
    esac
    "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --add --force \
        --allow-principal "User:$user" --operation "$operation" "${target[@]}" >/dev/null
    echo "kafka-setup: $user may $operation $resource ${target[1]}"
done <"$ACLS"
