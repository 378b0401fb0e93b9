#ifndef SWITCHBOARD_PROCESS_MEMORY_H
#define SWITCHBOARD_PROCESS_MEMORY_H

#include <stddef.h>

/// Bytes the C allocator holds for live allocations, or -1 where the allocator cannot say.
long long switchboard_heap_in_use(void);

/// Hands freed heap pages back to the system; returns 1 if some were, 0 if none, -1 where the allocator cannot.
int switchboard_heap_release(void);

/// Keeps freed heap pages for reuse instead of handing them back at every free; returns 1 when set, 0 when refused,
/// -1 where the allocator cannot.
int switchboard_heap_keep_free_pages(void);

#endif
