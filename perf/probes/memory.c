/* What memory costs on this machine: first touch of fresh pages (mmap, write one byte a
 * page, munmap; with and without MADV_HUGEPAGE), memset bandwidth over reused memory,
 * and the latency of a dependent random load in 64 MiB.
 * Run: cc -O2 perf/probes/memory.c -o /tmp/memory && /tmp/memory */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void) {
    size_t n = (size_t)256 << 20;
    for (int huge = 0; huge < 2; huge++) {
        double t0 = now();
        for (int i = 0; i < 4; i++) {
            char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) return 1;
            if (huge) madvise(p, n, MADV_HUGEPAGE);
            for (size_t j = 0; j < n; j += 4096) p[j] = 1;
            munmap(p, n);
        }
        printf("first touch%s: %.0f ns per 4 KiB\n", huge ? " (MADV_HUGEPAGE)" : "",
               (now() - t0) * 1e9 / (4.0 * n / 4096));
    }
    char *p = malloc(n);
    memset(p, 1, n);
    double t0 = now();
    for (int i = 0; i < 4; i++) memset(p, i, n);
    printf("memset, reused memory: %.2f GB/s\n", 4.0 * n / (now() - t0) / 1e9);
    size_t m = ((size_t)64 << 20) / 8;
    uint64_t *a = malloc(m * 8);
    for (size_t i = 0; i < m; i++) a[i] = i;
    srand(1);
    for (size_t i = m - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1);
        uint64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
    uint64_t x = 0;
    t0 = now();
    for (int i = 0; i < 5000000; i++) x = a[x];
    printf("random dependent load in 64 MiB: %.1f ns (%lu)\n", (now() - t0) * 1e9 / 5e6,
           (unsigned long)x);
    return 0;
}
