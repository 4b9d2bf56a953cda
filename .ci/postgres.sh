#!/usr/bin/env bash
# A throwaway PostgreSQL server for the search tests (and for trying --hpo_storage postgresql:// by hand).
#
#   eval "$(bash .ci/postgres.sh start)"    # starts one; exports HPO_POSTGRES_URL and HPO_POSTGRES_DIR
#   bash .ci/postgres.sh stop "$HPO_POSTGRES_DIR"
#
# Debian's postgresql package (apt-get install postgresql) provides the server; this script only runs it:
# initdb in a new temporary directory, owned by the `postgres` user when run as root (initdb refuses root),
# listening on 127.0.0.1 on a free port, password authentication over TCP (so a wrong password fails as in
# production), and a database named `optuna`. Nothing outside that directory is touched.
set -euo pipefail

bin_dir() {  # Debian keeps the server programs off PATH, in /usr/lib/postgresql/<version>/bin
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$found" ] || found=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
  [ -x "$found/initdb" ] || { echo "postgres.sh: no initdb found; apt-get install postgresql" >&2; exit 1; }
  echo "$found"
}

as_owner() {  # run a server command as the data directory's owner
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local bin dir port password
  bin=$(bin_dir)
  dir=$(mktemp -d /tmp/hpo-postgres.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
  echo "$password" > "$dir/password"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/password"
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/password" --auth-host=scram-sha-256 \
    --auth-local=trust >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  as_owner "$bin/psql" -q -h "$dir" -p "$port" -U postgres -d postgres -c "CREATE DATABASE optuna" >/dev/null
  echo "export HPO_POSTGRES_URL=postgresql://postgres:$password@127.0.0.1:$port/optuna HPO_POSTGRES_DIR=$dir"
}

stop() {
  local dir=${1:?usage: postgres.sh stop DIR}
  [ -d "$dir/data" ] && as_owner "$(bin_dir)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
