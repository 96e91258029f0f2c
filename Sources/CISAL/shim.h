// Why this shim exists: it only gathers the two ISA-L headers Swift imports (CRC-64 and CRC-32
// families, PCLMUL/AVX code paths chosen at run time) into one module. No logic lives here.
#ifndef OBSMOUNT_CISAL_SHIM_H
#define OBSMOUNT_CISAL_SHIM_H
#include <isa-l/crc.h>
#include <isa-l/crc64.h>
#endif
