// Why this shim exists: glibc's <malloc.h> (`mallopt` and its parameters) is not part of Swift's
// Glibc module. No logic lives here.
#ifndef OBSMOUNT_CMALLOC_SHIM_H
#define OBSMOUNT_CMALLOC_SHIM_H
#include <malloc.h>
#endif
