#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building Linux 7.3 with Rust, the rsva modules and the VM
# needs on a Debian 12 (bookworm) machine. Idempotent: when everything is
# present it only checks and returns in well under a second.
#
# Not root and something missing: print the exact commands and fail.
set -euo pipefail

# The rustc-web trio that was verified end to end with this kernel.
RUST_PIN=${RSVA_RUST_PIN:-1.85.0+dfsg3-1~deb12u3}
RUST_MIN=1.85.0
BINDGEN_VERSION=0.73.2
BINDGEN_MIN=0.71.1
CACHE=${RSVA_CACHE:-$HOME/.cache/rsva}
BINDGEN=$CACHE/tools/bin/bindgen

APT_PKGS=(clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc cpio kmod
	  rsync libelf-dev libssl-dev busybox-static qemu-system-x86 xz-utils
	  gcc make python3 python3-matplotlib patch shellcheck)
RUST_PKGS=(rustc-web libstd-rust-web-dev rust-web-src rust-web-clippy rustfmt-web)

say() { echo "setup: $*"; }

is_root() { [ "$(id -u)" = 0 ]; }

pkg_version() {
	dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null |
		awk '$1 == "ii" { print $2 }' || true
}

# ver_ge A B: true when version A >= B (dpkg ordering).
ver_ge() { dpkg --compare-versions "$1" ge "$2"; }

missing=()
for p in "${APT_PKGS[@]}"; do
	[ -n "$(pkg_version "$p")" ] || missing+=("$p")
done

# The three Rust packages must be installed at one and the same version.
rust_ok=1
rv=$(pkg_version rustc-web)
for p in "${RUST_PKGS[@]}"; do
	v=$(pkg_version "$p")
	if [ -z "$v" ] || [ "$v" != "$rv" ] || ! ver_ge "${v%%+*}" "$RUST_MIN"; then
		rust_ok=0
	fi
done

bindgen_ok=0
if [ -x "$BINDGEN" ]; then
	bv=$("$BINDGEN" --version 2>/dev/null | awk '{ print $2 }')
	[ -n "$bv" ] && ver_ge "$bv" "$BINDGEN_MIN" && bindgen_ok=1
fi

if [ ${#missing[@]} -eq 0 ] && [ $rust_ok = 1 ] && [ $bindgen_ok = 1 ]; then
	exit 0
fi

if ! is_root; then
	echo "setup: missing tools, and not root. Run as root:" >&2
	echo "  apt-get update" >&2
	[ ${#missing[@]} -eq 0 ] ||
		echo "  apt-get install -y ${missing[*]}" >&2
	[ $rust_ok = 1 ] ||
		echo "  apt-get install -y ${RUST_PKGS[*]/%/=$RUST_PIN}" >&2
	[ $bindgen_ok = 1 ] ||
		echo "  cargo install --locked --root $CACHE/tools bindgen-cli --version $BINDGEN_VERSION" >&2
	exit 1
fi

start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -ne 0 ] || [ $rust_ok = 0 ]; then
	say "apt-get update"
	apt-get update -q >/dev/null
fi
if [ ${#missing[@]} -ne 0 ]; then
	say "installing ${missing[*]}"
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ $rust_ok = 0 ]; then
	want=$RUST_PIN
	if ! apt-cache madison rustc-web | awk '{ print $3 }' | grep -qxF "$want"; then
		# The pinned version left the archive: take the best offered >= min
		# that all three packages share.
		want=""
		for v in $(apt-cache madison rustc-web | awk '{ print $3 }' | sort -rV); do
			ver_ge "${v%%+*}" "$RUST_MIN" || continue
			ok=1
			for p in "${RUST_PKGS[@]}"; do
				apt-cache madison "$p" | awk '{ print $3 }' | grep -qxF "$v" || ok=0
			done
			[ $ok = 1 ] && { want=$v; break; }
		done
		[ -n "$want" ] || { echo "setup: no rustc-web >= $RUST_MIN in apt" >&2; exit 1; }
		say "pinned rustc-web $RUST_PIN is not offered; using $want instead"
	fi
	say "installing ${RUST_PKGS[*]} at $want"
	apt-get install -y -q --no-install-recommends --allow-downgrades \
		"${RUST_PKGS[@]/%/=$want}" >/dev/null
fi

if [ $bindgen_ok = 0 ]; then
	cargo=$(command -v cargo || echo "$HOME/.cargo/bin/cargo")
	[ -x "$cargo" ] || { echo "setup: cargo not found (needed for bindgen-cli)" >&2; exit 1; }
	say "cargo install bindgen-cli $BINDGEN_VERSION (about 1.5 min)"
	"$cargo" install -q --locked --root "$CACHE/tools" bindgen-cli \
		--version "$BINDGEN_VERSION"
fi
say "toolchain ready in $(( $(date +%s) - start )) s"
