/* The paper's update (§5) in one sweep over memory instead of four torch ops (each a full pass
 * over 61 M parameters, read and written):
 *
 *   v <- mu v - lr wd w - lr g,   w <- w + v
 *
 * Built by alexnet.nn.native (OpenMP on torch's own threads where available; see native.py).
 */
#include <stdint.h>

void paper_sgd_float(float *restrict w, const float *restrict g, float *restrict v, int64_t n,
                     float lr, float mu, float wd, int threads) {
    float a = -lr * wd, b = -lr;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && n >= (1 << 16))
#endif
    for (int64_t i = 0; i < n; i++) {
        float vi = mu * v[i] + a * w[i] + b * g[i];
        v[i] = vi;
        w[i] += vi;
    }
    (void)threads;
}
