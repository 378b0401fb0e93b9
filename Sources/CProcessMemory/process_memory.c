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

int switchboard_heap_keep_free_pages(void) {
    // 128 MiB of free top before a free() trims, 4 MiB before an allocation gets its own mapping: both fixed, which
    // also turns off glibc's sliding thresholds.
    return mallopt(M_TRIM_THRESHOLD, 128 << 20) && mallopt(M_MMAP_THRESHOLD, 4 << 20) ? 1 : 0;
}

#else

long long switchboard_heap_in_use(void) { return -1; }

int switchboard_heap_release(void) { return -1; }

int switchboard_heap_keep_free_pages(void) { return -1; }

#endif
