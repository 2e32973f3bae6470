// SPDX-License-Identifier: MIT
/* The hooks behind OWN_FD() (ownfd.h), set by the shim's constructor. */
#include <stddef.h>

#include "ownfd.h"

const struct own_fd_hooks *own_fd_hooks;
