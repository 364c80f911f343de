/*
 * keyward: the one function core.c calls into opt.c, chosen at run time. opt.c is compiled twice
 * (build.rs): with AVX2 as keyward_fill_segment_avx2, and for plain x86-64 (SSE2) as
 * keyward_fill_segment_sse2. The Rust side sets keyward_argon2_avx2 once, before the first hash,
 * from its own CPU (and OS) feature detection.
 */
#include "core.h"

void keyward_fill_segment_avx2(const argon2_instance_t *instance, argon2_position_t position);
void keyward_fill_segment_sse2(const argon2_instance_t *instance, argon2_position_t position);

int keyward_argon2_avx2 = 0;

void fill_segment(const argon2_instance_t *instance, argon2_position_t position) {
    if (keyward_argon2_avx2) {
        keyward_fill_segment_avx2(instance, position);
    } else {
        keyward_fill_segment_sse2(instance, position);
    }
}
