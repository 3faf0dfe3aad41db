#!/usr/bin/env bash
# `npm test`: set up, build, then every test layer, stopping at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "setup"
bash scripts/setup.sh
step "build"
bash scripts/build.sh

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (native and wasm32)"
cargo clippy --all-targets -- -D warnings
cargo clippy --lib --tests --target wasm32-unknown-unknown -- -D warnings

step "cargo test (native core, property tests)"
cargo test

step "wasm-bindgen tests in Node"
wasm-pack test --node
step "wasm-bindgen tests in headless Chromium"
# The runner defaults to Node unless told otherwise; this selects the browser for the same tests.
WASM_BINDGEN_USE_BROWSER=1 wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)"

step "TypeScript check (Node/browser sources and usage; Workers sources against workers-types)"
tsc -p tsconfig.json
tsc -p tsconfig.workers.json

step "JS tests (node:test, the package by its own name)"
mapfile -t files < <(find tests/js -name '*.test.mjs' -o -name '*.test.cjs' | sort)
node --test --test-reporter=spec "${files[@]}"
