// Why this shim exists: libfuse3 selects its API with the FUSE_USE_VERSION macro, which must be
// defined before the header is included; Swift cannot define it. The kernel's protocol header
// gives the layouts of the INIT request and answer (SessionIO.swift). No logic lives here.
#ifndef OBSMOUNT_CFUSE3_SHIM_H
#define OBSMOUNT_CFUSE3_SHIM_H
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#endif
