#!/usr/bin/env bash
# The main job, offline: start a daemon of our own, make busybox from Debian's busybox-static,
# import it, list, tag, inspect, save, remove, load it back; run a container, change a file in it,
# see `ps -s` and `diff`, commit it and run the new image; build an image from examples/hello,
# rebuild it from the cache and run it; then stop the daemon and clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
WORK=$(mktemp -d /tmp/dockyard-quickstart.XXXXXX)
export DOCKYARD_HOST="unix://$WORK/exec/dockyard.sock"
export DOCKYARD_DATA_ROOT="$WORK/data"

cleanup() {
  if [ -n "${REGISTRY_PID:-}" ]; then kill "$REGISTRY_PID" 2>/dev/null || true; wait "$REGISTRY_PID" 2>/dev/null || true; fi
  if [ -s "$WORK/exec/dockyardd.pid" ]; then
    pid=$(cat "$WORK/exec/dockyardd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Show each command as one would type it: `dockyard …`, arguments single-quoted where needed.
shown() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then printf ' %s' "$1"
  else printf " '%s'" "${1//\'/\'\\\'\'}"; fi
}
step() {
  printf '\n\033[1m$ %s' "$(basename "$1")"
  for arg in "${@:2}"; do shown "$arg"; done
  printf '\033[0m\n'
  "$@"
}

echo "Dockyard quickstart (daemon state in $WORK; the first command starts the daemon)"
"$BIN/python" scripts/busybox_rootfs.py "$WORK/busybox.tar"
step "$BIN/dockyard" import -c 'CMD ["sh"]' -m "busybox from Debian's busybox-static" "$WORK/busybox.tar" busybox:latest
step "$BIN/dockyard" images
step "$BIN/dockyard" tag busybox quickstart/busybox:v1
step "$BIN/dockyard" image inspect --format '{{.Id}} {{.Os}}/{{.Architecture}} cmd={{json .Config.Cmd}} layers={{len .RootFS.Layers}}' quickstart/busybox:v1
step "$BIN/dockyard" history quickstart/busybox:v1
step "$BIN/dockyard" save -o "$WORK/saved.tar" busybox quickstart/busybox:v1
step "$BIN/dockyard" rmi busybox quickstart/busybox:v1
step "$BIN/dockyard" images
step "$BIN/dockyard" load -i "$WORK/saved.tar"
step "$BIN/dockyard" images

echo; echo "# Containers: a writable layer over the image, an isolated process tree"
step "$BIN/dockyard" run --rm --network none busybox sh -c 'echo "hello from $(hostname), pid $$"'
step "$BIN/dockyard" run -d --name web --network none busybox sh -c 'echo changed > /etc/motd; rm /bin/vi; mkdir /data; date > /data/started; exec sleep 600'
for _ in $(seq 50); do "$BIN/dockyard" exec web test -f /data/started 2>/dev/null && break; sleep 0.1; done
step "$BIN/dockyard" ps -s
step "$BIN/dockyard" diff web
step "$BIN/dockyard" exec web cat /etc/motd
step "$BIN/dockyard" commit -m "motd changed, vi gone" -c 'CMD ["cat", "/etc/motd"]' web quickstart/changed:v1
step "$BIN/dockyard" run --rm --network none quickstart/changed:v1
step "$BIN/dockyard" history quickstart/changed:v1
step "$BIN/dockyard" rm -f web

echo; echo "# Builds: a Dockerfile and its context become an image; a rebuild comes from the cache"
step "$BIN/dockyard" build -t quickstart/hello:v1 examples/hello
step "$BIN/dockyard" build -t quickstart/hello:v1 examples/hello
step "$BIN/dockyard" run --rm --network none quickstart/hello:v1

echo; echo "# Distribution: our own registry; push and pull move only the layers the other side lacks"
PORT=$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
REGISTRY=127.0.0.1:$PORT
printf '\n\033[1m$ dockyard registry serve --addr %s --root %s &\033[0m\n' "$REGISTRY" "$WORK/registry"
"$BIN/dockyard" registry serve --addr "$REGISTRY" --root "$WORK/registry" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do "$BIN/python" -c "import urllib.request; urllib.request.urlopen('http://$REGISTRY/v2/')" 2>/dev/null && break; sleep 0.1; done
step "$BIN/dockyard" tag quickstart/hello:v1 "$REGISTRY/quickstart/hello:v1"
step "$BIN/dockyard" push "$REGISTRY/quickstart/hello:v1"
step "$BIN/dockyard" rmi "$REGISTRY/quickstart/hello:v1" quickstart/hello:v1
step "$BIN/dockyard" pull "$REGISTRY/quickstart/hello:v1"
step "$BIN/dockyard" run --rm --network none "$REGISTRY/quickstart/hello:v1"
step "$BIN/dockyard" push "$REGISTRY/quickstart/hello:v1"
step "$BIN/dockyard" system df
echo
echo "quickstart: OK"
