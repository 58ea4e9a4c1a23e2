/* The seeded generator behind every random choice of the library (the train / validation
 * split, the epoch shuffles, the student's initial weights, the demo data): splitmix64
 * (Steele, Lea, Flood 2014), the state advanced in place. */
#ifndef STFPM_RNG_H
#define STFPM_RNG_H
#include <stdint.h>

uint64_t stfpm_splitmix64(uint64_t *state);

#endif
