/* Fused cross-channel LRN for CPU: one pass forward, one pass backward (see lrn.py).
 *
 *   forward:  s_c = k + a * sum_{j in win(c)} x_j^2,   y_c = x_c * s_c^-beta
 *   backward: dx_c = g_c * s_c^-beta - 2 a beta x_c * sum_{j in win(c)} g_j x_j s_j^(-beta-1)
 *
 * win(c) = [max(0, c-h), min(C-1, c+h)], symmetric, so the transposed window in the backward
 * sum is the same window. Only x is kept for the backward, which recomputes s from it: the
 * window sum costs a few FMAs on data already in cache, saving an activation-sized tensor. Each call handles a range of work items so that Python can split a
 * batch over threads (ctypes releases the GIL). Layouts: NCHW (channels stride P = H*W,
 * items = (image, block of pixels)) and NHWC (channels contiguous, items = pixels).
 * Compiled without -ffast-math (which would switch the whole process to flush-to-zero).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* beta_mode: 1 -> beta = 0.75, 2 -> 0.5, 3 -> 1, 0 -> any (powf) */
#define POWNEG(T, SQRT, POW)                                                   \
    static inline T powneg_##T(T s, int mode, T beta) {                        \
        if (mode == 1) { T r = SQRT(s); return (T)1 / (r * SQRT(r)); }         \
        if (mode == 2) return (T)1 / SQRT(s);                                  \
        if (mode == 3) return (T)1 / s;                                        \
        return POW(s, -beta);                                                  \
    }
POWNEG(float, sqrtf, powf)
POWNEG(double, sqrt, pow)

#define KERNELS(T)                                                                             \
void lrn_fwd_nchw_##T(const T *x, T *y, int64_t C, int64_t P, int64_t B,                       \
                      int64_t item0, int64_t item1, int64_t h, T a, T beta, T k, int mode) {   \
    int64_t nb = (P + B - 1) / B;                                                              \
    T *acc = (T *)malloc(sizeof(T) * B);                                                       \
    for (int64_t it = item0; it < item1; it++) {                                               \
        int64_t n = it / nb, p0 = (it % nb) * B, len = P - p0 < B ? P - p0 : B;               \
        const T *xn = x + n * C * P + p0;                                                      \
        for (int64_t c = 0; c < C; c++) {                                                      \
            int64_t lo = c - h < 0 ? 0 : c - h, hi = c + h >= C ? C - 1 : c + h;               \
            memset(acc, 0, sizeof(T) * len);                                                   \
            for (int64_t j = lo; j <= hi; j++) {                                               \
                const T *xj = xn + j * P;                                                      \
                for (int64_t p = 0; p < len; p++) acc[p] += xj[p] * xj[p];                     \
            }                                                                                  \
            const T *xc = xn + c * P;                                                          \
            T *yc = y + n * C * P + c * P + p0;                                                \
            for (int64_t p = 0; p < len; p++) yc[p] = xc[p] * powneg_##T(k + a * acc[p], mode, beta); \
        }                                                                                      \
    }                                                                                          \
    free(acc);                                                                                 \
}                                                                                              \
                                                                                               \
void lrn_bwd_nchw_##T(const T *g, const T *x, T *dx, int64_t C, int64_t P, int64_t B,          \
                      int64_t item0, int64_t item1, int64_t h, T a, T beta, T k, int mode) {   \
    int64_t nb = (P + B - 1) / B;                                                              \
    T *t = (T *)malloc(sizeof(T) * C * B), *acc = (T *)malloc(sizeof(T) * B);                 \
    T f = 2 * a * beta;                                                                        \
    for (int64_t it = item0; it < item1; it++) {                                               \
        int64_t n = it / nb, p0 = (it % nb) * B, len = P - p0 < B ? P - p0 : B;               \
        int64_t off = n * C * P + p0;                                                          \
        for (int64_t c = 0; c < C; c++) { /* s recomputed; t_c = g x s^-beta / s; dx = g s^-beta */ \
            int64_t lo = c - h < 0 ? 0 : c - h, hi = c + h >= C ? C - 1 : c + h;               \
            memset(acc, 0, sizeof(T) * len);                                                   \
            for (int64_t j = lo; j <= hi; j++) {                                               \
                const T *xj = x + off + j * P;                                                 \
                for (int64_t p = 0; p < len; p++) acc[p] += xj[p] * xj[p];                     \
            }                                                                                  \
            const T *gc = g + off + c * P, *xc = x + off + c * P;                              \
            T *dc = dx + off + c * P, *tc = t + c * B;                                         \
            for (int64_t p = 0; p < len; p++) {                                                \
                T s = k + a * acc[p], gr = gc[p] * powneg_##T(s, mode, beta);                  \
                dc[p] = gr;                                                                    \
                tc[p] = gr * xc[p] / s;                                                        \
            }                                                                                  \
        }                                                                                      \
        for (int64_t c = 0; c < C; c++) {                                                      \
            int64_t lo = c - h < 0 ? 0 : c - h, hi = c + h >= C ? C - 1 : c + h;               \
            memset(acc, 0, sizeof(T) * len);                                                   \
            for (int64_t j = lo; j <= hi; j++)                                                 \
                for (int64_t p = 0; p < len; p++) acc[p] += t[j * B + p];                      \
            const T *xc = x + off + c * P;                                                     \
            T *dc = dx + off + c * P;                                                          \
            for (int64_t p = 0; p < len; p++) dc[p] -= f * xc[p] * acc[p];                     \
        }                                                                                      \
    }                                                                                          \
    free(t);                                                                                   \
    free(acc);                                                                                 \
}                                                                                              \
                                                                                               \
/* NHWC: window sums over the contiguous channels of one pixel, built from a zero-padded row */ \
static void window_nhwc_##T(const T *v, T *pad, T *out, int64_t C, int64_t h, int squares) {   \
    for (int64_t c = 0; c < C; c++) pad[h + c] = squares ? v[c] * v[c] : v[c];                 \
    memcpy(out, pad, sizeof(T) * C);                                                           \
    for (int64_t d = 1; d <= 2 * h; d++)                                                       \
        for (int64_t c = 0; c < C; c++) out[c] += pad[c + d];                                  \
}                                                                                              \
                                                                                               \
void lrn_fwd_nhwc_##T(const T *x, T *y, int64_t C, int64_t q0, int64_t q1, int64_t h,          \
                      T a, T beta, T k, int mode) {                                            \
    T *pad = (T *)calloc(C + 2 * h, sizeof(T)), *acc = (T *)malloc(sizeof(T) * C);             \
    for (int64_t q = q0; q < q1; q++) {                                                        \
        const T *xq = x + q * C;                                                               \
        T *yq = y + q * C;                                                                     \
        window_nhwc_##T(xq, pad, acc, C, h, 1);                                                \
        for (int64_t c = 0; c < C; c++) yq[c] = xq[c] * powneg_##T(k + a * acc[c], mode, beta); \
    }                                                                                          \
    free(pad);                                                                                 \
    free(acc);                                                                                 \
}                                                                                              \
                                                                                               \
void lrn_bwd_nhwc_##T(const T *g, const T *x, T *dx, int64_t C, int64_t q0, int64_t q1,        \
                      int64_t h, T a, T beta, T k, int mode) {                                 \
    T *pad = (T *)calloc(C + 2 * h, sizeof(T)), *acc = (T *)malloc(sizeof(T) * C);             \
    T *t = (T *)malloc(sizeof(T) * C), f = 2 * a * beta;                                       \
    for (int64_t q = q0; q < q1; q++) {                                                        \
        const T *gq = g + q * C, *xq = x + q * C;                                              \
        T *dq = dx + q * C;                                                                    \
        window_nhwc_##T(xq, pad, acc, C, h, 1);                                                \
        for (int64_t c = 0; c < C; c++) {                                                      \
            T s = k + a * acc[c], gr = gq[c] * powneg_##T(s, mode, beta);                      \
            dq[c] = gr;                                                                        \
            t[c] = gr * xq[c] / s;                                                             \
        }                                                                                      \
        window_nhwc_##T(t, pad, acc, C, h, 0);                                                 \
        for (int64_t c = 0; c < C; c++) dq[c] -= f * xq[c] * acc[c];                           \
    }                                                                                          \
    free(pad);                                                                                 \
    free(acc);                                                                                 \
    free(t);                                                                                   \
}

KERNELS(float)
KERNELS(double)
