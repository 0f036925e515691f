#!/usr/bin/env bash
# Starts the real workbench in a virtual X display (Xvfb, software Vulkan via Mesa lavapipe),
# waits until the sample photo's reconstructions are on screen, saves a screenshot and quits.
#   tools/app-screenshot.sh OUT.png [app args...]
# Needs xvfb (xvfb-run) and mesa-vulkan-drivers; the README set-up command installs both.
set -euo pipefail
out=${1:?usage: tools/app-screenshot.sh OUT.png [app args...]}
shift
bin=${DCAE_APP_BIN:-target/release/dcae-app}
command -v xvfb-run >/dev/null || { echo "xvfb-run not found: apt-get install xvfb" >&2; exit 2; }
[ -x "$bin" ] || { echo "$bin not built: cargo build --release -p dcae-app" >&2; exit 2; }
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# X11 only: there is no Wayland compositor in Xvfb.
unset WAYLAND_DISPLAY
exec timeout 900 xvfb-run -a -s "-screen 0 1600x1000x24" \
  "$bin" --fresh --size 1600x1000 --screenshot "$out" "$@"
