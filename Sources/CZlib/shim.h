#ifndef CHIPSITE_CZLIB_SHIM_H
#define CHIPSITE_CZLIB_SHIM_H
#include <zlib.h>
#endif
