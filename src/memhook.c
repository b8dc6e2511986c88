/*
 * Memory hooks: every munmap, mremap, MAP_FIXED mmap, page-releasing
 * madvise, heap shrink and shmdt of the process pushes the affected range to
 * a ring (invring.h) that every registration cache applies on its next call.
 *
 * Symbol interposition alone misses most of them: glibc's malloc, free and
 * malloc_trim call libc's internal __munmap/__madvise/__brk/__mmap, which
 * bind inside libc. Those internal names share their code with the public
 * ones, so on x86_64 the entry of libc's own function is overwritten with an
 * absolute jump to our handler (like UCX's "bistro" hooks), which records the
 * range and makes the system call itself. Where that is impossible (another
 * architecture, a libc function too short or already patched, text pages
 * that cannot be made writable) the exported functions below still catch
 * every call made through the dynamic linker, but not libc's internal ones.
 *
 * Handlers run inside malloc and free with their locks held: they never
 * allocate, never deregister and take only the ring's spinlock.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memhook.h"
#include "zcrdma.h"

#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer's runtime intercepts these very calls and cannot be
 * re-entered from them: its builds have no hooks (zc_caps.memhooks says so). */
#define NO_HOOKS 1
#define EXPORT __attribute__((visibility("hidden")))
#else
#define NO_HOOKS 0
#define EXPORT __attribute__((visibility("default")))
#endif

static struct zc__invring ring;
static atomic_bool active;
static int mode = ZC_MEMHOOKS_INTERPOSE;
static void **curbrk; /* glibc's __curbrk, which our brk must keep current */

struct zc__invring *zc__memhook_ring(void)
{
	return &ring;
}

static void record(const void *addr, size_t len, int cause)
{
	uintptr_t s = (uintptr_t)addr;

	if (!len || !atomic_load_explicit(&active, memory_order_relaxed))
		return;
	zc__invring_push(&ring, s, len > UINTPTR_MAX - s ? UINTPTR_MAX : s + len, cause);
}

/* ---- the handlers ----
 *
 * Each is a static function, exported under the libc name it replaces by an
 * alias (below). libc's patched entries jump to the static function itself,
 * never to the exported name: that name resolves through the global symbol
 * lookup to whoever comes first, and an interposer that forwards to libc's
 * own definition would then be jumped back to by it, forever. ASan's runtime
 * is one: preloaded ahead of libc (zcrun with a sanitizer build), its mmap
 * interceptor won the lookup and forwarded (a tail jump) to libc's mmap,
 * whose patched entry jumped to the interceptor again, so the first mmap
 * after the hooks went in (rxe mapping a shared receive queue) spun there. */

/* A mapping the kernel places itself lands only where nothing was mapped;
 * MAP_FIXED replaces whatever was there (MAP_FIXED_NOREPLACE never does). */
static void *hook_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if ((flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE))
		record(addr, len, ZC_INV_REMAP);
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static int hook_munmap(void *addr, size_t len)
{
	record(addr, len, ZC_INV_UNMAP);
	return (int)syscall(SYS_munmap, addr, len);
}

/* The old range goes away (moved, or its tail cut) or keeps its pages
 * (grown in place): dropping it is right either way. A fixed destination
 * replaces what was mapped there. */
static void *hook_mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *dest = NULL;
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		dest = va_arg(ap, void *);
		va_end(ap);
		record(dest, new_len, ZC_INV_REMAP);
	}
	record(old, old_len, ZC_INV_UNMAP);
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, dest);
}

/* Advice that drops pages: a pinned page stays with the registration while
 * the next touch faults in a new one, so the two part ways. */
static int hook_madvise(void *addr, size_t len, int advice)
{
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
	if (advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE ||
	    advice == MADV_DONTNEED_LOCKED)
		record(addr, len, ZC_INV_MADVISE);
	return (int)syscall(SYS_madvise, addr, len, advice);
}

static unsigned long hex(const char **p)
{
	unsigned long v = 0;

	for (;; ++*p) {
		char c = **p;

		if (c >= '0' && c <= '9')
			v = v * 16 + (unsigned long)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (unsigned long)(c - 'a' + 10);
		else
			return v;
	}
}

/* The end of the mapping that starts at addr, from /proc/self/maps, with a
 * stack buffer and read(2): this runs where malloc may not. 0 if none. */
static uintptr_t mapping_end(uintptr_t addr)
{
	char buf[4096];
	size_t have = 0;
	uintptr_t end = 0;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
		char *line = buf, *nl;

		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = strchr(line, '\n'))) {
			const char *p = line;

			if (hex(&p) == addr && *p++ == '-') {
				end = hex(&p);
				goto out;
			}
			line = nl + 1;
		}
		/* Keep the partial last line; a line longer than the buffer
		 * (a huge path) is dropped. */
		have = line == buf ? 0 : have - (size_t)(line - buf);
		memmove(buf, line, have);
	}
out:
	close(fd);
	return end;
}

static int hook_shmdt(const void *addr)
{
	if (atomic_load_explicit(&active, memory_order_relaxed)) {
		uintptr_t end = mapping_end((uintptr_t)addr);

		if (end > (uintptr_t)addr)
			record(addr, end - (uintptr_t)addr, ZC_INV_SHMDT);
	}
	return (int)syscall(SYS_shmdt, addr);
}

/* The fallback where libc cannot be patched (and what calls through the
 * dynamic linker reach when nothing else interposes): the same handlers
 * under libc's names. */
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("hook_mmap")));
EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("hook_mmap")));
EXPORT int munmap(void *addr, size_t len) __attribute__((alias("hook_munmap")));
EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
	__attribute__((alias("hook_mremap")));
EXPORT int madvise(void *addr, size_t len, int advice) __attribute__((alias("hook_madvise")));
EXPORT int shmdt(const void *addr) __attribute__((alias("hook_shmdt")));

/* Only patched into libc, never exported: it must update glibc's private
 * break exactly as glibc's __brk does, and sbrk (and so malloc) goes
 * through __brk. */
static int hook_brk(void *addr)
{
	uintptr_t old = (uintptr_t)*curbrk, to = (uintptr_t)addr;
	void *now;

	if (old && to && to < old)
		record(addr, old - to, ZC_INV_BRK);
	now = (void *)syscall(SYS_brk, addr);
	*curbrk = now;
	if ((uintptr_t)now < to) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* ---- patching libc ---- */

#if defined(__x86_64__)
#define PATCH_LEN 13 /* movabs $handler, %r11; jmp *%r11 */

static bool patchable(const uint8_t *fn)
{
	Dl_info info;
	const ElfW(Sym) *sym = NULL;

	if (!dladdr1(fn, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || sym->st_size < PATCH_LEN)
		return false;
	/* Someone else's hook (a jump already) would be silently undone. */
	return fn[0] != 0xe9 && fn[0] != 0xeb && !(fn[0] == 0xff && fn[1] == 0x25) &&
	       !(fn[0] == 0x49 && fn[1] == 0xbb);
}

/* Another thread may be entering fn meanwhile: it first sees a 2-byte jump
 * to itself (spinning there), then the finished jump. A thread already
 * inside the first 13 bytes (e.g. in munmap's system call) could return
 * into the rewritten bytes; hooks go in at the first zc_ctx_new. */
static int patch(uint8_t *fn, void *handler)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), h = (uintptr_t)handler;
	uint8_t code[PATCH_LEN] = {0x49, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0xff, 0xe3};
	uint8_t *page = (uint8_t *)((uintptr_t)fn & ~(pg - 1));
	size_t span = (size_t)(((uintptr_t)fn + PATCH_LEN + pg - 1) & ~(pg - 1)) - (size_t)(uintptr_t)page;

	memcpy(code + 2, &h, sizeof(h));
	if ((uintptr_t)fn & 1)
		return -EINVAL;
	if (syscall(SYS_mprotect, page, span, PROT_READ | PROT_WRITE | PROT_EXEC))
		return -errno;
	__atomic_store_n((uint16_t *)fn, (uint16_t)0xfeeb, __ATOMIC_SEQ_CST);
	memcpy(fn + 2, code + 2, PATCH_LEN - 2);
	__atomic_store_n((uint16_t *)fn, (uint16_t)(code[0] | code[1] << 8), __ATOMIC_SEQ_CST);
	syscall(SYS_mprotect, page, span, PROT_READ | PROT_EXEC);
	return 0;
}

static int patch_libc(void)
{
	static const char *const names[] = {"munmap", "mremap", "mmap", "madvise", "shmdt", "brk"};
	/* Our own handlers, not the exported names (see above the handlers). */
	void *const handlers[] = {hook_munmap, hook_mremap, hook_mmap, hook_madvise, hook_shmdt, hook_brk};
	uint8_t *fns[6];
	void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
	size_t i;

	/* The handle's lookup finds libc's own definitions, not ours. */
	if (!libc)
		return -ENOENT;
	curbrk = dlsym(libc, "__curbrk");
	for (i = 0; i < 6; i++) {
		fns[i] = dlsym(libc, names[i]);
		if (!fns[i] || !patchable(fns[i]) || !curbrk)
			break;
	}
	dlclose(libc);
	if (i < 6)
		return -ENOTSUP;
	for (i = 0; i < 6; i++)
		if (patch(fns[i], handlers[i]))
			return -EPERM;
	return 0;
}
#else
static int patch_libc(void)
{
	(void)hook_brk;
	return -ENOTSUP;
}
#endif

static void child_after_fork(void)
{
	zc__invring_after_fork(&ring);
}

static void install(void)
{
	if (NO_HOOKS) {
		mode = ZC_MEMHOOKS_OFF;
		return;
	}
	pthread_atfork(NULL, NULL, child_after_fork);
	/* On before patching: a handler must never run without recording. */
	atomic_store(&active, true);
	if (!patch_libc())
		mode = ZC_MEMHOOKS_PATCH;
}

int zc__memhook_install(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, install);
	return mode;
}
