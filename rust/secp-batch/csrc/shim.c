/* Batch verification of ECDSA signatures against known public keys, over libsecp256k1's own
 * internals (field, scalar, group, ecmult_multi_var). See ../src/lib.rs for the contract.
 *
 * The lifts of R take their square roots from vsqrt.h on CPUs with AVX-512 IFMA, each checked
 * with libsecp256k1's own arithmetic before use (x402b_lift).
 *
 * The sum is computed by libsecp256k1's Pippenger bucket method (ecmult_pippenger_wnaf) with
 * the library's endomorphism split; the driver below differs from ecmult_multi_var's only in
 * not splitting scalars that are already below 2^128 (see x402b_pippenger).
 *
 * Every libsecp256k1 function included here is `static`, so this object carries a private copy
 * of what it uses and exports nothing of the library's. The only external symbols libsecp256k1
 * headers declare are the G tables of ecmult; they are renamed to this shim's prefix below so
 * they cannot collide with secp256k1-sys's copy in the same link. Exported functions: x402b_*.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define rustsecp256k1_v0_14_pre_g x402b_pre_g
#define rustsecp256k1_v0_14_pre_g_128 x402b_pre_g_128

#include "util.h"
#include "field_impl.h"
#include "scalar_impl.h"
#include "group_impl.h"
#include "ecmult_impl.h"
#include "int128_impl.h"
#include "scratch_impl.h" /* declared by ecmult.h; unused here */
#include "vsqrt.h"

/* ECMULT_WINDOW_SIZE is 2 (build.rs): the G tables hold one entry each, G and 2^128*G, copied
 * from libsecp256k1's generated precomputed_ecmult.c. x402b_check never passes a G scalar to
 * ecmult_multi_var (G goes in as an ordinary point), so the tables are only there to satisfy
 * the link; x402b_selftest checks their contents anyway. */
#define S(a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p) SECP256K1_GE_STORAGE_CONST(0x##a##u,0x##b##u,0x##c##u,0x##d##u,0x##e##u,0x##f##u,0x##g##u,0x##h##u,0x##i##u,0x##j##u,0x##k##u,0x##l##u,0x##m##u,0x##n##u,0x##o##u,0x##p##u)
const rustsecp256k1_v0_14_ge_storage x402b_pre_g[ECMULT_TABLE_SIZE(WINDOW_G)] = {
 S(79be667e,f9dcbbac,55a06295,ce870b07,29bfcdb,2dce28d9,59f2815b,16f81798,483ada77,26a3c465,5da4fbfc,e1108a8,fd17b448,a6855419,9c47d08f,fb10d4b8)
};
const rustsecp256k1_v0_14_ge_storage x402b_pre_g_128[ECMULT_TABLE_SIZE(WINDOW_G)] = {
 S(8f68b9d2,f63b5f33,9239c1ad,981f162e,e88c5678,723ea335,1b7b444c,9ec4c0da,662a9f2d,ba063986,de1d90c2,b6be215d,bbea2cfe,95510bfd,f23cbf79,501fff82)
};
#undef S

typedef rustsecp256k1_v0_14_fe fe;
typedef rustsecp256k1_v0_14_ge ge;
typedef rustsecp256k1_v0_14_gej gej;
typedef rustsecp256k1_v0_14_scalar scalar;

/* Layouts shared with src/lib.rs (#[repr(C)], byte arrays only: alignment 1, no padding). */
typedef struct {
    unsigned char r[32];
    unsigned char s[32];
    unsigned char z[32];
    unsigned char odd;
} x402b_sig;

typedef struct {
    unsigned char rx[32];
    unsigned char ry[32];
    unsigned char u1[32];
    unsigned char u2[32];
} x402b_prepared;

/* Reads 64 bytes x || y into an affine point on the curve; 0 if either coordinate is not below
 * p or the point is not on the curve. */
static int x402b_ge_read(ge *out, const unsigned char *xy) {
    fe x, y;
    if (!rustsecp256k1_v0_14_fe_set_b32_limit(&x, xy) || !rustsecp256k1_v0_14_fe_set_b32_limit(&y, xy + 32)) {
        return 0;
    }
    rustsecp256k1_v0_14_ge_set_xy(out, &x, &y);
    return rustsecp256k1_v0_14_ge_is_valid_var(out);
}

static void x402b_ge_write(unsigned char *xy, ge *p) {
    rustsecp256k1_v0_14_fe_normalize_var(&p->x);
    rustsecp256k1_v0_14_fe_normalize_var(&p->y);
    rustsecp256k1_v0_14_fe_get_b32(xy, &p->x);
    rustsecp256k1_v0_14_fe_get_b32(xy + 32, &p->y);
}

/* 1 iff the 64 bytes are a point on the curve (a usable public key). */
int x402b_point_valid(const unsigned char *xy64) {
    ge p;
    return x402b_ge_read(&p, xy64);
}

/* 1 iff this CPU (and its OS) runs the AVX-512 IFMA square roots of vsqrt.h. */
int x402b_vsqrt_available(void) {
#ifdef X402B_HAVE_VSQRT
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
#else
    return 0;
#endif
}

/* R = (x, y) with y the root of c = x^3 + 7 of parity odd, from a root candidate (5 limbs from
 * vsqrt.h, or NULL): the candidate is taken only if libsecp256k1's own arithmetic squares it
 * to c; otherwise libsecp256k1's fe_sqrt of c decides (the rest is ge_set_xo_var's, given the
 * c already computed). Returns 0 iff no such point exists. */
static int x402b_lift(ge *R, const fe *x, const fe *c, const uint64_t *candidate, int odd) {
    fe y, yy;
    int found = 0;
    if (candidate != NULL) {
        /* Masked into libsecp256k1's limb bounds (magnitude 2 at most), so whatever the kernel
         * produced, y is a valid field element and the test below is exact. */
        y.n[0] = candidate[0] & 0xFFFFFFFFFFFFFULL;
        y.n[1] = candidate[1] & 0xFFFFFFFFFFFFFULL;
        y.n[2] = candidate[2] & 0xFFFFFFFFFFFFFULL;
        y.n[3] = candidate[3] & 0xFFFFFFFFFFFFFULL;
        y.n[4] = candidate[4] & 0x1FFFFFFFFFFFFULL;
        rustsecp256k1_v0_14_fe_sqr(&yy, &y);
        found = rustsecp256k1_v0_14_fe_equal(&yy, c);
    }
    if (!found && !rustsecp256k1_v0_14_fe_sqrt(&y, c)) {
        return 0;
    }
    rustsecp256k1_v0_14_fe_normalize_var(&y);
    if (rustsecp256k1_v0_14_fe_is_odd(&y) != odd) {
        rustsecp256k1_v0_14_fe_negate(&y, &y, 1);
        rustsecp256k1_v0_14_fe_normalize_var(&y);
    }
    rustsecp256k1_v0_14_ge_set_xy(R, x, &y);
    return 1;
}

/* How many of the 16*k candidates the kernel gives for pseudo-random field elements (and the
 * edges 0, 1, p-1, 2^256-1 reduced) differ from libsecp256k1's fe_sqrt of them, -1 if the kernel
 * is not available. For tests: the lifts never depend on it, but their speed does. */
int x402b_vsqrt_mismatches(size_t k) {
#ifdef X402B_HAVE_VSQRT
    uint64_t state = 0x2545F4914F6CDD1DULL;
    size_t g, i;
    int bad = 0;
    if (!x402b_vsqrt_available()) {
        return -1;
    }
    for (g = 0; g < k; g++) {
        uint64_t in[X402B_VLANES][5], out[X402B_VLANES][5];
        fe a[X402B_VLANES];
        for (i = 0; i < X402B_VLANES; i++) {
            unsigned char b[32];
            size_t j;
            for (j = 0; j < 32; j++) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b[j] = (unsigned char)state;
            }
            if (g == 0 && i < 4) { /* 0, 1, p - 1 = 2^256 - 2^32 - 978, 2^256 - 1 */
                memset(b, i < 2 ? 0 : 0xff, 32);
                if (i == 1) {
                    b[31] = 1;
                } else if (i == 2) {
                    b[27] = 0xfe, b[30] = 0xfc, b[31] = 0x2e;
                }
            }
            rustsecp256k1_v0_14_fe_set_b32_mod(&a[i], b);
            rustsecp256k1_v0_14_fe_normalize_var(&a[i]);
            memcpy(in[i], a[i].n, sizeof(in[i]));
        }
        x402b_vpow_sqrt(out, in);
        for (i = 0; i < X402B_VLANES; i++) {
            fe want, got;
            (void)rustsecp256k1_v0_14_fe_sqrt(&want, &a[i]); /* the power, root or not */
            rustsecp256k1_v0_14_fe_normalize_var(&want);
            memcpy(got.n, out[i], sizeof(got.n));
            rustsecp256k1_v0_14_fe_normalize_var(&got);
            bad += !rustsecp256k1_v0_14_fe_equal(&got, &want);
        }
    }
    return bad;
#else
    (void)k;
    return -1;
#endif
}

/* Root candidates for the c of the `m` items listed in idx (roots[i] for item idx[i]), 16 at a
 * time; returns 0 when the vector kernel is not used (unavailable, or too few items for it to
 * pay: a group costs about 7 scalar roots). */
static int x402b_roots(const fe *c, const size_t *idx, size_t m, uint64_t (*roots)[5]) {
#ifdef X402B_HAVE_VSQRT
    size_t g, i;
    if (m < 7 || !x402b_vsqrt_available()) {
        return 0;
    }
    for (g = 0; g < m; g += X402B_VLANES) {
        uint64_t in[X402B_VLANES][5], out[X402B_VLANES][5];
        for (i = 0; i < X402B_VLANES; i++) {
            /* A short last group repeats its first element. */
            fe t = c[idx[g + i < m ? g + i : g]];
            rustsecp256k1_v0_14_fe_normalize_var(&t); /* limbs within the kernel's bounds */
            memcpy(in[i], t.n, sizeof(in[i]));
        }
        x402b_vpow_sqrt(out, in);
        for (i = 0; i < X402B_VLANES && g + i < m; i++) {
            memcpy(roots[g + i], out[i], sizeof(out[i]));
        }
    }
    return 1;
#else
    (void)c;
    (void)idx;
    (void)m;
    (void)roots;
    return 0;
#endif
}

/* For each of n signatures: R = the point with x = r and y of parity odd (what ecrecover and
 * libsecp256k1's recovery lift for v = 27/28), u1 = z/s, u2 = r/s, all mod n. ok[i] = 1 when
 * r and s lie in [1, n-1] and R exists; otherwise 0 and out[i] is zeroed. One scalar inversion
 * serves all the 1/s (Montgomery's trick); with `vector` set and the CPU able, the square roots
 * of the lifts come from vsqrt.h (checked, see x402b_lift). Returns 0 only if memory ran out
 * (then nothing in out / ok is meaningful). */
int x402b_prepare_with(const x402b_sig *in, size_t n, x402b_prepared *out, unsigned char *ok, int vector) {
    scalar *acc;
    fe *xs, *cs;
    size_t *idx;
    uint64_t(*roots)[5];
    scalar inv, one;
    size_t i, m = 0, next = 0;
    int have_roots;
    if (n == 0) {
        return 1;
    }
    acc = (scalar *)malloc(n * sizeof(scalar));
    xs = (fe *)malloc(n * sizeof(fe));
    cs = (fe *)malloc(n * sizeof(fe));
    idx = (size_t *)malloc(n * sizeof(size_t));
    roots = (uint64_t(*)[5])malloc(n * sizeof(*roots));
    if (acc == NULL || xs == NULL || cs == NULL || idx == NULL || roots == NULL) {
        free(acc);
        free(xs);
        free(cs);
        free(idx);
        free(roots);
        return 0;
    }
    rustsecp256k1_v0_14_scalar_set_int(&one, 1);
    /* Pass 1: ranges, and c = r^3 + 7 of the items in range. */
    for (i = 0; i < n; i++) {
        scalar r, s;
        fe x2;
        int overflow_r = 0, overflow_s = 0;
        memset(&out[i], 0, sizeof(out[i]));
        ok[i] = 0;
        rustsecp256k1_v0_14_scalar_set_b32(&r, in[i].r, &overflow_r);
        rustsecp256k1_v0_14_scalar_set_b32(&s, in[i].s, &overflow_s);
        if (!overflow_r && !overflow_s && !rustsecp256k1_v0_14_scalar_is_zero(&r) && !rustsecp256k1_v0_14_scalar_is_zero(&s)
            /* r < n < p, so this read cannot fail; kept so the invariant is checked here. */
            && rustsecp256k1_v0_14_fe_set_b32_limit(&xs[i], in[i].r)) {
            rustsecp256k1_v0_14_fe_sqr(&x2, &xs[i]);
            rustsecp256k1_v0_14_fe_mul(&cs[i], &x2, &xs[i]);
            rustsecp256k1_v0_14_fe_add_int(&cs[i], SECP256K1_B);
            idx[m++] = i;
        }
    }
    have_roots = vector && x402b_roots(cs, idx, m, roots);
    /* Pass 2: R, and prefix products of the s of usable items. */
    for (i = 0; i < n; i++) {
        const scalar *prev = i == 0 ? &one : &acc[i - 1];
        acc[i] = *prev;
        if (next < m && idx[next] == i) {
            ge R;
            scalar s;
            int overflow = 0;
            if (x402b_lift(&R, &xs[i], &cs[i], have_roots ? roots[next] : NULL, in[i].odd != 0)) {
                ok[i] = 1;
                x402b_ge_write(out[i].rx, &R);
                rustsecp256k1_v0_14_scalar_set_b32(&s, in[i].s, &overflow);
                rustsecp256k1_v0_14_scalar_mul(&acc[i], prev, &s);
            }
            next++;
        }
    }
    free(xs);
    free(cs);
    free(idx);
    free(roots);
    /* acc[n-1] is a product of nonzero scalars mod the prime n, so it is invertible. */
    rustsecp256k1_v0_14_scalar_inverse_var(&inv, &acc[n - 1]);
    /* Pass 3, backwards: inv holds 1 / (product of the usable s up to i). */
    for (i = n; i-- > 0;) {
        scalar r, s, z, sinv, u;
        int overflow = 0;
        if (!ok[i]) {
            continue;
        }
        rustsecp256k1_v0_14_scalar_set_b32(&s, in[i].s, &overflow);
        rustsecp256k1_v0_14_scalar_set_b32(&r, in[i].r, &overflow);
        /* z is the digest read as an integer mod n, as libsecp256k1's recovery reads it. */
        rustsecp256k1_v0_14_scalar_set_b32(&z, in[i].z, &overflow);
        if (i == 0) {
            sinv = inv;
        } else {
            rustsecp256k1_v0_14_scalar_mul(&sinv, &inv, &acc[i - 1]);
        }
        rustsecp256k1_v0_14_scalar_mul(&inv, &inv, &s);
        rustsecp256k1_v0_14_scalar_mul(&u, &z, &sinv);
        rustsecp256k1_v0_14_scalar_get_b32(out[i].u1, &u);
        rustsecp256k1_v0_14_scalar_mul(&u, &r, &sinv);
        rustsecp256k1_v0_14_scalar_get_b32(out[i].u2, &u);
    }
    free(acc);
    return 1;
}

/* sum of sc[i]*pt[i] over `entries` points whose scalars are all below 2^128, with
 * libsecp256k1's Pippenger (ecmult_pippenger_wnaf). This is ecmult_pippenger_batch without
 * its unconditional endomorphism split, so that 128-bit scalars (the randomizers on the R_i)
 * cost one bucket entry, not two; the caller splits the full-size scalars itself with the
 * library's ecmult_endo_split. Returns 0 if memory ran out. */
static int x402b_pippenger(gej *r, const ge *pt, const scalar *sc, size_t entries) {
    /* The library tunes its window for n points that split into 2n half-size entries. */
    int w = rustsecp256k1_v0_14_pippenger_bucket_window((entries + 1) / 2);
    size_t n_wnaf = WNAF_SIZE(w + 1);
    struct rustsecp256k1_v0_14_pippenger_state state;
    gej *buckets = (gej *)malloc(sizeof(gej) << w);
    int ok;
    state.ps = (struct rustsecp256k1_v0_14_pippenger_point_state *)malloc(entries * sizeof(*state.ps));
    state.wnaf_na = (int *)malloc(entries * n_wnaf * sizeof(int));
    ok = buckets != NULL && state.ps != NULL && state.wnaf_na != NULL;
    if (ok) {
        rustsecp256k1_v0_14_ecmult_pippenger_wnaf(buckets, w, &state, r, sc, pt, entries);
    }
    free(buckets);
    free(state.ps);
    free(state.wnaf_na);
    return ok;
}

/* Appends s*p as two entries below 2^128 (s = s1 + s2*lambda, p2 = lambda*p). */
static void x402b_push_split(ge *points, scalar *scalars, size_t *used, const ge *p, const scalar *s) {
    points[*used] = *p;
    scalars[*used] = *s;
    rustsecp256k1_v0_14_ecmult_endo_split(&scalars[*used], &scalars[*used + 1], &points[*used], &points[*used + 1]);
    *used += 2;
}

/* sum_i w_i*(R_i - u1_i*G - u2_i*Q_key[i]) into *out, for weights w_i below 2^128, gathered
 * as sum w_i*R_i - (sum w_i*u1_i)*G - sum_j (sum_{i of key j} w_i*u2_i)*Q_j: one entry per
 * item, two per key used and two for G. Returns 1, or -1 on a malformed input, -2 when memory
 * ran out. *points = items + keys used + 1. */
static int x402b_sum(gej *out, const x402b_prepared *items, const uint32_t *key, const scalar *w, size_t n, const unsigned char *keys64, size_t n_keys,
                     size_t *points) {
    size_t cap = n + 2 * (n_keys + 1), i, used = 0, npoints = n;
    ge *pts = (ge *)malloc(cap * sizeof(ge));
    scalar *sc = (scalar *)malloc(cap * sizeof(scalar));
    scalar *key_sc = (scalar *)malloc((n_keys + 1) * sizeof(scalar));
    scalar g_sc;
    int result = -1;
    if (pts == NULL || sc == NULL || key_sc == NULL) {
        result = -2;
        goto done;
    }
    rustsecp256k1_v0_14_scalar_set_int(&g_sc, 0);
    for (i = 0; i < n_keys; i++) {
        rustsecp256k1_v0_14_scalar_set_int(&key_sc[i], 0);
    }
    for (i = 0; i < n; i++) {
        scalar u1, u2;
        int overflow = 0;
        if (key[i] >= n_keys) {
            goto done;
        }
        rustsecp256k1_v0_14_scalar_set_b32(&u1, items[i].u1, &overflow);
        if (overflow) {
            goto done;
        }
        rustsecp256k1_v0_14_scalar_set_b32(&u2, items[i].u2, &overflow);
        if (overflow || !x402b_ge_read(&pts[used], items[i].rx)) {
            goto done;
        }
        /* w_i < 2^128: one Pippenger entry, no split. */
        sc[used] = w[i];
        used++;
        rustsecp256k1_v0_14_scalar_mul(&u1, &u1, &w[i]);
        rustsecp256k1_v0_14_scalar_add(&g_sc, &g_sc, &u1);
        rustsecp256k1_v0_14_scalar_mul(&u2, &u2, &w[i]);
        rustsecp256k1_v0_14_scalar_add(&key_sc[key[i]], &key_sc[key[i]], &u2);
    }
    for (i = 0; i < n_keys; i++) {
        ge q;
        if (!x402b_ge_read(&q, keys64 + 64 * i)) {
            goto done;
        }
        /* A key no item uses has scalar 0: left out, and not counted. */
        if (!rustsecp256k1_v0_14_scalar_is_zero(&key_sc[i])) {
            rustsecp256k1_v0_14_scalar_negate(&key_sc[i], &key_sc[i]);
            x402b_push_split(pts, sc, &used, &q, &key_sc[i]);
            npoints++;
        }
    }
    rustsecp256k1_v0_14_scalar_negate(&g_sc, &g_sc);
    x402b_push_split(pts, sc, &used, &rustsecp256k1_v0_14_ge_const_g, &g_sc);
    npoints++;
    if (!x402b_pippenger(out, pts, sc, used)) {
        result = -2;
        goto done;
    }
    *points += npoints;
    result = 1;
done:
    free(pts);
    free(sc);
    free(key_sc);
    return result;
}

/* The randomized batch equation over n prepared items and n_keys public keys:
 *   P = sum_i a_i*R_i - (sum_i a_i*u1_i)*G - sum_j (sum_{i: key[i] = j} a_i*u2_i)*Q_j == O ?
 * a_i are 16-byte big-endian randomizers below 2^118 (the caller draws them).
 *
 * When P != O and `locate` is set (n <= 1024), also computes P' = the same sum with weights
 * (i+1)*a_i (below 2^128) and looks for the k in [1, n] with P' = k*P. Item k-1 is then the one
 * bad item: if exactly one item is bad, P = a_b*T_b and P' = (b+1)*P, so k = b+1, and no other
 * k matches (the group has prime order n > 1024); if two or more are bad, a k matches only with
 * probability <= n*2^-118 over the a_i. *bad_out is that index, or -1.
 *
 * Returns 1 if P = O, 0 if not, -1 if an input is malformed (a point not on the curve, a key
 * index out of range, a scalar not below n, a randomizer too wide), -2 if memory ran out.
 * *points_out is the number of points multiplied (items, keys used, G; per sum computed). */
int x402b_check(const x402b_prepared *items, const uint32_t *key, const unsigned char *a16, size_t n, const unsigned char *keys64, size_t n_keys,
                int locate, size_t *points_out, int64_t *bad_out) {
    scalar *w;
    gej sum;
    size_t i;
    int r;
    *points_out = 0;
    *bad_out = -1;
    if (n > (SIZE_MAX / 4) / sizeof(ge) || n_keys > (SIZE_MAX / 4) / sizeof(ge) || (locate && n > 1024)) {
        return -1;
    }
    w = (scalar *)malloc((n + 1) * sizeof(scalar));
    if (w == NULL) {
        return -2;
    }
    for (i = 0; i < n; i++) {
        unsigned char a32[32] = {0};
        int overflow = 0;
        if (a16[16 * i] != 0 || (a16[16 * i + 1] >> 6) != 0) { /* not below 2^118 */
            free(w);
            return -1;
        }
        memcpy(a32 + 16, a16 + 16 * i, 16);
        rustsecp256k1_v0_14_scalar_set_b32(&w[i], a32, &overflow);
    }
    r = x402b_sum(&sum, items, key, w, n, keys64, n_keys, points_out);
    if (r == 1 && rustsecp256k1_v0_14_gej_is_infinity(&sum)) {
        free(w);
        return 1;
    }
    if (r == 1 && locate) {
        gej sum2, acc;
        ge target;
        for (i = 0; i < n; i++) {
            scalar k;
            rustsecp256k1_v0_14_scalar_set_int(&k, (unsigned int)(i + 1));
            rustsecp256k1_v0_14_scalar_mul(&w[i], &w[i], &k);
        }
        r = x402b_sum(&sum2, items, key, w, n, keys64, n_keys, points_out);
        if (r == 1 && !rustsecp256k1_v0_14_gej_is_infinity(&sum2)) {
            rustsecp256k1_v0_14_ge_set_gej_var(&target, &sum2);
            acc = sum;
            for (i = 0; i < n; i++) {
                if (rustsecp256k1_v0_14_gej_eq_ge_var(&acc, &target)) {
                    *bad_out = (int64_t)i;
                    break;
                }
                rustsecp256k1_v0_14_gej_add_var(&acc, &acc, &sum, NULL);
            }
        }
    }
    free(w);
    return r == 1 ? 0 : r;
}

/* 1 iff the G tables hold G and 2^128*G. */
int x402b_selftest(void) {
    ge g, g128;
    gej j;
    int i;
    rustsecp256k1_v0_14_ge_from_storage(&g, &x402b_pre_g[0]);
    rustsecp256k1_v0_14_ge_from_storage(&g128, &x402b_pre_g_128[0]);
    rustsecp256k1_v0_14_gej_set_ge(&j, &rustsecp256k1_v0_14_ge_const_g);
    for (i = 0; i < 128; i++) {
        rustsecp256k1_v0_14_gej_double_var(&j, &j, NULL);
    }
    return rustsecp256k1_v0_14_ge_eq_var(&g, &rustsecp256k1_v0_14_ge_const_g) && rustsecp256k1_v0_14_gej_eq_ge_var(&j, &g128);
}
