#!/usr/bin/env bash
# Unpack Debian bookworm-backports' ngspice 46 (built with KLU) into a folder,
# beside the system's ngspice 39: nothing is installed (only the backports
# source is added to apt's list if it is missing).
#
#   bash scripts/get_ngspice46.sh [DIR]     (default DIR: /tmp/ngspice46)
#
# Then pass DIR/usr/bin/ngspice as --ngspice46 to the benchmark scripts, or run
# the tests on it as .ci/run does (NGSPICE_LIBRARY_PATH, SPICE_LIB_DIR, PATH).
# The unpacked spinit is pointed at the unpacked code models: with the system's
# (ngspice 39) code models, ngspice 46 crashes when it quits.
set -euo pipefail
dir="${1:-/tmp/ngspice46}"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
list=/etc/apt/sources.list.d/bookworm-backports.list
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" | $sudo tee "$list" >/dev/null
    $sudo apt-get update -qq
fi
mkdir -p "$dir/debs"
(cd "$dir/debs" && apt-get download ngspice/bookworm-backports libngspice0/bookworm-backports)
for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$dir"; done
sed -i "s#/usr/lib/x86_64-linux-gnu/ngspice#$dir/usr/lib/x86_64-linux-gnu/ngspice#g" \
    "$dir/usr/share/ngspice/scripts/spinit"
SPICE_LIB_DIR="$dir/usr/share/ngspice" "$dir/usr/bin/ngspice" -v | head -3
echo "ngspice 46: $dir/usr/bin/ngspice"
