# make install / make uninstall, included from the Makefile.
#
#   make install [PREFIX=/usr/local] [DESTDIR=/staging] [LIBDIR=...] ...
#
# installs what `make` built in $(BUILD):
#   $(BINDIR)/epollcr
#   $(LIBDIR)/libepollcr.so.MAJOR.MINOR, and the links libepollcr.so.MAJOR
#     (the soname) and libepollcr.so (for -lepollcr)
#   $(INCLUDEDIR)/epollcr.h, $(PKGCONFIGDIR)/epollcr.pc
#   $(MANDIR)/man1/epollcr.1, man3/libepollcr.3 (and one page per API
#     function that sources it), man5/epollcr-image.5
#   $(DOCDIR): README.md, docs/*.md, examples/*.c
#   $(BASHCOMPDIR)/epollcr
# `make uninstall` with the same variables removes exactly those files, and
# the directories of our own ($(DOCDIR)) when they are left empty.
# `epollcr run` finds the library from its own location: keep LIBDIR at
# BINDIR/../lib (or lib64, or lib/MULTIARCH), or give it EPOLLCR_LIB.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATAROOTDIR ?= $(PREFIX)/share
MANDIR ?= $(DATAROOTDIR)/man
DOCDIR ?= $(DATAROOTDIR)/doc/epollcr
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BASHCOMPDIR ?= $(DATAROOTDIR)/bash-completion/completions
INSTALL ?= install
# Run after an install into the live system (no DESTDIR) as root, so that
# programs linked with -lepollcr find the new soname; LDCONFIG=: skips it.
LDCONFIG ?= ldconfig

LIB_REALNAME := libepollcr.so.$(SOMAJOR).$(SOMINOR)
LIB_SONAME := libepollcr.so.$(SOMAJOR)
# The documented API: every EPOLLCR_EXPORT function of the public header.
api_sed := s/^EPOLLCR_EXPORT .*[ *]\([a-z_0-9]*\)[(].*/\1/p
API_NAMES := $(shell sed -n '$(api_sed)' include/epollcr.h)
MAN_PAGES := man/epollcr.1 man/libepollcr.3 man/epollcr-image.5
DOC_FILES := README.md $(wildcard docs/*.md)
EXAMPLE_DOC_FILES := $(wildcard examples/*.c)
PC_FILE := $(BUILD)/epollcr.pc

# Paths inside $(PREFIX) are written relative to ${prefix} in the .pc
# file, so that pkg-config --define-prefix can relocate a staged install.
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

# Always rewritten: PREFIX and the directories may differ from one install
# to the next.
$(PC_FILE): epollcr.pc.in FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' \
		-e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|g' \
		-e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|g' \
		-e 's|@VERSION@|$(VERSION)|g' \
		-e 's|@SONAME@|$(LIB_SONAME)|g' $< >$@

FORCE:

install: all $(PC_FILE)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DOCDIR)/docs \
		$(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 755 $(CLI) $(DESTDIR)$(BINDIR)/epollcr
	$(INSTALL) -m 755 $(LIB) $(DESTDIR)$(LIBDIR)/$(LIB_REALNAME)
	ln -sf $(LIB_REALNAME) $(DESTDIR)$(LIBDIR)/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(DESTDIR)$(LIBDIR)/libepollcr.so
	$(INSTALL) -m 644 include/epollcr.h $(DESTDIR)$(INCLUDEDIR)/epollcr.h
	$(INSTALL) -m 644 $(PC_FILE) $(DESTDIR)$(PKGCONFIGDIR)/epollcr.pc
	$(INSTALL) -m 644 man/epollcr.1 $(DESTDIR)$(MANDIR)/man1/epollcr.1
	$(INSTALL) -m 644 man/libepollcr.3 $(DESTDIR)$(MANDIR)/man3/libepollcr.3
	$(INSTALL) -m 644 man/epollcr-image.5 \
		$(DESTDIR)$(MANDIR)/man5/epollcr-image.5
	for f in $(API_NAMES); do \
		echo '.so man3/libepollcr.3' \
			>$(DESTDIR)$(MANDIR)/man3/$$f.3 || exit 1; \
		chmod 644 $(DESTDIR)$(MANDIR)/man3/$$f.3 || exit 1; \
	done
	$(INSTALL) -m 644 README.md $(DESTDIR)$(DOCDIR)/README.md
	$(INSTALL) -m 644 $(filter docs/%,$(DOC_FILES)) $(DESTDIR)$(DOCDIR)/docs
	$(INSTALL) -m 644 $(EXAMPLE_DOC_FILES) $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 644 completion/epollcr.bash \
		$(DESTDIR)$(BASHCOMPDIR)/epollcr
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		$(LDCONFIG) || echo "install: $(LDCONFIG) failed" >&2; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/epollcr \
		$(DESTDIR)$(LIBDIR)/$(LIB_REALNAME) \
		$(DESTDIR)$(LIBDIR)/$(LIB_SONAME) \
		$(DESTDIR)$(LIBDIR)/libepollcr.so \
		$(DESTDIR)$(INCLUDEDIR)/epollcr.h \
		$(DESTDIR)$(PKGCONFIGDIR)/epollcr.pc \
		$(DESTDIR)$(MANDIR)/man1/epollcr.1 \
		$(DESTDIR)$(MANDIR)/man3/libepollcr.3 \
		$(API_NAMES:%=$(DESTDIR)$(MANDIR)/man3/%.3) \
		$(DESTDIR)$(MANDIR)/man5/epollcr-image.5 \
		$(DOC_FILES:%=$(DESTDIR)$(DOCDIR)/%) \
		$(EXAMPLE_DOC_FILES:%=$(DESTDIR)$(DOCDIR)/%) \
		$(DESTDIR)$(BASHCOMPDIR)/epollcr
	for d in $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)/examples \
			$(DESTDIR)$(DOCDIR); do \
		[ ! -d "$$d" ] || rmdir "$$d" 2>/dev/null || \
			echo "uninstall: $$d is not empty: left in place"; \
	done
