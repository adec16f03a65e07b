#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Provide a configured and built Linux 7.3 tree and record where it is in
# out/kernel.env.
#
#   scripts/kernel.sh            fetch, patch, configure and build into the
#                                cache (nothing is done when it is there)
#   KDIR=/path scripts/kernel.sh use a tree the user built instead
#
# The cache entry is $RSVA_CACHE/linux-<key>, where key hashes the source
# package version, patches/*.patch, the configuration fragment and the tool
# versions: changing any of them builds a new tree, nothing else does.
# The fragment is .config.fragment (the kernel of 'make check'), or with
# RSVA_KERNEL=release (the kernel of 'make bench') .config.fragment without
# the debugging options that .config.release turns off, and then
# .config.release.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$RSVA_OUT" "$RSVA_CACHE"

write_env() {
	cat >"$RSVA_OUT/kernel.env.tmp" <<EOT
KBUILD=$1
KSRC=$2
KHDR=$3
EOT
	mv "$RSVA_OUT/kernel.env.tmp" "$RSVA_OUT/kernel.env"
}

if [ -n "${KDIR:-}" ]; then
	KDIR=$(cd "$KDIR" && pwd)
	[ -f "$KDIR/.config" ] || die "KDIR=$KDIR has no .config (not a built tree)"
	ksrc=$KDIR
	[ -e "$KDIR/source" ] && ksrc=$(cd "$KDIR/source" && pwd)
	grep -q '^CONFIG_RUST=y' "$KDIR/.config" || die "KDIR=$KDIR is built without CONFIG_RUST"
	khdr=$RSVA_OUT/kdir-headers
	timed "installing headers of $KDIR" \
		make -s -C "$KDIR" "${KMAKE_ARGS[@]}" headers_install INSTALL_HDR_PATH="$khdr"
	write_env "$KDIR" "$ksrc" "$khdr"
	exit 0
fi

bash "$RSVA_TOP/scripts/setup-toolchain.sh"

# --- the source package ------------------------------------------------------
# Fetched with apt's own client from trixie-backports, with private list and
# archive directories so the machine's apt sources stay as they are.
PKG=linux-source-7.3
debdir=$RSVA_CACHE/deb
mkdir -p "$debdir"
deb=$(ls -1 "$debdir"/${PKG}_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$deb" ]; then
	apt_dir=$RSVA_CACHE/apt
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
	mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$mirror" ] || mirror=$(awk '/^deb / && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
	[ -n "$mirror" ] || die "cannot find the Debian mirror in /etc/apt"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie-backports main" \
		>"$apt_dir/sources.list"
	apt_opts=(-o Dir::State::Lists="$apt_dir/lists"
		  -o Dir::Etc::SourceList="$apt_dir/sources.list"
		  -o Dir::Etc::SourceParts=/dev/null
		  -o Dir::Cache::Archives="$apt_dir/archives"
		  -o APT::Sandbox::User=root)
	timed "apt update (trixie-backports, private lists)" \
		apt-get -qq "${apt_opts[@]}" update
	timed "downloading $PKG" \
		bash -c 'cd "$1" && shift && apt-get -qq "$@" download linux-source-7.3' \
		_ "$debdir" "${apt_opts[@]}"
	deb=$(ls -1 "$debdir"/${PKG}_*.deb | sort -V | tail -n 1)
fi
srcver=$(dpkg-deb -f "$deb" Version)

# --- the configuration fragment ----------------------------------------------
frag=$RSVA_TOP/.config.fragment
case "${RSVA_KERNEL:-debug}" in
debug) ;;
release)
	frag=$RSVA_OUT/config.fragment.release
	off=$(sed -n 's/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1/p' "$RSVA_TOP/.config.release")
	{ grep -v -E "^($(echo "$off" | paste -sd '|'))(_[A-Z0-9_]*)?[= ]" "$RSVA_TOP/.config.fragment"
	  cat "$RSVA_TOP/.config.release"; } >"$frag"
	;;
*) die "RSVA_KERNEL=$RSVA_KERNEL: debug or release" ;;
esac

# --- the cache key -----------------------------------------------------------
tools=$( { /usr/bin/rustc --version; "$RSVA_CACHE/tools/bin/bindgen" --version;
	   clang --version | head -n 1; ld.lld --version; } 2>&1)
key=$( { echo "$srcver"; echo "$tools";
	 cat "$RSVA_TOP"/patches/*.patch 2>/dev/null || true;
	 cat "$frag"; } | sha256sum | cut -c1-16)
tree=$RSVA_CACHE/linux-$key
src=$tree/src
build=$tree/build
hdr=$tree/headers

if [ -f "$tree/.done" ]; then
	log "kernel $srcver cached in $tree"
	write_env "$build" "$src" "$hdr"
	exit 0
fi

log "building kernel $srcver into $tree (key $key; a cold build takes about 10 min)"
rm -rf "$tree"
mkdir -p "$tree"
t0=$SECONDS

# --- extract and patch -------------------------------------------------------
extract() {
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tree" --wildcards '*.tar.xz'
	mkdir -p "$src"
	tar -xJf "$tree"/usr/src/linux-source-*.tar.xz -C "$src" --strip-components=1
	rm -rf "${tree:?}/usr"
}
timed "extracting $PKG $srcver" extract
for p in "$RSVA_TOP"/patches/*.patch; do
	[ -e "$p" ] || continue
	log "applying $(basename "$p")"
	patch -s -p1 -d "$src" --no-backup-if-mismatch <"$p" || die "$(basename "$p") does not apply"
done

# --- configure ---------------------------------------------------------------
kmake() { make -s -C "$src" O="$build" "${KMAKE_ARGS[@]}" "$@"; }
mkdir -p "$build"
configure() {
	kmake tinyconfig >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$frag" >/dev/null
	kmake olddefconfig >/dev/null
}
timed "configuring (tinyconfig + $(basename "$frag"))" configure

# Every option of the fragment must have survived: merge_config drops
# silently what Kconfig refuses.
lost=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qxF "$line" "$build/.config" || lost+=("$line (have: $(grep -E "^(# )?${line%%=*}[= ]" "$build/.config" || echo unset))")
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }
		opt=${opt%% *}
		! grep -q "^$opt=" "$build/.config" || lost+=("$line (have: $(grep "^$opt=" "$build/.config"))")
		;;
	esac
done <"$frag"
if [ ${#lost[@]} -ne 0 ]; then
	printf 'rsva: error: fragment option not in .config: %s\n' "${lost[@]}" >&2
	exit 1
fi
kmake rustavailable >/dev/null || die "the kernel does not accept this Rust toolchain"

# --- build -------------------------------------------------------------------
timed "building bzImage and modules (-j$RSVA_JOBS)" kmake -j"$RSVA_JOBS" bzImage modules
timed "installing uapi headers" kmake headers_install INSTALL_HDR_PATH="$hdr"
touch "$tree/.done"
log "kernel ready in $((SECONDS - t0)) s"

# Keep the four newest trees; each is about 2.5 GB.
ls -1dt "$RSVA_CACHE"/linux-*/ 2>/dev/null | tail -n +5 | while read -r old; do
	log "removing old tree $old"
	rm -rf "$old"
done
write_env "$build" "$src" "$hdr"
