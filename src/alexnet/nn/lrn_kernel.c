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
 * uint16 and computed in float (autocast hands the LRN bf16 conv outputs). The portable path
 * below is plain C whose row loops the compiler vectorises; on AVX-512 CPUs the float and bf16
 * work goes to lrn_kernel_avx512.c. Either way the only memory traffic is reading x (and g)
 * and writing y (or dx) once.
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
typedef void (*worker_t)(const job_t *, int64_t, int64_t);  /* runs items [i0, i1) */

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


/* ---- AVX-512 workers for float and bf16 (compiled only where -march=native has AVX-512) ---- */
#include "lrn_kernel_avx512.c"

/* ---- entry point --------------------------------------------------------------------------- */
static const worker_t WORKER[2][2][3] = {  /* [backward][nhwc][float, double, bf16] */
    {{fwd_nchw_float, fwd_nchw_double, fwd_nchw_bf16}, {fwd_nhwc_float, fwd_nhwc_double, fwd_nhwc_bf16}},
    {{bwd_nchw_float, bwd_nchw_double, bwd_nchw_bf16}, {bwd_nhwc_float, bwd_nhwc_double, bwd_nhwc_bf16}},
};


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
