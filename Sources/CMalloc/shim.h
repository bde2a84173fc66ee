#ifndef CHIPSITE_CMALLOC_SHIM_H
#define CHIPSITE_CMALLOC_SHIM_H
// glibc's malloc_trim, which Swift's Glibc module leaves out: gives the
// allocator's free memory back to the system. A no-op elsewhere.
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
static inline int chipsite_release_free_memory(void) { return malloc_trim(0); }
#else
static inline int chipsite_release_free_memory(void) { return 0; }
#endif
#endif
