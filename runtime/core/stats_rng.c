/* Statistics core, part 4: deterministic PRNG for tests and simulations.
 * xoshiro256** (Blackman & Vigna), state seeded by splitmix64. */
#include "rollout/stats.h"

#include <stddef.h>

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void rs_rng_seed(rs_rng *rng, uint64_t seed)
{
    if (rng == NULL)
        return;
    uint64_t st = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&st);
    /* splitmix64 is a bijection of its counter, so the four outputs are
     * never all zero (the one state xoshiro must avoid) in practice; guard
     * anyway. */
    if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0)
        rng->s[0] = UINT64_C(0x9e3779b97f4a7c15);
}

uint64_t rs_rng_next(rs_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double rs_rng_double(rs_rng *rng)
{
    return (double)(rs_rng_next(rng) >> 11) * 0x1.0p-53;
}
