# SPDX-License-Identifier: GPL-2.0
#
# rsva: the user-facing targets. The modules themselves are described in
# Kbuild; everything here calls scripts/ (see README.rst).
#
#   make            build the modules (against KDIR=, else the cached kernel)
#   make lint       rustfmt, checkpatch, kernel-doc, shellcheck, import circles
#   make kernel     fetch, patch, configure and build Linux 7.3 (cached)
#   make run        boot a VM with the modules and show them at work
#   make check      every test in the VM, ending with "N passed, N failed"
#   make check T=sva only some parts of the plan (vm/check-plan.sh names them)
#   make bench      every benchmark in one VM boot, side by side
#   make bench T=dma  only some parts (vm/bench-plan.sh names them)
#   make clean      remove out/ (the kernel cache stays)

export KDIR T

all: modules

kernel:
	@scripts/kernel.sh

modules: kernel
	@scripts/build.sh modules

lint: kernel
	@scripts/build.sh lint

selftests: kernel
	@scripts/build.sh selftests

run:
	@scripts/run.sh

check:
	@scripts/check.sh

bench:
	@scripts/bench.sh

clean:
	rm -rf out

.PHONY: all kernel modules lint selftests run check bench clean
