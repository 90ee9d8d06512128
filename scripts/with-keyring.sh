#!/usr/bin/env bash
# Run a command with a private, throwaway Secret Service (gnome-keyring in its own D-Bus session), for tests and
# benchmarks. The keyring lives in a temporary folder that is deleted afterwards; nothing touches the user's keyring.
set -euo pipefail
if [ "${NOIZYLAB_IN_TEST_KEYRING:-}" = 1 ]; then exec "$@"; fi
for tool in dbus-run-session gnome-keyring-daemon; do
  command -v "$tool" >/dev/null || { echo "with-keyring: $tool is missing: run .ci/run or apt-get install dbus gnome-keyring" >&2; exit 1; }
done
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export NOIZYLAB_IN_TEST_KEYRING=1 XDG_DATA_HOME="$scratch/data" XDG_CONFIG_HOME="$scratch/config" XDG_RUNTIME_DIR="$scratch/run"
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
# A bus that starts nothing on demand: otherwise a stray gnome-keyring (without our password) can win the race. Its
# limits are a desktop session bus's (/usr/share/dbus-1/session.conf): dbus-daemon's built-in ones allow 256
# connections per user, which a whole test run can reach.
cat > "$scratch/bus.conf" <<'CONF'
<busconfig><type>session</type><keep_umask/><listen>unix:tmpdir=/tmp</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
<limit name="max_incoming_bytes">1000000000</limit><limit name="max_outgoing_bytes">1000000000</limit>
<limit name="max_message_size">1000000000</limit><limit name="auth_timeout">240000</limit>
<limit name="pending_fd_timeout">150000</limit><limit name="max_completed_connections">100000</limit>
<limit name="max_incomplete_connections">10000</limit><limit name="max_connections_per_user">100000</limit>
<limit name="max_names_per_connection">50000</limit><limit name="max_match_rules_per_connection">50000</limit>
<limit name="max_replies_per_connection">50000</limit>
</busconfig>
CONF
# The daemon runs in the foreground under a keeper that starts it again should it end before the command does (it
# has died mid-run on a loaded machine: "Message recipient disconnected from message bus without replying"). The
# keyring is on disk, so a new daemon serves the same secrets; each restart is reported with the daemon's last words.
dbus-run-session --config-file="$scratch/bus.conf" -- bash -c '
  log=$XDG_RUNTIME_DIR/gnome-keyring.log
  keep() {
    while :; do
      printf "noizylab-test-keyring" | gnome-keyring-daemon --foreground --unlock --components=secrets >/dev/null 2>>"$log" &
      echo $! > "$XDG_RUNTIME_DIR/gnome-keyring.pid"
      code=0; wait $! || code=$?
      [ -e "$XDG_RUNTIME_DIR/done" ] && return
      echo "with-keyring: gnome-keyring-daemon ended (status $code) before the command did; starting it again. Its last words: $(tail -n 3 "$log" | tr "\n" " ")" >&2
      sleep 0.2
      [ -e "$XDG_RUNTIME_DIR/done" ] && return
    done
  }
  keep & keeper=$!
  export GNOME_KEYRING_CONTROL=$XDG_RUNTIME_DIR/keyring
  # The daemon takes its bus name a moment after it starts, and its default collection after that; a property read
  # in that window has made it abort (GLib: invoke_get_property_in_idle_cb: assertion failed). Wait, alone, until
  # the collection answers (10 s at most), so that the many clients of the command find it whole.
  for _ in $(seq 100); do
    dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets/aliases/default \
      org.freedesktop.DBus.Properties.Get string:org.freedesktop.Secret.Collection string:Label >/dev/null 2>&1 && break
    sleep 0.1
  done
  status=0; "$@" || status=$?
  touch "$XDG_RUNTIME_DIR/done"
  while kill -0 "$keeper" 2>/dev/null; do  # the daemon it runs now (it may be starting one at this moment)
    kill "$(cat "$XDG_RUNTIME_DIR/gnome-keyring.pid")" 2>/dev/null || true
    sleep 0.1
  done
  exit "$status"' with-keyring "$@"
