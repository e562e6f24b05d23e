# engine/tools/install.mk — what `make install` adds to the library, header and
# command the Makefile installs itself: the pkg-config files, the man pages,
# the daemon's documents, the stock policies and the Python binding; and
# `make uninstall` removes them. Included by the
# Makefile, it hooks install-extra and uninstall-extra under install and
# uninstall. (The Lua modules' install rules are in bindings/lua/build.mk.)
#
#   make install PREFIX=/usr/local DESTDIR=      (the defaults)
#   make install PREFIX=/usr DESTDIR=/tmp/pkgroot   (staging for a package)
#
# Then, against the installed library:
#   cc gateway.c $(pkg-config --cflags --libs switchboard)          (shared)
#   cc gateway.c $(pkg-config --cflags --libs switchboard-static)   (static)
# switchboard-static.pc names libswitchboard.a itself, then the libraries the
# archive needs: `pkg-config --static switchboard` would not do, as it only
# adds Libs.private after -lswitchboard, and the linker takes the .so beside
# the .a for that. With a PREFIX outside pkg-config's search path, point
# PKG_CONFIG_PATH at $(PREFIX)/lib/pkgconfig; for the shared library outside the
# loader's path, run with LD_LIBRARY_PATH or link with -Wl,-rpath,$(PREFIX)/lib.
# A system-wide install may need ldconfig. tests/install.t checks both links.

# Where the Makefile's install puts the library and header (for the .pc file).
SB_LIBDIR = $(PREFIX)/lib
SB_INCLUDEDIR = $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(SB_LIBDIR)/pkgconfig
# The Python binding goes where python3 looks under this prefix (Debian:
# /usr/lib/python3/dist-packages, /usr/local/lib/python3.X/dist-packages),
# else in $(PREFIX)/lib/python3.X/site-packages (add it to PYTHONPATH).
# PYTHONDIR= (empty) skips it.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
PYTHONDIR ?= $(shell $(PYTHON) -c 'import sys; p = "$(PREFIX)/lib/"; \
  print(([d for d in sys.path if d.startswith(p) and d.endswith("-packages")] + \
         [p + "python%d.%d/site-packages" % sys.version_info[:2]])[0])' 2>/dev/null)

# The daemon's documents, which `serve --help` and switchboard(1) point at:
# every config key (examples/switchboard.conf) and every route
# (engine/daemon/API.md). `serve --help` finds them here, from the command's
# own place in PREFIX/bin, so the directory is share/doc/switchboard under
# the same PREFIX. With them, what changed from 0.1.0 (engine/UPGRADING.md),
# for whoever upgrades an installed daemon.
SB_DOCDIR = $(PREFIX)/share/doc/switchboard
SB_DOC_FILES = examples/switchboard.conf engine/daemon/API.md engine/UPGRADING.md

# The stock policies with their cases, policies/README.md (the author's guide),
# policies/MIGRATING.md (which it links to) and policies/types/ (the Lua
# language server's annotations), as the source tree has them: the directory
# is a policy_dir as it stands (a reload skips the .md files and types/), or a
# place to copy policies from.
SB_POLICYDIR ?= $(PREFIX)/share/switchboard/policies
STOCK_POLICY_FILES := $(patsubst policies/%,%,$(wildcard policies/README.md policies/MIGRATING.md \
  policies/*.lua policies/*.cases.json policies/*/*.lua policies/*/*.cases.json))

# Static linking needs the engine's own dependencies: Lua 5.4, LMDB, libsodium,
# jansson (the daemon's libevent is not in the library).
PC_LIBS_PRIVATE = $(strip $(or $(shell pkg-config --libs lua5.4 lmdb libsodium jansson 2>/dev/null),-llua5.4 -llmdb -lsodium -ljansson)) -lpthread -lm

.PHONY: install-extra uninstall-extra
install: install-extra
uninstall: uninstall-extra

install-extra:
	install -d $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	printf '%s\n' \
	  'prefix=$(PREFIX)' \
	  'libdir=$(SB_LIBDIR)' \
	  'includedir=$(SB_INCLUDEDIR)' \
	  '' \
	  'Name: switchboard' \
	  'Description: Call-routing engine: Lua routing policies, state in LMDB' \
	  'Version: $(VERSION)' \
	  'Libs: -L$${libdir} -lswitchboard' \
	  'Libs.private: $(PC_LIBS_PRIVATE)' \
	  'Cflags: -I$${includedir}' >$(DESTDIR)$(PKGCONFIGDIR)/switchboard.pc
	printf '%s\n' \
	  'prefix=$(PREFIX)' \
	  'libdir=$(SB_LIBDIR)' \
	  'includedir=$(SB_INCLUDEDIR)' \
	  '' \
	  'Name: switchboard-static' \
	  'Description: Call-routing engine, linked statically (libswitchboard.a)' \
	  'Version: $(VERSION)' \
	  'Libs: $${libdir}/libswitchboard.a $(PC_LIBS_PRIVATE)' \
	  'Cflags: -I$${includedir}' >$(DESTDIR)$(PKGCONFIGDIR)/switchboard-static.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/switchboard.pc $(DESTDIR)$(PKGCONFIGDIR)/switchboard-static.pc
	install -m 644 engine/man/switchboard.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 engine/man/switchboard-policy.7 $(DESTDIR)$(MANDIR)/man7/
	install -d $(DESTDIR)$(SB_DOCDIR)
	install -m 644 $(SB_DOC_FILES) $(DESTDIR)$(SB_DOCDIR)/
	@echo "install policies -> $(DESTDIR)$(SB_POLICYDIR) ($(words $(STOCK_POLICY_FILES)) files)"
	@for f in $(STOCK_POLICY_FILES); do \
	  install -d "$(DESTDIR)$(SB_POLICYDIR)/$$(dirname "$$f")" && \
	  install -m 644 "policies/$$f" "$(DESTDIR)$(SB_POLICYDIR)/$$f" || exit 1; done
	@pd='$(strip $(PYTHONDIR))'; if [ -n "$$pd" ]; then \
	  echo "install bindings/python/switchboard -> $(DESTDIR)$$pd/switchboard"; \
	  install -d "$(DESTDIR)$$pd/switchboard" && \
	  install -m 644 bindings/python/switchboard/__init__.py "$(DESTDIR)$$pd/switchboard/"; fi

uninstall-extra:
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/switchboard.pc $(DESTDIR)$(PKGCONFIGDIR)/switchboard-static.pc \
	  $(DESTDIR)$(MANDIR)/man1/switchboard.1 \
	  $(DESTDIR)$(MANDIR)/man7/switchboard-policy.7 \
	  $(addprefix $(DESTDIR)$(SB_DOCDIR)/,$(notdir $(SB_DOC_FILES)))
	@rmdir $(DESTDIR)$(SB_DOCDIR) 2>/dev/null || true
	@echo "rm the stock policies from $(DESTDIR)$(SB_POLICYDIR)"
	@for f in $(STOCK_POLICY_FILES); do rm -f "$(DESTDIR)$(SB_POLICYDIR)/$$f"; done
	@for d in $(patsubst %/,%,$(filter-out ./,$(sort $(dir $(STOCK_POLICY_FILES))))); do \
	  rmdir "$(DESTDIR)$(SB_POLICYDIR)/$$d" 2>/dev/null; done; \
	  rmdir "$(DESTDIR)$(SB_POLICYDIR)" "$(DESTDIR)$(dir $(SB_POLICYDIR))" 2>/dev/null; true
	@pd='$(strip $(PYTHONDIR))'; if [ -n "$$pd" ]; then \
	  echo "rm -rf $(DESTDIR)$$pd/switchboard"; rm -rf "$(DESTDIR)$$pd/switchboard"; fi
