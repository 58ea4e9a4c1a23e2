/* Per-row reductions (sum / max) of float32 rows, deterministic two-stage scheme:
 *   reduce_partial: work-group (p, r) reduces chunk p of row r with a local-memory tree
 *                   (the local size is any power of two, l holds one float per work-item)
 *                   into part[r*P + p]; neighbouring work-items read neighbouring values;
 *   reduce_final:   one work-item per row combines its P partials in order (CPU variant);
 *   reduce_final_g: one work-group per row, a bounded run of partials per work-item then a
 *                   tree (GPU variant; reduce_partial serves both).
 * max propagates NaN (like torch.max); the identity of max is -INFINITY. */

#define OP_SUM 0
#define OP_MAX 1

static inline float red_op(int op, float a, float b) {
    if (op == OP_SUM) return a + b;
    return (b > a || isnan(b)) && !isnan(a) ? b : a;
}

/* Row r is x[xoff + r*len ... xoff + (r+1)*len); chunk p covers [p*chunk, min(len, (p+1)*chunk)). */
__kernel void reduce_partial(__global const float *x, int xoff, int len, int chunk, int P, int op,
                             __global float *part, __local float *l) {
    int p = get_group_id(0), r = get_group_id(1);
    int lid = get_local_id(0), lsz = get_local_size(0);
    __global const float *row = x + xoff + r * len;
    int j1 = min(len, (p + 1) * chunk);
    float acc = op == OP_SUM ? 0.0f : -INFINITY;
    for (int j = p * chunk + lid; j < j1; j += lsz) acc = red_op(op, acc, row[j]);
    l[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        if (lid < s) l[lid] = red_op(op, l[lid], l[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) part[r * P + p] = l[0];
}

/* out[ooff + r] = combination of row r's P partials, divided by div for a mean (op == OP_SUM). */
__kernel void reduce_final(__global const float *part, int P, int rows, int op, float div,
                           __global float *out, int ooff) {
    int r = get_global_id(0);
    if (r >= rows) return;
    float acc = part[r * P];
    for (int p = 1; p < P; p++) acc = red_op(op, acc, part[r * P + p]);
    out[ooff + r] = op == OP_SUM ? acc / div : acc;
}

#ifdef STFPM_GPU
/* gws = (L, rows), lws = (L, 1), L a power of two: work-group r combines row r's P partials
 * (work-item lid those with p = lid, lid + L, ... in order, then a tree in l: L floats) into
 * out[ooff + r], divided by div for a mean (op == OP_SUM). */
__kernel void reduce_final_g(__global const float *part, int P, int rows, int op, float div,
                             __global float *out, int ooff, __local float *l) {
    const int r = get_group_id(1), lid = get_local_id(0), lsz = get_local_size(0);
    const int Pr = r < rows ? P : 0;   /* uniform over the work-group; no early return before a barrier */
    float acc = op == OP_SUM ? 0.0f : -INFINITY;
    for (int p = lid; p < Pr; p += lsz) acc = red_op(op, acc, part[r * P + p]);
    l[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lsz >> 1; s > 0; s >>= 1) {
        if (lid < s) l[lid] = red_op(op, l[lid], l[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0 && Pr) out[ooff + r] = op == OP_SUM ? l[0] / div : l[0];
}
#endif
