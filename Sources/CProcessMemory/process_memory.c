#include "process_memory.h"
// Any C library header defines __GLIBC__ where the C library is glibc.
#include <stdlib.h>

#if defined(__GLIBC__)
#include <malloc.h>

long long switchboard_heap_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return (long long)(info.uordblks + info.hblkhd);
}

int switchboard_heap_release(void) { return malloc_trim(0); }

#else

long long switchboard_heap_in_use(void) { return -1; }

int switchboard_heap_release(void) { return -1; }

#endif
