/* Fused cross-channel LRN for CPU: one pass forward, one pass backward (see lrn.py).
 *
 *   forward:  s_c = k + a * sum_{j in win(c)} x_j^2,   y_c = x_c * s_c^-beta
 *   backward: dx_c = g_c * s_c^-beta - 2 a beta x_c * sum_{j in win(c)} g_j x_j s_j^(-beta-1)
 *
 * win(c) = [max(0, c-h), min(C-1, c+h)], symmetric, so the transposed window in the backward
 * sum is the same window. Only x is kept for the backward, which recomputes s from it: the
 * window sum costs a few FMAs on data already in cache, saving an activation-sized tensor.
 *
 * Layouts: NHWC (channels contiguous; a work item is one pixel) and NCHW (channel stride P = H*W;
 * a work item is one image's block of B pixels). Types: float, double, and bfloat16 stored as
 * uint16 and computed in float (autocast hands the LRN bf16 conv outputs). Every pass is a
 * plain loop over a row in L1 that the compiler vectorises; the only memory traffic is reading
 * x (and g) and writing y (or dx) once.
 *
 * Threads: built with -fopenmp against the libgomp torch already loaded, the kernel runs on
 * torch's own OpenMP threads (no second pool competing for the cores); dynamic chunks, so a
 * core slowed by other load takes fewer of them. Without OpenMP, Python splits the range.
 * Compiled without -ffast-math (which would switch the whole process to flush-to-zero).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef uint16_t bf16;

/* bfloat16 is the upper half of a float32: widening is a shift, narrowing rounds to nearest
 * even (NaN stays NaN). Integer ops, so they vectorise on any CPU. */
static inline float bf16_to_float(bf16 v) {
    union { uint32_t u; float f; } c = { (uint32_t)v << 16 };
    return c.f;
}
static inline bf16 float_to_bf16(float f) {
    union { float f; uint32_t u; } c = { f };
    uint32_t r = (c.u + 0x7fffu + ((c.u >> 16) & 1u)) >> 16;
    return (c.u & 0x7fffffffu) > 0x7f800000u ? (bf16)((c.u >> 16) | 0x40u) : (bf16)r;
}

typedef struct {  /* one call's arguments, shared by all threads */
    const void *x, *g;
    void *out;
    int64_t C, P, B, h;
    double a, beta, k;
    int mode;  /* 1: beta = 0.75, 2: 0.5, 3: 1, 0: any (pow) */
} job_t;

/* ---- row passes on the compute type T (float or double) ------------------------------------ */
/* Runs the body with the constant M_ = mode, so that den() below folds to one formula per loop and
 * the loop vectorises (powf only for an unusual beta). */
#define BY_MODE(...)                                                                            \
    switch (mode) {                                                                              \
    case 1: { enum { M_ = 1 }; __VA_ARGS__; } break;                                                    \
    case 2: { enum { M_ = 2 }; __VA_ARGS__; } break;                                                    \
    case 3: { enum { M_ = 3 }; __VA_ARGS__; } break;                                                    \
    default: { enum { M_ = 0 }; __VA_ARGS__; }                                                          \
    }

#define CORE(T, SQRT, POW)                                                                       \
/* NHWC: out_c = sum_{d=0}^{2h} pad[c+d] over a row padded with h zeros at each end */           \
static void window_##T(const T *restrict pad, T *restrict out, int64_t n, int64_t h) {          \
    if (h == 2) { /* the paper's n = 5: one pass */                                              \
        for (int64_t c = 0; c < n; c++) out[c] = pad[c] + pad[c + 1] + pad[c + 2] + pad[c + 3] + pad[c + 4]; \
        return;                                                                                  \
    }                                                                                            \
    memcpy(out, pad, sizeof(T) * n);                                                             \
    for (int64_t d = 1; d <= 2 * h; d++)                                                         \
        for (int64_t c = 0; c < n; c++) out[c] += pad[c + d];                                    \
}                                                                                                \
/* NCHW: acc_p = sum_{j in win(c)} f(rows[j][p]), rows `stride` apart; f = square or identity */ \
static void rows_##T(const T *restrict rows, int64_t stride, T *restrict acc, int64_t c,        \
                     int64_t C, int64_t n, int64_t h, int squares) {                             \
    int64_t lo = c - h < 0 ? 0 : c - h, hi = c + h >= C ? C - 1 : c + h;                         \
    memset(acc, 0, sizeof(T) * n);                                                               \
    for (int64_t j = lo; j <= hi; j++) {                                                         \
        const T *restrict r = rows + j * stride;                                                 \
        if (squares) for (int64_t p = 0; p < n; p++) acc[p] += r[p] * r[p];                      \
        else for (int64_t p = 0; p < n; p++) acc[p] += r[p];                                     \
    }                                                                                            \
}                                                                                                \
/* s^beta: the paper's beta = 0.75 as two square roots (exact, and vectorised, unlike powf) */  \
static inline T den_##T(T s, int mode, T beta) {                                                 \
    if (mode == 1) { T q = SQRT(s); return q * SQRT(q); }                                        \
    if (mode == 2) return SQRT(s);                                                               \
    if (mode == 3) return s;                                                                     \
    return POW(s, beta);                                                                         \
}                                                                                                \
/* y = x s^-beta, s = k + a*acc */                                                               \
static void fwd_row_portable_##T(T *restrict acc, const T *restrict x, T *restrict y, int64_t n, \
                                 T a, T k, T beta, int mode) {                                   \
    BY_MODE(for (int64_t p = 0; p < n; p++) y[p] = x[p] / den_##T(k + a * acc[p], M_, beta))     \
}                                                                                                \
/* first half of the backward: gr = g s^-beta, t = g x s^(-beta-1), one division */              \
static void bwd_mid_portable_##T(T *restrict acc, const T *restrict g, const T *restrict x,      \
                                 T *restrict gr, T *restrict t, int64_t n, T a, T k, T beta,     \
                                 int mode) {                                                     \
    BY_MODE(for (int64_t p = 0; p < n; p++) {                                                    \
        T s = k + a * acc[p], inv = (T)1 / (s * den_##T(s, M_, beta));                           \
        gr[p] = g[p] * s * inv;                                                                  \
        t[p] = g[p] * x[p] * inv;                                                                \
    })                                                                                           \
}                                                                                                \
/* second half: dx = gr - 2 a beta x * window(t) */                                              \
static void bwd_out_##T(const T *restrict gr, const T *restrict x, const T *restrict w,          \
                        T *restrict dx, T f, int64_t n) {                                        \
    for (int64_t p = 0; p < n; p++) dx[p] = gr[p] - f * x[p] * w[p];                             \
}

CORE(float, sqrtf, powf)
CORE(double, sqrt, pow)
#define fwd_row_double fwd_row_portable_double
#define bwd_mid_double bwd_mid_portable_double

#define fwd_row_float fwd_row_portable_float
#define bwd_mid_float bwd_mid_portable_float

/* ---- storage <-> compute: float/double are used in place, bf16 goes through a float row ---- */
#define IN_PLACE(S)                                                                              \
static inline const S *load_##S(const S *src, S *buf, int64_t n) { (void)buf; (void)n; return src; } \
static inline S *dest_##S(S *dst, S *buf) { (void)buf; return dst; }                            \
static inline void store_##S(S *dst, const S *buf, int64_t n) { (void)dst; (void)buf; (void)n; }
IN_PLACE(float)
IN_PLACE(double)
#define WIDENS_float 0
#define WIDENS_double 0
#define WIDENS_bf16 1
static inline const float *load_bf16(const bf16 *restrict src, float *restrict buf, int64_t n) {
    for (int64_t i = 0; i < n; i++) buf[i] = bf16_to_float(src[i]);
    return buf;
}
static inline float *dest_bf16(bf16 *dst, float *buf) { (void)dst; return buf; }
static inline void store_bf16(bf16 *restrict dst, const float *restrict buf, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = float_to_bf16(buf[i]);
}

/* ---- range workers: NAME is the storage type's name, S its C type, T the compute type ------- */
#define WORKERS(NAME, S, T)                                                                      \
static void fwd_nhwc_##NAME(const job_t *j, int64_t q0, int64_t q1) {                            \
    int64_t C = j->C, h = j->h;                                                                  \
    T *pad = (T *)calloc(C + 2 * h, sizeof(T)), *buf = (T *)malloc(sizeof(T) * 3 * C);          \
    T *xb = buf, *yb = buf + C, *acc = buf + 2 * C;                                              \
    for (int64_t q = q0; q < q1; q++) {                                                          \
        const T *x = load_##NAME((const S *)j->x + q * C, xb, C);                                \
        T *y = dest_##NAME((S *)j->out + q * C, yb);                                             \
        for (int64_t c = 0; c < C; c++) pad[h + c] = x[c] * x[c];                                \
        window_##T(pad, acc, C, h);                                                              \
        fwd_row_##T(acc, x, y, C, (T)j->a, (T)j->k, (T)j->beta, j->mode);                        \
        store_##NAME((S *)j->out + q * C, y, C);                                                 \
    }                                                                                            \
    free(pad);                                                                                   \
    free(buf);                                                                                   \
}                                                                                                \
static void bwd_nhwc_##NAME(const job_t *j, int64_t q0, int64_t q1) {                            \
    int64_t C = j->C, h = j->h;                                                                  \
    T *pad = (T *)calloc(C + 2 * h, sizeof(T)), *tpad = (T *)calloc(C + 2 * h, sizeof(T));      \
    T *buf = (T *)malloc(sizeof(T) * 5 * C), f = (T)(2 * j->a * j->beta);                        \
    T *xb = buf, *gb = buf + C, *db = buf + 2 * C, *acc = buf + 3 * C, *gr = buf + 4 * C;        \
    for (int64_t q = q0; q < q1; q++) {                                                          \
        const T *x = load_##NAME((const S *)j->x + q * C, xb, C);                                \
        const T *g = load_##NAME((const S *)j->g + q * C, gb, C);                                \
        T *dx = dest_##NAME((S *)j->out + q * C, db);                                            \
        for (int64_t c = 0; c < C; c++) pad[h + c] = x[c] * x[c];                                \
        window_##T(pad, acc, C, h);                                                              \
        bwd_mid_##T(acc, g, x, gr, tpad + h, C, (T)j->a, (T)j->k, (T)j->beta, j->mode);          \
        window_##T(tpad, acc, C, h);                                                             \
        bwd_out_##T(gr, x, acc, dx, f, C);                                                       \
        store_##NAME((S *)j->out + q * C, dx, C);                                                \
    }                                                                                            \
    free(pad);                                                                                   \
    free(tpad);                                                                                  \
    free(buf);                                                                                   \
}                                                                                                \
/* NCHW: item = (image, block of B pixels); bf16 blocks are widened into a float tile first */   \
static const T *tile_##NAME(const S *src, int64_t P, T *tile, int64_t B, int64_t C,             \
                            int64_t len, int64_t *stride) {                                      \
    if (!WIDENS_##NAME) { *stride = P; return (const T *)src; }                                  \
    for (int64_t c = 0; c < C; c++) load_##NAME(src + c * P, tile + c * B, len);                 \
    *stride = B;                                                                                 \
    return tile;                                                                                 \
}                                                                                                \
static void fwd_nchw_##NAME(const job_t *j, int64_t i0, int64_t i1) {                            \
    int64_t C = j->C, P = j->P, B = j->B, nb = (P + B - 1) / B, sx;                              \
    T *tile = (T *)malloc(sizeof(T) * (C * B + 2 * B)), *acc = tile + C * B, *yb = acc + B;      \
    for (int64_t it = i0; it < i1; it++) {                                                       \
        int64_t n = it / nb, p0 = (it % nb) * B, len = P - p0 < B ? P - p0 : B;                 \
        int64_t off = n * C * P + p0;                                                            \
        const T *x = tile_##NAME((const S *)j->x + off, P, tile, B, C, len, &sx);               \
        for (int64_t c = 0; c < C; c++) {                                                        \
            S *yc = (S *)j->out + off + c * P;                                                   \
            T *y = dest_##NAME(yc, yb);                                                          \
            rows_##T(x, sx, acc, c, C, len, j->h, 1);                                            \
            fwd_row_##T(acc, x + c * sx, y, len, (T)j->a, (T)j->k, (T)j->beta, j->mode);         \
            store_##NAME(yc, y, len);                                                            \
        }                                                                                        \
    }                                                                                            \
    free(tile);                                                                                  \
}                                                                                                \
static void bwd_nchw_##NAME(const job_t *j, int64_t i0, int64_t i1) {                            \
    int64_t C = j->C, P = j->P, B = j->B, nb = (P + B - 1) / B, sx, sg;                          \
    T *buf = (T *)malloc(sizeof(T) * (4 * C * B + 2 * B)), f = (T)(2 * j->a * j->beta);          \
    T *xt = buf, *gt = xt + C * B, *t = gt + C * B, *gr = t + C * B;                             \
    T *acc = gr + C * B, *db = acc + B;                                                          \
    for (int64_t it = i0; it < i1; it++) {                                                       \
        int64_t n = it / nb, p0 = (it % nb) * B, len = P - p0 < B ? P - p0 : B;                 \
        int64_t off = n * C * P + p0;                                                            \
        const T *x = tile_##NAME((const S *)j->x + off, P, xt, B, C, len, &sx);                 \
        const T *g = tile_##NAME((const S *)j->g + off, P, gt, B, C, len, &sg);                 \
        for (int64_t c = 0; c < C; c++) {                                                        \
            rows_##T(x, sx, acc, c, C, len, j->h, 1);                                            \
            bwd_mid_##T(acc, g + c * sg, x + c * sx, gr + c * B, t + c * B, len, (T)j->a, (T)j->k, \
                        (T)j->beta, j->mode);                                                    \
        }                                                                                        \
        for (int64_t c = 0; c < C; c++) {                                                        \
            S *dc = (S *)j->out + off + c * P;                                                   \
            T *dx = dest_##NAME(dc, db);                                                         \
            rows_##T(t, B, acc, c, C, len, j->h, 0);                                             \
            bwd_out_##T(gr + c * B, x + c * sx, acc, dx, f, len);                                \
            store_##NAME(dc, dx, len);                                                           \
        }                                                                                        \
    }                                                                                            \
    free(buf);                                                                                   \
}

WORKERS(float, float, float)
WORKERS(double, double, double)
WORKERS(bf16, bf16, float)


/* ---- AVX-512 (F+BW+VL) workers for float and bf16 storage, computed in float ----------------
 * The portable passes spend their time in the divide/square-root unit and in store-to-load
 * stalls (a row is written, then re-read at an offset by the window sum). Here the window is
 * summed in registers from masked, shifted loads of the input itself (masked-off lanes are the
 * zero padding and never touch memory), and s^-0.75 = s^-1/2 (s s^-1/2)^-1/2 comes from the
 * 14-bit reciprocal square root plus one Newton step each (~1e-7 relative, like the division it
 * replaces), on the FMA units. NCHW prefetches the rows a few channels ahead: with one stream
 * per channel the hardware prefetcher cannot follow. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define HAVE_AVX512 1

static inline __mmask16 lanes(int64_t lo, int64_t hi) {  /* lanes l with lo <= l < hi */
    lo = lo < 0 ? 0 : lo;
    hi = hi > 16 ? 16 : hi;
    return hi <= lo ? 0 : (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}
/* full vectors unmasked: masked memory ops are slower on some cores (Zen) */
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
/* one pixel: squares (fwd) in sq, then per 16 channels s, r = s^-beta and, for the backward,   \
 * gr = g r and t = gr x / s into rows of Cp floats (aligned, re-read whole: no stalls) */      \
static inline void pixel_avx_##NAME(const job_t *j, const S *x, const S *g, S *y, float *sq,      \
                                    float *gr, float *t) {                                        \
    int64_t C = j->C, h = j->h;                                                                  \
    __m512 va = _mm512_set1_ps((float)j->a), vk = _mm512_set1_ps((float)j->k), r, inv, acc;     \
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
    memset(sq, 0, sizeof(float) * (3 * Cp + 64));                                               \
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
static void fwd_nchw_avx_##NAME(const job_t *j, int64_t i0, int64_t i1) {                        \
    int64_t C = j->C, P = j->P, B = j->B, h = j->h, nb = (P + B - 1) / B;                       \
    __m512 va = _mm512_set1_ps((float)j->a), vk = _mm512_set1_ps((float)j->k), r, inv;          \
    for (int64_t it = i0; it < i1; it++) {                                                       \
        int64_t n = it / nb, p0 = (it % nb) * B, len = P - p0 < B ? P - p0 : B;                 \
        const S *x = (const S *)j->x + n * C * P + p0;                                           \
        S *y = (S *)j->out + n * C * P + p0;                                                     \
        for (int64_t c = 0; c < C; c++) {                                                        \
            int64_t lo = c - h < 0 ? 0 : c - h, hi = c + h >= C ? C - 1 : c + h;                 \
            if (c + h + 4 < C)                                                                   \
                for (int64_t p = 0; p < len; p += 64 / sizeof(S))                                \
                    __builtin_prefetch(x + (c + h + 4) * P + p);                                 \
            for (int64_t p = 0; p < len; p += 16) {                                              \
                __mmask16 m = lanes(0, len - p);                                                 \
                __m512 acc = _mm512_setzero_ps();                                                \
                for (int64_t jj = lo; jj <= hi; jj++) {                                          \
                    __m512 v = ld_##NAME(x + jj * P + p, m);                                     \
                    acc = _mm512_fmadd_ps(v, v, acc);                                            \
                }                                                                                \
                pow_avx(acc, va, vk, j->mode, &r, &inv);                                         \
                st_##NAME(y + c * P + p, m, _mm512_mul_ps(ld_##NAME(x + c * P + p, m), r));      \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
static void bwd_nchw_avx_##NAME(const job_t *j, int64_t i0, int64_t i1) {                        \
    int64_t C = j->C, P = j->P, B = j->B, h = j->h, nb = (P + B - 1) / B;                       \
    int64_t Bp = (B + 15) / 16 * 16;                                                             \
    __m512 va = _mm512_set1_ps((float)j->a), vk = _mm512_set1_ps((float)j->k), r, inv;          \
    __m512 f = _mm512_set1_ps((float)(2 * j->a * j->beta));                                      \
    float *gr = (float *)malloc(sizeof(float) * 2 * C * Bp), *t = gr + C * Bp;                   \
    for (int64_t it = i0; it < i1; it++) {                                                       \
        int64_t n = it / nb, p0 = (it % nb) * B, len = P - p0 < B ? P - p0 : B;                 \
        const S *x = (const S *)j->x + n * C * P + p0, *g = (const S *)j->g + n * C * P + p0;   \
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
                __m512 acc = _mm512_setzero_ps();                                                \
                for (int64_t jj = lo; jj <= hi; jj++) {                                          \
                    __m512 v = ld_##NAME(x + jj * P + p, m);                                     \
                    acc = _mm512_fmadd_ps(v, v, acc);                                            \
                }                                                                                \
                pow_avx(acc, va, vk, j->mode, &r, &inv);                                         \
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
#endif

/* ---- entry point --------------------------------------------------------------------------- */
typedef void (*worker_t)(const job_t *, int64_t, int64_t);
static const worker_t WORKER[2][2][3] = {  /* [backward][nhwc][float, double, bf16] */
    {{fwd_nchw_float, fwd_nchw_double, fwd_nchw_bf16}, {fwd_nhwc_float, fwd_nhwc_double, fwd_nhwc_bf16}},
    {{bwd_nchw_float, bwd_nchw_double, bwd_nchw_bf16}, {bwd_nhwc_float, bwd_nhwc_double, bwd_nhwc_bf16}},
};

#ifdef HAVE_AVX512
static const worker_t WORKER_AVX[2][2][2] = {  /* [backward][nhwc][float, bf16] */
    {{fwd_nchw_avx_float, fwd_nchw_avx_bf16}, {fwd_nhwc_avx_float, fwd_nhwc_avx_bf16}},
    {{bwd_nchw_avx_float, bwd_nchw_avx_bf16}, {bwd_nhwc_avx_float, bwd_nhwc_avx_bf16}},
};
#endif

int lrn_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* Items [i0, i1): pixels (NHWC) or image blocks (NCHW), in chunks of `chunk` spread over
 * `threads` OpenMP threads (one thread, the caller's, when built without OpenMP). */
void lrn_run(int backward, int nhwc, int dtype, const void *x, const void *g, void *out,
             int64_t C, int64_t P, int64_t B, int64_t h, double a, double beta, double k, int mode,
             int64_t i0, int64_t i1, int64_t chunk, int threads) {
    job_t j = {x, g, out, C, P, B, h, a, beta, k, mode};
    worker_t fn = WORKER[backward != 0][nhwc != 0][dtype];
#ifdef HAVE_AVX512
    if (dtype != 1 && mode != 0) fn = WORKER_AVX[backward != 0][nhwc != 0][dtype == 2];
#endif
    int64_t n = chunk > 0 ? (i1 - i0 + chunk - 1) / chunk : 0;
#ifdef _OPENMP
    if (threads > 1 && n > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int64_t c = 0; c < n; c++) {
            int64_t e = i0 + (c + 1) * chunk;
            fn(&j, i0 + c * chunk, e < i1 ? e : i1);
        }
        return;
    }
#endif
    (void)threads;
    (void)n;
    fn(&j, i0, i1);
}
