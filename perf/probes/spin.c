/* A fixed CPU loop (1.5 billion dependent multiply-adds), to tell this shared VM's fast
 * and slow phases apart: the same loop takes longer when the host is busy.
 * Run: cc -O2 perf/probes/spin.c -o /tmp/spin && /tmp/spin   (prints seconds) */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

int main(void) {
    volatile uint64_t x = 1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (uint64_t i = 0; i < 1500000000ULL; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.3f s\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
