// Why this shim exists: it only gathers the libcrypto headers Swift imports (EVP digests, HMAC,
// OPENSSL_cleanse) into one module. No logic lives here.
#ifndef OBSMOUNT_COPENSSL_SHIM_H
#define OBSMOUNT_COPENSSL_SHIM_H
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif
