// SPDX-License-Identifier: MIT
/* The hook behind own_fd() (ownfd.h), set by the shim's constructor. */
#include "ownfd.h"

int (*own_fd_hook)(int fd);
