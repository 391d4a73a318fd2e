/* AVX-512 (F+BW+VL) workers of lrn_kernel.c for float and bf16 storage, computed in float;
 * #included by it (one compiler call, one .so), after job_t, worker_t and bf16.
 *
 * Where the portable passes spent their time (perf): the divide/square-root unit, and
 * store-to-load stalls (a row of squares written, then re-read at offsets by the window sum).
 * Here each pixel's squares are stored once, aligned, and the window is summed in registers by
 * lane shifts across neighbouring vectors (n = 3, 5; wider windows use masked shifted loads,
 * whose masked-off lanes are the zero padding). s^-0.75 = s^-1/2 (s s^-1/2)^-1/2 comes from the
 * 14-bit reciprocal square root plus one Newton step each (~1e-7 relative, like the division it
 * replaces), on the FMA units. Full vectors use unmasked loads and stores: masked memory
 * operations are slow on Zen, and with them this path was slower than the scalar C. NCHW
 * prefetches the rows a few channels ahead: one stream per channel is more than the hardware
 * prefetcher follows.
 */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define HAVE_AVX512 1

static inline __mmask16 lanes(int64_t lo, int64_t hi) {  /* lanes l with lo <= l < hi */
    lo = lo < 0 ? 0 : lo;
    hi = hi > 16 ? 16 : hi;
    return hi <= lo ? 0 : (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}
static inline __m512 ld_float(const float *p, __mmask16 m) {
    return m == 0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
static inline void st_float(float *p, __mmask16 m, __m512 v) {
    if (m == 0xffff) _mm512_storeu_ps(p, v); else _mm512_mask_storeu_ps(p, m, v);
}
static inline __m512 ld_bf16(const bf16 *p, __mmask16 m) {
    __m256i v = m == 0xffff ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskz_loadu_epi16(m, p);
    __m512i w = _mm512_cvtepu16_epi32(v);
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline void st_bf16(bf16 *p, __mmask16 m, __m512 v) {  /* as float_to_bf16, 16 at a time */
#ifdef __AVX512BF16__
    __m256i b16 = (__m256i)_mm512_cvtneps_pbh(v);
    if (m == 0xffff) _mm256_storeu_si256((__m256i *)p, b16);
    else _mm256_mask_storeu_epi16(p, m, b16);
    return;
#endif
    __m512i u = _mm512_castps_si512(v), hi = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(hi, _mm512_set1_epi32(1))));
    r = _mm512_mask_mov_epi32(_mm512_srli_epi32(r, 16), _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q),
                              _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
    if (m == 0xffff) _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(r));
    else _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(r));
}
static inline __m512 rsqrt_nr(__m512 s) {
    __m512 y = _mm512_rsqrt14_ps(s), hs = _mm512_mul_ps(s, _mm512_set1_ps(0.5f));
    __m512 e = _mm512_fnmadd_ps(_mm512_mul_ps(hs, y), y, _mm512_set1_ps(0.5f));  /* (1 - s y^2)/2 */
    return _mm512_fmadd_ps(y, e, y);
}
/* r = s^-beta (mode 1: 0.75, 2: 0.5, 3: 1) and inv = 1/s, for s = k + a*acc */
static inline void pow_avx(__m512 acc, __m512 a, __m512 k, int mode, __m512 *r, __m512 *inv) {
    __m512 s = _mm512_fmadd_ps(a, acc, k), r1 = rsqrt_nr(s);
    *inv = _mm512_mul_ps(r1, r1);
    *r = mode == 1 ? _mm512_mul_ps(r1, rsqrt_nr(_mm512_mul_ps(s, r1))) : mode == 2 ? r1 : *inv;
}

/* NHWC window sum of 16 channels from the vectors before/at/after them (zeros past the ends):
 * lane shifts across neighbours for the usual h = 1, 2; masked shifted loads for wider windows */
static inline __m512 window_avx(__m512 prev, __m512 cur, __m512 next, int64_t h) {
    __m512 w = cur;
    if (h >= 1) w = _mm512_add_ps(w, _mm512_add_ps(
        _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(cur), _mm512_castps_si512(prev), 15)),
        _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(next), _mm512_castps_si512(cur), 1))));
    if (h >= 2) w = _mm512_add_ps(w, _mm512_add_ps(
        _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(cur), _mm512_castps_si512(prev), 14)),
        _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(next), _mm512_castps_si512(cur), 2))));
    return w;
}
static inline __m512 window_wide(const float *v, int64_t c, int64_t C, int64_t h) {  /* h > 2 */
    __m512 w = _mm512_setzero_ps();
    for (int64_t d = -h; d <= h; d++)
        w = _mm512_add_ps(w, _mm512_maskz_loadu_ps(lanes(-(c + d), C - (c + d)), v + c + d));
    return w;
}

#define AVX_WORKERS(NAME, S)                                                                     \
/* one pixel: squares (fwd) in sq, then per 16 channels s, r = s^-beta and, for the backward,    \
 * gr = g r and t = gr x / s into rows of Cp floats (aligned, re-read whole: no stalls) */       \
static inline void pixel_avx_##NAME(const job_t *j, const S *x, const S *g, S *y, float *sq,     \
                                    float *gr, float *t) {                                       \
    int64_t C = j->C, h = j->h;                                                                  \
    __m512 va = _mm512_set1_ps((float)j->a), vk = _mm512_set1_ps((float)j->k), r, inv, acc;      \
    for (int64_t c = 0; c < C; c += 16) {                                                        \
        __m512 v = ld_##NAME(x + c, lanes(0, C - c));                                            \
        _mm512_store_ps(sq + 16 + c, _mm512_mul_ps(v, v));                                       \
    }                                                                                            \
    __m512 prev = _mm512_setzero_ps(), cur = _mm512_load_ps(sq + 16), next;                      \
    for (int64_t c = 0; c < C; c += 16, prev = cur, cur = next) {                                \
        next = _mm512_load_ps(sq + 32 + c);                                                      \
        acc = h <= 2 ? window_avx(prev, cur, next, h) : window_wide(sq + 16, c, C, h);           \
        pow_avx(acc, va, vk, j->mode, &r, &inv);                                                 \
        __mmask16 m = lanes(0, C - c);                                                           \
        __m512 xv = ld_##NAME(x + c, m);                                                         \
        if (!g) { st_##NAME(y + c, m, _mm512_mul_ps(xv, r)); continue; }                         \
        __m512 vgr = _mm512_mul_ps(ld_##NAME(g + c, m), r);                                      \
        _mm512_store_ps(gr + c, vgr);                                                            \
        _mm512_store_ps(t + 16 + c, _mm512_mul_ps(_mm512_mul_ps(vgr, xv), inv));                 \
    }                                                                                            \
}                                                                                                \
static void fwd_nhwc_avx_##NAME(const job_t *j, int64_t q0, int64_t q1) {                        \
    int64_t C = j->C, Cp = (C + 15) / 16 * 16;                                                   \
    float *sq = (float *)aligned_alloc(64, sizeof(float) * (Cp + 32));                           \
    memset(sq, 0, sizeof(float) * (Cp + 32));  /* zero lanes past C and a zero vector each side */ \
    for (int64_t q = q0; q < q1; q++)                                                            \
        pixel_avx_##NAME(j, (const S *)j->x + q * C, NULL, (S *)j->out + q * C, sq, NULL, NULL); \
    free(sq);                                                                                    \
}                                                                                                \
static void bwd_nhwc_avx_##NAME(const job_t *j, int64_t q0, int64_t q1) {                        \
    int64_t C = j->C, h = j->h, Cp = (C + 15) / 16 * 16;                                         \
    __m512 f = _mm512_set1_ps((float)(2 * j->a * j->beta));                                      \
    float *sq = (float *)aligned_alloc(64, sizeof(float) * (3 * Cp + 64));                       \
    float *t = sq + Cp + 32, *gr = t + Cp + 32;                                                  \
    memset(sq, 0, sizeof(float) * (3 * Cp + 64));                                                \
    for (int64_t q = q0; q < q1; q++) {                                                          \
        const S *x = (const S *)j->x + q * C;                                                    \
        S *dx = (S *)j->out + q * C;                                                             \
        pixel_avx_##NAME(j, x, (const S *)j->g + q * C, NULL, sq, gr, t);                        \
        __m512 prev = _mm512_setzero_ps(), cur = _mm512_load_ps(t + 16), next, w;                \
        for (int64_t c = 0; c < C; c += 16, prev = cur, cur = next) {                            \
            next = c + 16 < C ? _mm512_load_ps(t + 32 + c) : _mm512_setzero_ps();                \
            w = h <= 2 ? window_avx(prev, cur, next, h) : window_wide(t + 16, c, C, h);          \
            __mmask16 m = lanes(0, C - c);                                                       \
            __m512 v = _mm512_fnmadd_ps(_mm512_mul_ps(f, ld_##NAME(x + c, m)), w,                \
                                        _mm512_load_ps(gr + c));                                 \
            st_##NAME(dx + c, m, v);                                                             \
        }                                                                                        \
    }                                                                                            \
    free(sq);                                                                                    \
}                                                                                                \
/* NCHW: vectors run along the pixels of one channel row; the window is over rows P apart */     \
static inline __m512 sumsq_nchw_##NAME(const S *x, int64_t lo, int64_t hi, int64_t P, __mmask16 m) { \
    __m512 acc = _mm512_setzero_ps();                                                            \
    for (int64_t jj = lo; jj <= hi; jj++) {                                                      \
        __m512 v = ld_##NAME(x + jj * P, m);                                                     \
        acc = _mm512_fmadd_ps(v, v, acc);                                                        \
    }                                                                                            \
    return acc;                                                                                  \
}                                                                                                \
static void fwd_nchw_avx_##NAME(const job_t *j, int64_t i0, int64_t i1) {                        \
    int64_t C = j->C, P = j->P, B = j->B, h = j->h, nb = (P + B - 1) / B;                        \
    __m512 va = _mm512_set1_ps((float)j->a), vk = _mm512_set1_ps((float)j->k), r, inv;           \
    for (int64_t it = i0; it < i1; it++) {                                                       \
        int64_t n = it / nb, p0 = (it % nb) * B, len = P - p0 < B ? P - p0 : B;                  \
        const S *x = (const S *)j->x + n * C * P + p0;                                           \
        S *y = (S *)j->out + n * C * P + p0;                                                     \
        for (int64_t c = 0; c < C; c++) {                                                        \
            int64_t lo = c - h < 0 ? 0 : c - h, hi = c + h >= C ? C - 1 : c + h;                 \
            if (c + h + 4 < C)                                                                   \
                for (int64_t p = 0; p < len; p += 64 / sizeof(S))                                \
                    __builtin_prefetch(x + (c + h + 4) * P + p);                                 \
            for (int64_t p = 0; p < len; p += 16) {                                              \
                __mmask16 m = lanes(0, len - p);                                                 \
                pow_avx(sumsq_nchw_##NAME(x + p, lo, hi, P, m), va, vk, j->mode, &r, &inv);      \
                st_##NAME(y + c * P + p, m, _mm512_mul_ps(ld_##NAME(x + c * P + p, m), r));      \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
static void bwd_nchw_avx_##NAME(const job_t *j, int64_t i0, int64_t i1) {                        \
    int64_t C = j->C, P = j->P, B = j->B, h = j->h, nb = (P + B - 1) / B;                        \
    int64_t Bp = (B + 15) / 16 * 16;                                                             \
    __m512 va = _mm512_set1_ps((float)j->a), vk = _mm512_set1_ps((float)j->k), r, inv;           \
    __m512 f = _mm512_set1_ps((float)(2 * j->a * j->beta));                                      \
    float *gr = (float *)malloc(sizeof(float) * 2 * C * Bp), *t = gr + C * Bp;                   \
    for (int64_t it = i0; it < i1; it++) {                                                       \
        int64_t n = it / nb, p0 = (it % nb) * B, len = P - p0 < B ? P - p0 : B;                  \
        const S *x = (const S *)j->x + n * C * P + p0, *g = (const S *)j->g + n * C * P + p0;    \
        S *dx = (S *)j->out + n * C * P + p0;                                                    \
        for (int64_t c = 0; c < C; c++) {                                                        \
            int64_t lo = c - h < 0 ? 0 : c - h, hi = c + h >= C ? C - 1 : c + h;                 \
            if (c + h + 4 < C)                                                                   \
                for (int64_t p = 0; p < len; p += 64 / sizeof(S)) {                              \
                    __builtin_prefetch(x + (c + h + 4) * P + p);                                 \
                    __builtin_prefetch(g + (c + 4) * P + p);                                     \
                }                                                                                \
            for (int64_t p = 0; p < len; p += 16) {                                              \
                __mmask16 m = lanes(0, len - p);                                                 \
                pow_avx(sumsq_nchw_##NAME(x + p, lo, hi, P, m), va, vk, j->mode, &r, &inv);      \
                __m512 vgr = _mm512_mul_ps(ld_##NAME(g + c * P + p, m), r);                      \
                _mm512_storeu_ps(gr + c * Bp + p, vgr);                                          \
                _mm512_storeu_ps(t + c * Bp + p,                                                 \
                                 _mm512_mul_ps(_mm512_mul_ps(vgr, ld_##NAME(x + c * P + p, m)), inv)); \
            }                                                                                    \
        }                                                                                        \
        for (int64_t c = 0; c < C; c++) {                                                        \
            int64_t lo = c - h < 0 ? 0 : c - h, hi = c + h >= C ? C - 1 : c + h;                 \
            for (int64_t p = 0; p < len; p += 16) {                                              \
                __mmask16 m = lanes(0, len - p);                                                 \
                __m512 w = _mm512_setzero_ps();                                                  \
                for (int64_t jj = lo; jj <= hi; jj++) w = _mm512_add_ps(w, _mm512_loadu_ps(t + jj * Bp + p)); \
                __m512 v = _mm512_fnmadd_ps(_mm512_mul_ps(f, ld_##NAME(x + c * P + p, m)), w,    \
                                            _mm512_loadu_ps(gr + c * Bp + p));                   \
                st_##NAME(dx + c * P + p, m, v);                                                 \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    free(gr);                                                                                    \
}
AVX_WORKERS(float, float)
AVX_WORKERS(bf16, bf16)
static const worker_t WORKER_AVX[2][2][2] = {  /* [backward][nhwc][float, bf16] */
    {{fwd_nchw_avx_float, fwd_nchw_avx_bf16}, {fwd_nhwc_avx_float, fwd_nhwc_avx_bf16}},
    {{bwd_nchw_avx_float, bwd_nchw_avx_bf16}, {bwd_nhwc_avx_float, bwd_nhwc_avx_bf16}},
};
#endif
