# restore_unpriv calls restore_image() from the core archive, unlike the
# other integration programs (plain executables): an explicit rule, which
# takes precedence over the pattern rule of test/test.mk.  Included from
# the Makefile after test/test.mk.
$(BUILD)/test/integration/restore_unpriv: test/integration/restore_unpriv.c \
		$(CORE_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itest -o $@ $< $(CORE_A) $(LDLIBS_CORE) $(SANFLAGS)
