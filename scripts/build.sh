#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build what the VM runs, against the tree recorded in out/kernel.env:
#
#   scripts/build.sh modules     rsva.ko and the test modules (out/modules)
#   scripts/build.sh lint        rustfmt --check, checkpatch.pl, kernel-doc
#                                and shellcheck
#   scripts/build.sh selftests   the static kselftest binaries (out/selftests)
#   scripts/build.sh initramfs PLAN
#                                out/initramfs-PLAN.cpio.gz for vm/PLAN-plan.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_kernel_env

# Always through clippy (CLIPPY=1); Kbuild turns warnings into errors.
build_modules() {
	mkdir -p "$RSVA_OUT/modules"
	make -s -C "$KBUILD" "${KMAKE_ARGS[@]}" CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver \
		M="$RSVA_TOP" MO="$RSVA_OUT/modules" -j"$RSVA_JOBS" modules
}

# rustfmt with the kernel's settings; checkpatch on the C sources, strict on
# kernel code, plain on the user-space tests (whose types are C's, not the
# kernel's). The exports of Rust functions cannot follow their definitions:
# EXPORT_SYMBOL is the one checkpatch rule that does not apply. Then the
# tree's kernel-doc on the public headers and shellcheck on scripts/ and vm/
# (at severity warning: its notes and style hints do not count), both
# failing on any warning; then the import circles of the Rust crates
# (scripts/import_cycles.py).
lint() {
	local rs kc uc hdr sh
	cd "$RSVA_TOP"
	mapfile -t rs < <(git ls-files -co --exclude-standard '*.rs')
	mapfile -t kc < <(git ls-files -co --exclude-standard 'rust/*.[ch]' 'include/*.h' 'selftests/modules/*.c')
	mapfile -t uc < <(git ls-files -co --exclude-standard 'selftests/*.[ch]')
	mapfile -t hdr < <(git ls-files -co --exclude-standard 'include/*.h' 'include/uapi/*.h')
	mapfile -t sh < <(git ls-files -co --exclude-standard 'scripts/*.sh' 'vm/*.sh')
	/usr/bin/rustfmt --check --edition 2021 --config-path "$KSRC/.rustfmt.toml" "${rs[@]}"
	perl "$KSRC/scripts/checkpatch.pl" --no-tree --quiet --strict --ignore EXPORT_SYMBOL -f "${kc[@]}"
	perl "$KSRC/scripts/checkpatch.pl" --no-tree --quiet -f "${uc[@]}"
	# Patches go through standard input: given a path inside a git work
	# tree, checkpatch reads a patch as a plain file. The kernel source is
	# a release tarball, without the history a Fixes: tag's commit is
	# looked up in.
	local p
	for p in patches/*.patch; do
		perl "$KSRC/scripts/checkpatch.pl" --no-tree --quiet \
			--ignore UNKNOWN_COMMIT_ID - <"$p"
	done
	python3 "$KSRC/scripts/kernel-doc" -none -Wall -Werror "${hdr[@]}"
	shellcheck --severity=warning "${sh[@]}"
	# The layers point one way: no Rust file imports one that imports it
	# back (rsva's crate, then rsva_sim's).
	python3 scripts/import_cycles.py rust rust/sim
}

build_selftests() {
	make -s -C "$RSVA_TOP/selftests" KSRC="$KSRC" KHDR="$KHDR" OUT="$RSVA_OUT/selftests"
}

# The tree's own modules (uacce, test_hmm, idxd, ...), installed with their
# modules.dep so that busybox modprobe resolves dependencies; redone when the
# tree's modules change.
install_tree_modules() {
	local stage=$1
	local dir=$RSVA_OUT/tree-modules
	if [ ! -d "$dir" ] || [ "$KBUILD/modules.order" -nt "$dir" ]; then
		rm -rf "$dir"
		make -s -C "$KBUILD" "${KMAKE_ARGS[@]}" modules_install \
			INSTALL_MOD_PATH="$dir" INSTALL_MOD_STRIP=1 DEPMOD=/sbin/depmod
	fi
	cp -a "$dir/lib" "$stage/"
}

build_initramfs() {
	local plan=$1
	local stage=$RSVA_OUT/initramfs-$plan
	[ -f "$RSVA_TOP/vm/$plan-plan.sh" ] || die "no plan vm/$plan-plan.sh"
	rm -rf "$stage"
	mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,tests,lib/rsva}
	cp /bin/busybox "$stage/bin/busybox"
	ln -s busybox "$stage/bin/sh"
	install_tree_modules "$stage"
	find "$RSVA_OUT/modules" -name '*.ko' -exec cp {} "$stage/lib/rsva/" \;
	cp "$RSVA_OUT"/selftests/* "$stage/tests/"
	cp "$RSVA_TOP/vm/init.sh" "$stage/init"
	cp "$RSVA_TOP/vm/tap.sh" "$stage/lib/rsva/tap.sh"
	cp "$RSVA_TOP/vm/$plan-plan.sh" "$stage/plan.sh"
	echo "$plan" >"$stage/plan.name"
	# make check T="part ...": only those parts of the plan (vm/tap.sh want).
	echo "${T:-}" >"$stage/plan.only"
	chmod +x "$stage/init"
	(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) \
		>"$RSVA_OUT/initramfs-$plan.cpio.gz"
}

case "${1:-}" in
modules) timed "building modules" build_modules ;;
lint) timed "rustfmt, checkpatch, kernel-doc, shellcheck and import circles" lint ;;
selftests) timed "building selftests" build_selftests ;;
initramfs) timed "making initramfs ($2)" build_initramfs "$2" ;;
*) die "usage: $0 modules|lint|selftests|initramfs PLAN" ;;
esac
