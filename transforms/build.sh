#!/usr/bin/env bash
# Builds the example transforms as WebAssembly components and copies them to
# transforms/components/<name>.wasm, the files that are checked in.
#
# The build is reproducible byte for byte from any checkout directory and any CARGO_HOME: the
# paths rustc would embed (panic locations name source files) are remapped to fixed prefixes,
# the lock file is used as is, and the release profile has one codegen unit. The integration
# test tests/tests/transforms_build.rs runs this script into a scratch directory and compares the
# result with the checked-in files, so after changing the SDK or an example, run it and commit the
# components.
#
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: transforms/target)
#   COMPONENTS_DIR    where the components go (default: transforms/components)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd "$here/.." && pwd -P)"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
# Both spellings, in case CARGO_HOME goes through a symlink.
cargo_home_real="$(cd "$cargo_home" 2>/dev/null && pwd -P || echo "$cargo_home")"
out="${COMPONENTS_DIR:-$here/components}"
components=(rfm_score segment clv next_offer hostile)

# CARGO_ENCODED_RUSTFLAGS takes precedence over RUSTFLAGS and any config's rustflags, so nothing
# from the caller's environment changes the output. Flags are separated by 0x1f.
sep=$'\x1f'
flags="--remap-path-prefix=$here=/fstore/transforms"
flags+="$sep--remap-path-prefix=$repo=/fstore"
flags+="$sep--remap-path-prefix=$cargo_home=/cargo"
flags+="$sep--remap-path-prefix=$cargo_home_real=/cargo"
export CARGO_ENCODED_RUSTFLAGS="$flags"
unset RUSTFLAGS

cd "$here"
packages=()
for c in "${components[@]}"; do packages+=(-p "$c"); done
cargo build --locked --release --target wasm32-wasip2 "${packages[@]}"

target_dir="${CARGO_TARGET_DIR:-$here/target}"
mkdir -p "$out"
for c in "${components[@]}"; do
    cp "$target_dir/wasm32-wasip2/release/$c.wasm" "$out/$c.wasm"
done
(cd "$out" && ls -l "${components[@]/%/.wasm}" && sha256sum "${components[@]/%/.wasm}")
