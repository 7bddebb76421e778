/* Square-root candidates mod p for 16 field elements at once, with AVX-512 IFMA (52-bit
 * multiply-accumulate: libsecp256k1's own 5x52 limbs map onto it lane for lane).
 *
 * Why by hand: the lift of R from r is one square root per signature (a^((p+1)/4), 253
 * squarings), about a third of the batch path's time, and no maintained library computes
 * secp256k1 field powers across SIMD lanes. What keeps this exact: the results are CANDIDATES.
 * The caller masks each into a valid libsecp256k1 field element and accepts it only if
 * libsecp256k1's own fe_sqr of it equals the input; anything else (no root exists, or a fault
 * here) goes to libsecp256k1's fe_sqrt. A wrong candidate can cost time, never a wrong R.
 *
 * Layout: x402b_vfe holds X402B_VK vectors of 8 lanes; limb k of lane j of vector v is
 * l[v][k] lane j. Limb bounds kept by every operation (inputs and outputs): limbs 0..3 below
 * 2^52, limb 4 below 2^49 (the value below 2^257, not necessarily reduced below p). Product
 * columns stay below 2^57, so 64-bit lanes never overflow. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define X402B_HAVE_VSQRT 1
#include <immintrin.h>
#define X402B_IFMA __attribute__((target("avx512f,avx512ifma")))

/* Vectors interleaved per operation, so that independent multiply chains overlap. */
#define X402B_VK 2
#define X402B_VLANES (8 * X402B_VK)
typedef struct { __m512i l[X402B_VK][5]; } x402b_vfe;

/* Product columns c[0..9] (each < 2^57) to limbs: 0..3 below 2^52, 4 below 2^48 + 1. */
X402B_IFMA static inline void x402b_vfe_reduce(__m512i *r, __m512i c[10]) {
    const __m512i m52 = _mm512_set1_epi64(0xFFFFFFFFFFFFFULL), m48 = _mm512_set1_epi64(0xFFFFFFFFFFFFULL);
    const __m512i r260 = _mm512_set1_epi64(0x1000003D10ULL), r256 = _mm512_set1_epi64(0x1000003D1ULL);
    const __m512i zero = _mm512_setzero_si512();
    __m512i h, t;
    int i;
    /* Columns 5..9 to 52-bit limbs (inputs below 2^257 keep column 9 below 2^47). */
    for (i = 5; i < 9; i++) {
        c[i + 1] = _mm512_add_epi64(c[i + 1], _mm512_srli_epi64(c[i], 52));
        c[i] = _mm512_and_si512(c[i], m52);
    }
    /* 2^260 = 2^4 * (2^32 + 977) mod p: column k+5 folds into columns k and k+1. */
    for (i = 0; i < 4; i++) {
        c[i] = _mm512_madd52lo_epu64(c[i], c[i + 5], r260);
        c[i + 1] = _mm512_madd52hi_epu64(c[i + 1], c[i + 5], r260);
    }
    c[4] = _mm512_madd52lo_epu64(c[4], c[9], r260);
    h = _mm512_madd52hi_epu64(zero, c[9], r260); /* at column 5 again, below 2^32 */
    c[0] = _mm512_madd52lo_epu64(c[0], h, r260);
    c[1] = _mm512_madd52hi_epu64(c[1], h, r260);
    for (i = 0; i < 4; i++) {
        c[i + 1] = _mm512_add_epi64(c[i + 1], _mm512_srli_epi64(c[i], 52));
        c[i] = _mm512_and_si512(c[i], m52);
    }
    /* Bits from 256 up: 2^256 = 2^32 + 977 mod p. */
    t = _mm512_srli_epi64(c[4], 48);
    c[4] = _mm512_and_si512(c[4], m48);
    c[0] = _mm512_madd52lo_epu64(c[0], t, r256);
    for (i = 0; i < 4; i++) {
        c[i + 1] = _mm512_add_epi64(c[i + 1], _mm512_srli_epi64(c[i], 52));
        c[i] = _mm512_and_si512(c[i], m52);
    }
    for (i = 0; i < 5; i++) {
        r[i] = c[i];
    }
}

/* Columns of a product to start from. */
X402B_IFMA static inline void x402b_vfe_zero_columns(__m512i c[X402B_VK][10]) {
    int v, i;
    for (v = 0; v < X402B_VK; v++) {
        for (i = 0; i < 10; i++) {
            c[v][i] = _mm512_setzero_si512();
        }
    }
}

/* r = a*b: each of the 25 limb products lands as its low 52 bits in column i+j and its high
 * 52 bits in column i+j+1 (at most 10 terms below 2^52 a column). */
X402B_IFMA static inline void x402b_vfe_mul(x402b_vfe *r, const x402b_vfe *a, const x402b_vfe *b) {
    __m512i c[X402B_VK][10];
    int i, j, v;
    x402b_vfe_zero_columns(c);
    for (i = 0; i < 5; i++) {
        for (j = 0; j < 5; j++) {
            for (v = 0; v < X402B_VK; v++) {
                c[v][i + j] = _mm512_madd52lo_epu64(c[v][i + j], a->l[v][i], b->l[v][j]);
                c[v][i + j + 1] = _mm512_madd52hi_epu64(c[v][i + j + 1], a->l[v][i], b->l[v][j]);
            }
        }
    }
    for (v = 0; v < X402B_VK; v++) {
        x402b_vfe_reduce(r->l[v], c[v]);
    }
}

/* r = a^2: the 10 cross products once, doubled, then the 5 squares. */
X402B_IFMA static inline void x402b_vfe_sqr(x402b_vfe *r, const x402b_vfe *a) {
    __m512i c[X402B_VK][10];
    int i, j, v;
    x402b_vfe_zero_columns(c);
    for (i = 0; i < 5; i++) {
        for (j = i + 1; j < 5; j++) {
            for (v = 0; v < X402B_VK; v++) {
                c[v][i + j] = _mm512_madd52lo_epu64(c[v][i + j], a->l[v][i], a->l[v][j]);
                c[v][i + j + 1] = _mm512_madd52hi_epu64(c[v][i + j + 1], a->l[v][i], a->l[v][j]);
            }
        }
    }
    for (v = 0; v < X402B_VK; v++) {
        for (i = 0; i < 10; i++) {
            c[v][i] = _mm512_add_epi64(c[v][i], c[v][i]);
        }
    }
    for (i = 0; i < 5; i++) {
        for (v = 0; v < X402B_VK; v++) {
            c[v][2 * i] = _mm512_madd52lo_epu64(c[v][2 * i], a->l[v][i], a->l[v][i]);
            c[v][2 * i + 1] = _mm512_madd52hi_epu64(c[v][2 * i + 1], a->l[v][i], a->l[v][i]);
        }
    }
    for (v = 0; v < X402B_VK; v++) {
        x402b_vfe_reduce(r->l[v], c[v]);
    }
}

X402B_IFMA static inline void x402b_vfe_sqrn(x402b_vfe *r, const x402b_vfe *a, int n) {
    int j;
    *r = *a;
    for (j = 0; j < n; j++) {
        x402b_vfe_sqr(r, r);
    }
}

/* r = a^((p+1)/4) lane by lane: libsecp256k1's addition chain for fe_sqrt. */
X402B_IFMA static void x402b_vfe_pow_sqrt(x402b_vfe *r, const x402b_vfe *a) {
    x402b_vfe x2, x3, x6, x9, x11, x22, x44, x88, x176, x220, x223, t1;
    x402b_vfe_sqr(&x2, a);
    x402b_vfe_mul(&x2, &x2, a);
    x402b_vfe_sqr(&x3, &x2);
    x402b_vfe_mul(&x3, &x3, a);
    x402b_vfe_sqrn(&x6, &x3, 3);
    x402b_vfe_mul(&x6, &x6, &x3);
    x402b_vfe_sqrn(&x9, &x6, 3);
    x402b_vfe_mul(&x9, &x9, &x3);
    x402b_vfe_sqrn(&x11, &x9, 2);
    x402b_vfe_mul(&x11, &x11, &x2);
    x402b_vfe_sqrn(&x22, &x11, 11);
    x402b_vfe_mul(&x22, &x22, &x11);
    x402b_vfe_sqrn(&x44, &x22, 22);
    x402b_vfe_mul(&x44, &x44, &x22);
    x402b_vfe_sqrn(&x88, &x44, 44);
    x402b_vfe_mul(&x88, &x88, &x44);
    x402b_vfe_sqrn(&x176, &x88, 88);
    x402b_vfe_mul(&x176, &x176, &x88);
    x402b_vfe_sqrn(&x220, &x176, 44);
    x402b_vfe_mul(&x220, &x220, &x44);
    x402b_vfe_sqrn(&x223, &x220, 3);
    x402b_vfe_mul(&x223, &x223, &x3);
    x402b_vfe_sqrn(&t1, &x223, 23);
    x402b_vfe_mul(&t1, &t1, &x22);
    x402b_vfe_sqrn(&t1, &t1, 6);
    x402b_vfe_mul(&t1, &t1, &x2);
    x402b_vfe_sqrn(r, &t1, 2);
}

/* out[i] = in[i]^((p+1)/4) mod p for X402B_VLANES elements given as 5 limbs each, inputs and
 * outputs within the limb bounds above. */
X402B_IFMA static void x402b_vpow_sqrt(uint64_t out[X402B_VLANES][5], const uint64_t in[X402B_VLANES][5]) {
    x402b_vfe a, r;
    int i, k, v;
    for (v = 0; v < X402B_VK; v++) {
        for (k = 0; k < 5; k++) {
            uint64_t lane[8];
            for (i = 0; i < 8; i++) {
                lane[i] = in[8 * v + i][k];
            }
            a.l[v][k] = _mm512_loadu_si512((const void *)lane);
        }
    }
    x402b_vfe_pow_sqrt(&r, &a);
    for (v = 0; v < X402B_VK; v++) {
        for (k = 0; k < 5; k++) {
            uint64_t lane[8];
            _mm512_storeu_si512((void *)lane, r.l[v][k]);
            for (i = 0; i < 8; i++) {
                out[8 * v + i][k] = lane[i];
            }
        }
    }
}
#endif
