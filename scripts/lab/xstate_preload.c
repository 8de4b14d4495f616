/*
 * Preloaded into User-Mode Linux by scripts/lab/lab.ts, so that Debian's UML
 * (6.1) runs on hosts whose XSAVE area is larger than the one it was built
 * for, such as CPUs with AMX (about 11 KiB instead of 2,696 bytes).
 *
 * UML saves and restores its processes' FPU state with ptrace's
 * PTRACE_GETREGSET / PTRACE_SETREGSET (NT_X86_XSTATE) and a fixed buffer.
 * Reading into a short buffer works (the kernel truncates), but the host
 * refuses any write shorter than its whole XSAVE area with EFAULT, and UML
 * kills the process it was about to run: init, at boot ("userspace - ptrace
 * set fp regs failed, errno = 14", then "Attempted to kill init!").
 *
 * This wraps libc's ptrace: a short NT_X86_XSTATE write is padded with zeros
 * to the host's size. The padding holds only components past UML's buffer,
 * which UML never saw; their bits in the XSAVE header (within UML's bytes)
 * are those the host reported for the process, clear for components it never
 * used, such as AMX, which a process must ask the kernel for. A component
 * whose bit is clear is loaded in its initial state, whatever the padding.
 * Everything else goes to libc's ptrace unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef long (*ptrace_function)(int, pid_t, void *, void *);

/* Larger than any XSAVE area so far (AMX: about 11 KiB). */
#define LARGEST_XSAVE (64 * 1024)

static ptrace_function libc_ptrace;
/* The host's XSAVE size, 0 until known; UML's calls come from one thread. */
static size_t host_size;
static unsigned char padded[LARGEST_XSAVE];

long ptrace(enum __ptrace_request request, ...) {
  va_list arguments;
  va_start(arguments, request);
  pid_t pid = va_arg(arguments, pid_t);
  void *address = va_arg(arguments, void *);
  void *data = va_arg(arguments, void *);
  va_end(arguments);
  if (!libc_ptrace) libc_ptrace = (ptrace_function)dlsym(RTLD_NEXT, "ptrace");
  if (request != PTRACE_SETREGSET || (long)address != NT_X86_XSTATE) {
    return libc_ptrace(request, pid, address, data);
  }
  struct iovec *given = data;
  if (host_size == 0) {
    struct iovec whole = {padded, sizeof padded};
    if (libc_ptrace(PTRACE_GETREGSET, pid, address, &whole) < 0) return -1;
    host_size = whole.iov_len;
  }
  if (given->iov_len >= host_size) return libc_ptrace(request, pid, address, data);
  memcpy(padded, given->iov_base, given->iov_len);
  memset(padded + given->iov_len, 0, host_size - given->iov_len);
  struct iovec whole = {padded, host_size};
  return libc_ptrace(request, pid, address, &whole);
}
