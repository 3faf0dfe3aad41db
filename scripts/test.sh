#!/usr/bin/env bash
# `npm test`: set up, build, then every test layer, stopping at the first failure.
# One layer alone: `bash scripts/test.sh lint|rust|wasm|js` (npm run lint, test:rust,
# test:wasm, test:js); each still sets up and builds first, which is quick when warm.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

layers=("$@")
[[ ${#layers[@]} -eq 0 ]] && layers=(lint rust wasm js)
for layer in "${layers[@]}"; do
  case "$layer" in lint | rust | wasm | js) ;; *)
    echo "test.sh: unknown layer \"$layer\"; known: lint rust wasm js" >&2
    exit 2
    ;;
  esac
done

step "setup"
# The wasm and js layers need the browser, wasm-pack and redis-server; lint and rust do not.
if [[ " ${layers[*]} " == *" wasm "* || " ${layers[*]} " == *" js "* ]]; then bash scripts/setup.sh; else bash scripts/setup.sh --minimal; fi
step "build"
bash scripts/build.sh

lint() {
  step "lint and format: cargo fmt, clippy (native and wasm32), Biome, TypeScript"
  cargo fmt --all -- --check
  cargo clippy --all-targets -- -D warnings
  cargo clippy --lib --tests --target wasm32-unknown-unknown -- -D warnings
  biome ci .
  # Node/browser sources and usage; Workers sources against workers-types.
  tsc -p tsconfig.json
  tsc -p tsconfig.workers.json
}

rust() {
  step "cargo test (native core, property tests)"
  cargo test
}

wasm() {
  step "wasm-bindgen tests in Node"
  wasm-pack test --node
  step "wasm-bindgen tests in headless Chromium"
  # The runner defaults to Node unless told otherwise; this selects the browser for the same tests.
  WASM_BINDGEN_USE_BROWSER=1 wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)"
}

js() {
  step "JS tests (node:test, the package by its own name)"
  mapfile -t files < <(find tests/js -name '*.test.mjs' -o -name '*.test.cjs' | sort)
  node --test --test-reporter=spec "${files[@]}"
}

for layer in "${layers[@]}"; do "$layer"; done
