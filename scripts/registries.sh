#!/usr/bin/env bash
# Start or stop two local registries (Debian's docker-registry, CNCF distribution 2.8) on
# 127.0.0.1: a source and a target, each with its own storage and deletes enabled.
#
#   scripts/registries.sh start [DIR]   # source on $SRC_PORT (5101), target on $DST_PORT (5102)
#   scripts/registries.sh stop  [DIR]
#
# DIR (default /var/tmp/lazyoci-registries) holds configs, data, logs and pid files.
set -euo pipefail
cmd="${1:-}"
dir="${2:-/var/tmp/lazyoci-registries}"
bin="${LAZYOCI_REGISTRY_BIN:-$(command -v docker-registry || echo /usr/bin/docker-registry)}"

start_one() {
  local name=$1 port=$2
  mkdir -p "$dir/$name/data"
  cat > "$dir/$name/config.yml" <<CFG
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: $dir/$name/data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port, secret: lazyoci-local}
CFG
  if [ -f "$dir/$name/pid" ] && kill -0 "$(cat "$dir/$name/pid")" 2>/dev/null; then
    echo "$name already running on 127.0.0.1:$port" >&2
    return
  fi
  # Another process on the port would answer the readiness check for us: refuse instead.
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: 127.0.0.1:$port is already in use by another process; stop it or pick other ports (SRC_PORT=... DST_PORT=... $0 start)" >&2
    exit 1
  fi
  nohup "$bin" serve "$dir/$name/config.yml" > "$dir/$name/registry.log" 2>&1 &
  local pid=$!
  echo "$pid" > "$dir/$name/pid"
  for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$dir/$name/pid"
      echo "error: the $name registry exited at start; see $dir/$name/registry.log:" >&2
      tail -n 3 "$dir/$name/registry.log" >&2 || true
      exit 1
    fi
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
      echo "$name registry on 127.0.0.1:$port (data in $dir/$name/data)" >&2
      return
    fi
    sleep 0.1
  done
  echo "error: the $name registry did not answer on 127.0.0.1:$port; see $dir/$name/registry.log" >&2
  exit 1
}

stop_one() {
  local name=$1
  if [ -f "$dir/$name/pid" ]; then
    kill "$(cat "$dir/$name/pid")" 2>/dev/null || true
    rm -f "$dir/$name/pid"
    echo "$name registry stopped" >&2
  fi
}

case "$cmd" in
  start) start_one source "${SRC_PORT:-5101}"; start_one target "${DST_PORT:-5102}" ;;
  stop) stop_one source; stop_one target ;;
  *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
