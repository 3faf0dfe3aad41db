#!/usr/bin/env bash
# Builds the .wasm once and generates two sets of bindings from it:
#   pkg/nodejs  CommonJS, loads the .wasm synchronously (Node: require and import)
#   pkg/web     ESM with init()/initSync() (browsers, and workerd with an imported module)
# then shrinks each with wasm-opt and prints the size against the 64 KiB gzip budget.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

wasm=target/wasm32-unknown-unknown/release/socket_lease.wasm
stamp=pkg/.build-stamp
# Skip when nothing that feeds the build changed since the last one (warm `npm test`).
if [[ -f $stamp && -z "${FORCE_BUILD:-}" ]] && \
   [[ -z $(find src core Cargo.toml Cargo.lock .cargo -newer "$stamp" -print -quit) ]]; then
  echo "build: pkg/ is up to date"
else
  cargo build --lib --release --target wasm32-unknown-unknown
  # Build into a fresh folder and swap it in at the end, so a process loading the
  # package meanwhile (a running demo, a test) never sees a half-written pkg/; it is
  # missing only between two renames.
  next=$(mktemp -d pkg.next.XXXXXX)
  for target in nodejs web; do
    wasm-bindgen --target "$target" --out-dir "$next/$target" "$wasm"
    # Rust enables these wasm features by default; wasm-opt must accept them.
    wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
      --enable-nontrapping-float-to-int --enable-reference-types --enable-multivalue \
      -o "$next/$target/socket_lease_bg.wasm" "$next/$target/socket_lease_bg.wasm"
  done
  # The nodejs bindings are CommonJS, but the root package is "type": "module".
  echo '{ "type": "commonjs" }' > "$next/nodejs/package.json"
  touch "$next/.build-stamp"
  chmod 755 "$next"
  old=$(mktemp -d pkg.old.XXXXXX)
  [[ -d pkg ]] && mv pkg "$old/pkg"
  mv "$next" pkg
  rm -rf "$old"
fi

# The Node loader's CommonJS copy of the boundary's JS half (js/runtime.mjs is the source).
node scripts/runtime-cjs.mjs
# The .d.cts types of the package's require entries, copied from their .d.ts.
node scripts/types-cjs.mjs

out=pkg/web/socket_lease_bg.wasm
raw=$(wc -c < "$out")
gz=$(gzip -9c "$out" | wc -c)
# 64 KiB (was 60): refusing lone surrogates at the boundary, `reclaimed` and `evict: false`
# took the .wasm from 61,011 to 62,160 bytes gzipped, past 60 KiB (61,440).
budget=$((64 * 1024))
printf 'wasm size: %d bytes raw, %d bytes gzipped (budget %d gzipped)\n' "$raw" "$gz" "$budget"
if (( gz > budget )); then
  echo "build: the .wasm is over the 64 KiB gzip budget" >&2
  exit 1
fi
