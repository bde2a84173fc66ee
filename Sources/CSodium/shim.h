#ifndef CHIPSITE_CSODIUM_SHIM_H
#define CHIPSITE_CSODIUM_SHIM_H
#include <sodium.h>
#endif
