#!/usr/bin/env bash
# Installs everything the build and the tests need, skipping what is already there, so a
# fresh machine works and a warm one starts at once.
#   --minimal   only what `npm start` / `npm run build` need (no browser, no wasm-pack)
set -euo pipefail
cd "$(dirname "$0")/.."
minimal=0
[[ "${1:-}" == "--minimal" ]] && minimal=1
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf 'setup: %s\n' "$*"; }

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup first" >&2
  exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    log "adding rustup component $component"
    rustup component add "$component"
  fi
done

# The CLI must match the wasm-bindgen crate in Cargo.lock exactly.
want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [[ "$have" != "$want" ]]; then
  log "installing wasm-bindgen-cli $want (found '${have:-none}'); takes a few minutes"
  # Not --locked: one locked dependency version is missing from the registry mirror here.
  cargo install wasm-bindgen-cli --version "=$want"
fi

# npm packages: reinstall only when the lock file changed since the last install.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund
fi

(( minimal )) && exit 0

if ! command -v wasm-pack >/dev/null; then
  log "installing wasm-pack; takes a minute or two"
  cargo install wasm-pack
fi

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v redis-server >/dev/null || need_apt+=(redis-server)
if (( ${#need_apt[@]} )); then
  log "installing ${need_apt[*]} from Debian"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
log "ready"
