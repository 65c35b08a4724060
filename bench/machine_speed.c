/* A fixed CPU loop that bench/run.py times to record the machine's speed in
 * BENCHMARKS.md, so that runs on different machines can be compared: a
 * dependent chain of 64-bit multiply-adds and xor-shifts (a xorshift-multiply
 * generator), so the time per iteration follows the core's clock and integer
 * latency, not its memory. Timed with the thread's CPU clock, so time spent
 * preempted by other processes of a shared machine does not count. Prints
 * nanoseconds per iteration of the fastest of `rounds` timed rounds and the
 * median round.
 *
 *     cc -O2 -o machine-speed bench/machine_speed.c && ./machine-speed [iterations] [rounds]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 100000000L;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (iterations <= 0 || rounds <= 0 || rounds > 100) {
        fprintf(stderr, "usage: machine-speed [iterations > 0] [rounds 1..100]\n");
        return 2;
    }
    double per[100];
    volatile uint64_t sink = 0;
    for (int r = 0; r < rounds; r++) {
        uint64_t x = 0x9E3779B97F4A7C15ULL + (uint64_t)r;
        double t0 = now_ns();
        for (long i = 0; i < iterations; i++) {
            x ^= x >> 29;
            x = x * 0xBF58476D1CE4E5B9ULL + 0x94D049BB133111EBULL;
        }
        per[r] = (now_ns() - t0) / (double)iterations;
        sink += x;
    }
    qsort(per, (size_t)rounds, sizeof per[0], cmp);
    printf("{\"ns_per_iteration_min\": %.4f, \"ns_per_iteration_median\": %.4f, \"iterations\": %ld, \"rounds\": %d, \"checksum\": %llu}\n",
           per[0], per[rounds / 2], iterations, rounds, (unsigned long long)sink);
    return 0;
}
