/* tests/cuda/emu/cuda_runtime.h - a CPU emulator of CUDA's execution model, for running the
   CUDA backend's kernels and tests on a machine without a GPU (make test-cuda-emu).

   It is not a GPU and proves nothing about speed, about the GPU's rounding (expf, fmaf, the
   order of cuBLAS's sums) or about the hardware's memory model. What it does prove: that the
   kernels compute what their CPU ops compute, launch after launch, as whole programs. The
   build compiles deepseek_cuda.cuh as C++ (g++ -x c++ -DDS_CUDA -I tests/cuda/emu), so this file
   stands in for the toolkit's <cuda_runtime.h> and cublas_v2.h beside it for <cublas_v2.h>.

   The model it runs:
     - a launch runs its blocks one after another; a block's threads are fibers (ucontext) on
       the calling thread. A fiber runs until it finishes or waits at a barrier; when every
       live thread of a block waits at the same __syncthreads, they all go on (threads that have
       returned do not hold it up, as on sm_70 and later); when every live lane of a warp (32
       consecutive threads) waits in a shuffle, that warp goes on. Threads that wait at different
       barriers (another __syncthreads of the source, or a shuffle against a __syncthreads) are
       a kernel bug CUDA leaves undefined: the emulator reports it (the launch fails with
       cudaErrorLaunchFailure, as a hung or faulting kernel would) instead of guessing.
     - __shared__ is `static`: one copy, shared by the block's threads, as on the GPU; blocks run
       one at a time, so one copy serves them all.
     - device memory is host memory (malloc, 256-byte aligned as cudaMalloc's), filled with 0xff bytes (NaN floats) by cudaMalloc,
       as the GPU leaves it uninitialized. Every allocation is recorded, and every pointer
       argument of a launch, of a copy and of cuBLAS must lie in one (or be NULL): a host
       pointer handed to a kernel works on a CPU but not on a GPU, so here it is an error.
     - launch limits are the GPU's: at most 1024 threads a block, grid.y and grid.z < 65536.
       A bad configuration is cudaErrorInvalidConfiguration from cudaGetLastError; a fault is
       sticky (every later call returns it), as on the GPU.
   Kernels launch through DS__CU_LAUNCH(kernel, grid, block)(args), which deepseek_cuda.cuh
   defines as kernel<<<grid, block>>>(args) for nvcc. */
#ifndef DS_CUDA_EMU_RUNTIME_H
#define DS_CUDA_EMU_RUNTIME_H
#ifndef __cplusplus
#error "the CUDA emulator is C++ (compile the CUDA sources with g++ -x c++)"
#endif
#include <ucontext.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <vector>

#define DS_CUDA_EMU 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchFailure = 719
};
typedef enum cudaError cudaError_t;
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
struct cudaDeviceProp {
    char name[256];
    int major, minor, multiProcessorCount;
    size_t totalGlobalMem;
};

enum { DS_EMU_RUN, DS_EMU_AT_BLOCK, DS_EMU_AT_WARP, DS_EMU_DONE };
#define DS_EMU_STACK (64 * 1024)
struct ds_emu_thread {
    ucontext_t ctx; /* the portable fibers */
    void *sp;       /* the x86-64 ones: the saved stack pointer */
    void *site;     /* where it waits at __syncthreads (its return address) */
    uint3 tid;
    int state;
};
struct ds_emu_state {
    std::vector<ds_emu_thread> th;
    std::vector<char> stacks;
    ucontext_t sched;
    void *sched_sp;
    unsigned cur, n;
    uint3 bid;
    dim3 bdim, gdim;
    const std::function<void()> *body;
    unsigned char shfl[1024][8];
    cudaError_t last, sticky;
    const char *kernel;
    uint64_t rng; /* the schedule's (xorshift64; DS_EMU_SEED sets it, 0: the fixed order) */
    int rng_set;
    unsigned char defer[32]; /* per warp: runs only when nothing else can */
    std::map<const char *, size_t> allocs;
};
static ds_emu_state ds_emu;

#define threadIdx (ds_emu.th[ds_emu.cur].tid)
#define blockIdx (ds_emu.bid)
#define blockDim (ds_emu.bdim)
#define gridDim (ds_emu.gdim)

static inline void ds_emu_fault(const char *what) {
    if (ds_emu.sticky == cudaSuccess)
        fprintf(stderr, "cuda emulator: %s: block (%u,%u,%u): %s\n", ds_emu.kernel ? ds_emu.kernel : "(no kernel)", ds_emu.bid.x, ds_emu.bid.y,
                ds_emu.bid.z, what);
    ds_emu.sticky = cudaErrorLaunchFailure;
}
/* p .. p + n inside one device allocation (n = 0: p inside one or one past its end) */
static inline bool ds_emu_on_device(const void *p, size_t n) {
    const char *q = (const char *)p;
    std::map<const char *, size_t>::iterator it = ds_emu.allocs.upper_bound(q);
    if (it == ds_emu.allocs.begin()) return false;
    --it;
    return q >= it->first && q + n <= it->first + it->second;
}

/* Switching between fibers. swapcontext saves and restores the signal mask, a system call each
   way, which made the tests' 2.5 minutes mostly kernel time; on x86-64 a switch is the callee-saved
   registers and the stack pointer, in ds_emu_switch below (the SSE and x87 control words are not
   switched: nothing here changes a rounding mode, and saving them doubled a switch's cost). */
#if defined(__x86_64__) && defined(__linux__) && !defined(DS_EMU_UCONTEXT)
extern "C" void ds_emu_switch(void **save_sp, void *to_sp);
__asm__(".text\n"
        ".globl ds_emu_switch\n"
        ".type ds_emu_switch,@function\n"
        "ds_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size ds_emu_switch, .-ds_emu_switch\n");
static inline void ds_emu_trampoline(void);
static inline void ds_emu_prepare(unsigned i) { /* a fresh stack that ds_emu_switch "returns" into the trampoline from */
    char *top = &ds_emu.stacks[(size_t)(i + 1) * DS_EMU_STACK];
    /* after ds_emu_switch's ret the trampoline starts with the stack pointer at sp0, which must be
       8 mod 16, as at the entry of a called function (its return address just pushed) */
    uint64_t *sp0 = (uint64_t *)(((uintptr_t)top & ~(uintptr_t)15) - 8), *sp = sp0;
    *--sp = (uint64_t)(uintptr_t)ds_emu_trampoline;
    sp -= 6; /* rbp, rbx, r12..r15: anything */
    ds_emu.th[i].sp = sp;
}
static inline void ds_emu_to_thread(unsigned i) { ds_emu.cur = i, ds_emu_switch(&ds_emu.sched_sp, ds_emu.th[i].sp); }
static inline void ds_emu_to_sched(unsigned i) { ds_emu_switch(&ds_emu.th[i].sp, ds_emu.sched_sp); }
#else
static inline void ds_emu_entry(void);
static inline void ds_emu_prepare(unsigned i) {
    ds_emu_thread *t = &ds_emu.th[i];
    getcontext(&t->ctx);
    t->ctx.uc_stack.ss_sp = &ds_emu.stacks[(size_t)i * DS_EMU_STACK];
    t->ctx.uc_stack.ss_size = DS_EMU_STACK;
    t->ctx.uc_link = &ds_emu.sched;
    makecontext(&t->ctx, ds_emu_entry, 0);
}
static inline void ds_emu_to_thread(unsigned i) { ds_emu.cur = i, swapcontext(&ds_emu.sched, &ds_emu.th[i].ctx); }
static inline void ds_emu_to_sched(unsigned i) { swapcontext(&ds_emu.th[i].ctx, &ds_emu.sched); }
#endif

/* a thread waits: back to the scheduler, which resumes it when its barrier opens */
static inline void ds_emu_wait(int why) {
    unsigned i = ds_emu.cur;
    ds_emu.th[i].state = why;
    ds_emu_to_sched(i);
}
/* (never inlined: its return address tells one __syncthreads of the source from another) */
__attribute__((noinline)) static void __syncthreads(void) {
    ds_emu.th[ds_emu.cur].site = __builtin_return_address(0);
    ds_emu_wait(DS_EMU_AT_BLOCK);
}
/* the warp's lanes meet (every live lane of it waits here; one elsewhere is a divergent call) */
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)mask;
    ds_emu_wait(DS_EMU_AT_WARP);
}
/* the warp's vote: nonzero when pred is nonzero in any (__any_sync) or every (__all_sync) live lane */
static inline int ds_emu_vote(int pred, int all) {
    unsigned i = ds_emu.cur, w0 = i - i % 32, e = w0 + 32 < ds_emu.n ? w0 + 32 : ds_emu.n, k;
    int r = all;
    memcpy(ds_emu.shfl[i], &pred, sizeof pred);
    ds_emu_wait(DS_EMU_AT_WARP); /* every lane has written its predicate */
    for (k = w0; k < e; k++) {
        int p;
        if (ds_emu.th[k].state == DS_EMU_DONE) continue;
        memcpy(&p, ds_emu.shfl[k], sizeof p);
        r = all ? r && p : r || p;
    }
    ds_emu_wait(DS_EMU_AT_WARP); /* every lane has read before any writes again */
    return r;
}
static inline int __any_sync(unsigned mask, int pred) { (void)mask; return ds_emu_vote(pred != 0, 0); }
static inline int __all_sync(unsigned mask, int pred) { (void)mask; return ds_emu_vote(pred != 0, 1); }
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lanemask) {
    unsigned i = ds_emu.cur, lane = i % 32, src = i - lane + (lane ^ (unsigned)lanemask);
    T r = v;
    (void)mask;
    memcpy(ds_emu.shfl[i], &v, sizeof v);
    ds_emu_wait(DS_EMU_AT_WARP); /* every lane has written its value */
    if (src < ds_emu.n && ds_emu.th[src].state != DS_EMU_DONE) memcpy(&r, ds_emu.shfl[src], sizeof r);
    else ds_emu_fault("a shuffle reads a lane that is not there (a block not a multiple of 32, or an exited lane)");
    ds_emu_wait(DS_EMU_AT_WARP); /* every lane has read before any writes again */
    return r;
}

#if defined(__x86_64__) && defined(__linux__) && !defined(DS_EMU_UCONTEXT)
static inline void ds_emu_trampoline(void) {
    (*ds_emu.body)();
    ds_emu.th[ds_emu.cur].state = DS_EMU_DONE;
    ds_emu_to_sched(ds_emu.cur); /* never resumed: the next block prepares a fresh stack */
    abort();
}
#else
static inline void ds_emu_entry(void) {
    (*ds_emu.body)();
    ds_emu.th[ds_emu.cur].state = DS_EMU_DONE; /* then back to the scheduler (uc_link) */
}
#endif
/* the random schedule: at a block's start and at every __syncthreads, each warp is deferred
   with probability 1/2 */
static inline void ds_emu_defer_warps(void) {
    unsigned w;
    for (w = 0; w < 32; w++) {
        if (ds_emu.rng) ds_emu.rng ^= ds_emu.rng << 13, ds_emu.rng ^= ds_emu.rng >> 7, ds_emu.rng ^= ds_emu.rng << 17;
        ds_emu.defer[w] = ds_emu.rng ? (unsigned char)(ds_emu.rng >> 63) : 0;
    }
}
static inline void ds_emu_run(const char *name, dim3 g, dim3 b, const std::function<void()> &body) {
    unsigned n = b.x * b.y * b.z, i, bx, by, bz;
    ds_emu.kernel = name;
    if (b.x == 0 || b.y == 0 || b.z == 0 || b.x > 1024 || b.y > 1024 || b.z > 64 || n > 1024 || g.x == 0 || g.y == 0 || g.z == 0 ||
        g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535) {
        ds_emu.last = cudaErrorInvalidConfiguration;
        return;
    }
    if (ds_emu.sticky != cudaSuccess) return; /* a faulted context runs nothing more */
    if (!ds_emu.rng_set) {
        const char *e = getenv("DS_EMU_SEED");
        ds_emu.rng = e ? strtoull(e, NULL, 10) : 0x9e3779b97f4a7c15ull, ds_emu.rng_set = 1;
    }
    if (ds_emu.th.size() < n) ds_emu.th.resize(n), ds_emu.stacks.resize((size_t)n * DS_EMU_STACK);
    ds_emu.n = n, ds_emu.bdim = b, ds_emu.gdim = g, ds_emu.body = &body;
    for (bz = 0; bz < g.z; bz++)
        for (by = 0; by < g.y; by++)
            for (bx = 0; bx < g.x; bx++) {
                ds_emu.bid.x = bx, ds_emu.bid.y = by, ds_emu.bid.z = bz;
                for (i = 0; i < n; i++) {
                    ds_emu_thread *t = &ds_emu.th[i];
                    t->tid.x = i % b.x, t->tid.y = i / b.x % b.y, t->tid.z = i / (b.x * b.y);
                    t->state = DS_EMU_RUN;
                    ds_emu_prepare(i);
                }
                ds_emu_defer_warps();
                for (;;) {
                    unsigned w, live = 0, at_block = 0, ran = 0, late = 0;
                    int opened = 0;
                    /* the threads run to their next barrier, the deferred warps (the random
                       schedule's) only when nothing else can: a read of shared memory that
                       another warp overwrites without a barrier between them then sees the
                       wrong value, where the fixed order would hide it */
                    for (i = 0; i < n; i++)
                        if (ds_emu.th[i].state == DS_EMU_RUN) {
                            if (ds_emu.defer[i / 32]) late++;
                            else ds_emu_to_thread(i), ran++;
                        }
                    for (w = 0; w < n; w += 32) { /* a warp whose live lanes all wait in a shuffle goes on */
                        unsigned e = w + 32 < n ? w + 32 : n, wl = 0, ww = 0;
                        for (i = w; i < e; i++) wl += ds_emu.th[i].state != DS_EMU_DONE, ww += ds_emu.th[i].state == DS_EMU_AT_WARP;
                        if (ww && ww == wl) {
                            for (i = w; i < e; i++) ds_emu.th[i].state = ds_emu.th[i].state == DS_EMU_DONE ? DS_EMU_DONE : DS_EMU_RUN;
                            opened = 1;
                        }
                    }
                    if (ran || opened) continue;
                    if (late) { /* nothing else can run: the deferred warps now */
                        for (w = 0; w < 32; w++) ds_emu.defer[w] = 0;
                        continue;
                    }
                    for (i = 0; i < n; i++) live += ds_emu.th[i].state != DS_EMU_DONE, at_block += ds_emu.th[i].state == DS_EMU_AT_BLOCK;
                    if (live == 0) break;
                    if (at_block == live) { /* all at one __syncthreads of the source, or the block is wrong */
                        void *site = NULL;
                        for (i = 0; i < n; i++)
                            if (ds_emu.th[i].state == DS_EMU_AT_BLOCK) {
                                if (site && ds_emu.th[i].site != site) break;
                                site = ds_emu.th[i].site, ds_emu.th[i].state = DS_EMU_RUN;
                            }
                        if (i == n) { ds_emu_defer_warps(); continue; }
                        ds_emu_fault("threads wait at different __syncthreads (a barrier in code the block does not run alike)");
                        return;
                    }
                    ds_emu_fault("threads wait at different barriers (__syncthreads in divergent code, or a shuffle its warp does not reach)");
                    return;
                }
                if (ds_emu.sticky != cudaSuccess) return;
            }
}

/* every pointer argument of a launch must be device memory or NULL */
template <class T> static inline bool ds_emu_arg_ok(const T &) { return true; }
template <class T> static inline bool ds_emu_arg_ok(T *const &p) {
    if (!p || ds_emu_on_device(p, 0)) return true;
    ds_emu_fault("a pointer argument is not device memory (a host pointer handed to a kernel)");
    return false;
}
template <class F> struct ds_emu_launch {
    F f;
    dim3 g, b;
    const char *name;
    template <class... A> void operator()(A... a) const {
        bool ok = true;
        int each[] = {0, (ds_emu.kernel = name, ok = ds_emu_arg_ok(a) && ok, 0)...};
        F k = f;
        std::function<void()> body = [&]() { k(a...); };
        (void)each;
        if (ok) ds_emu_run(name, g, b, body);
    }
};
#define DS__CU_LAUNCH(kernel, grid, block) ds_emu_launch<decltype(&kernel)>{&kernel, dim3(grid), dim3(block), #kernel}

/* ---- the runtime calls the backend and its tests make ---- */
static inline const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}
static inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
static inline cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
static inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev) {
    if (dev != 0) return cudaErrorInvalidValue;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "the CPU emulator of tests/cuda/emu (not a GPU)");
    p->major = 9, p->minor = 0; /* what it emulates of sm_90: the warp matrix functions (mma.h) */
    p->multiProcessorCount = 1;
    return cudaSuccess;
}
static inline cudaError_t cudaDeviceSynchronize(void) { return ds_emu.sticky; }
static inline cudaError_t cudaGetLastError(void) {
    cudaError_t e = ds_emu.last != cudaSuccess ? ds_emu.last : ds_emu.sticky;
    ds_emu.last = cudaSuccess;
    return e;
}
template <class T> static inline cudaError_t cudaMalloc(T **p, size_t bytes) {
    char *q;
    if (ds_emu.sticky != cudaSuccess) return ds_emu.sticky;
    void *v = NULL;
    if (posix_memalign(&v, 256, bytes ? bytes : 1) != 0) return cudaErrorMemoryAllocation; /* 256-byte aligned, as cudaMalloc's */
    q = (char *)v;
    memset(q, 0xff, bytes);
    ds_emu.allocs[q] = bytes;
    *p = (T *)(void *)q;
    return cudaSuccess;
}
static inline cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    if (!ds_emu.allocs.erase((const char *)p)) return cudaErrorInvalidValue;
    free(p);
    return cudaSuccess;
}
/* a nominal 80 GiB device: what cudaMalloc handed out and has not been freed is "used" */
static inline cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    size_t used = 0, total = (size_t)80 << 30;
    for (const auto &a : ds_emu.allocs) used += a.second;
    *total_bytes = total, *free_bytes = used < total ? total - used : 0;
    return ds_emu.sticky;
}
static inline cudaError_t cudaMemset(void *p, int v, size_t bytes) {
    if (ds_emu.sticky != cudaSuccess) return ds_emu.sticky;
    if (!ds_emu_on_device(p, bytes)) {
        fprintf(stderr, "cuda emulator: cudaMemset(%p, %d, %zu): not device memory\n", p, v, bytes);
        return cudaErrorInvalidValue;
    }
    memset(p, v, bytes);
    return cudaSuccess;
}
static inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    bool dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice, sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (ds_emu.sticky != cudaSuccess) return ds_emu.sticky;
    if (kind == cudaMemcpyDefault) dd = ds_emu_on_device(dst, 0), sd = ds_emu_on_device(src, 0);
    if (dd != ds_emu_on_device(dst, bytes) || sd != ds_emu_on_device(src, bytes)) {
        fprintf(stderr, "cuda emulator: cudaMemcpy(%p, %p, %zu, kind %d): %s\n", dst, src, bytes, (int)kind,
                dd != ds_emu_on_device(dst, bytes) ? "the destination is not where the kind says" : "the source is not where the kind says");
        return cudaErrorInvalidValue;
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}
#endif
